#include "kernels/backend.h"

#include <algorithm>
#include <cstdlib>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/check.h"
#include "kernels/cpu/cpu_backend.h"
#ifdef RINGSERVE_HAVE_CUDA
#include "kernels/cuda/cuda_backend.h"
#endif

namespace ringserve::kernels {

// Cache-line aligned, so a page-locked buffer on another backend and this one behave alike.
absl::StatusOr<HostBuffer> Backend::AllocateHost(size_t bytes) {
  constexpr size_t kAlign = 64;
  void* data =
      std::aligned_alloc(kAlign, std::max<size_t>(kAlign, (bytes + kAlign - 1) / kAlign * kAlign));
  if (data == nullptr) {
    return absl::ResourceExhaustedError(
        absl::StrCat("host allocation of ", bytes, " bytes failed"));
  }
  return HostBuffer(this, data, bytes);
}

void Backend::FreeHost(void* data, size_t /*bytes*/) { std::free(data); }

namespace {

// Row r of a 2-D copy: `width` bytes from src + r * src_pitch to dst + r * dst_pitch.
template <typename CopyRow>
void CopyRows(void* dst, size_t dst_pitch, const void* src, size_t src_pitch, size_t width,
              size_t rows, CopyRow copy_row) {
  RS_CHECK(dst_pitch >= width && src_pitch >= width);
  for (size_t r = 0; r < rows; ++r) {
    copy_row(static_cast<uint8_t*>(dst) + r * dst_pitch,
             static_cast<const uint8_t*>(src) + r * src_pitch, width);
  }
}

}  // namespace

void Backend::CopyOnDevice2D(void* dst, size_t dst_pitch, const void* src, size_t src_pitch,
                             size_t width, size_t rows) {
  CopyRows(dst, dst_pitch, src, src_pitch, width, rows,
           [this](void* d, const void* s, size_t n) { CopyOnDevice(d, s, n); });
}

void Backend::CopyToDevice2D(void* dst, size_t dst_pitch, const void* src, size_t src_pitch,
                             size_t width, size_t rows) {
  CopyRows(dst, dst_pitch, src, src_pitch, width, rows,
           [this](void* d, const void* s, size_t n) { CopyToDevice(d, s, n); });
}

void Backend::CopyToHostQueued2D(void* dst, size_t dst_pitch, const void* src, size_t src_pitch,
                                 size_t width, size_t rows) {
  CopyRows(dst, dst_pitch, src, src_pitch, width, rows,
           [this](void* d, const void* s, size_t n) { CopyToHostQueued(d, s, n); });
}

absl::Status Backend::ReserveAttention(const AttentionLimits& /*limits*/) {
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<OpGraph>> Backend::CaptureGraph(
    absl::FunctionRef<void()> /*enqueue_ops*/) {
  return absl::UnimplementedError(absl::StrCat(std::string(name()), ": no graph capture"));
}

std::string_view AttentionKernelName(AttentionKernel kernel) {
  return kernel == AttentionKernel::kTensorCore ? "tensor-core" : "simt";
}

absl::Status Backend::SetAttentionKernel(AttentionKernel kernel) {
  if (kernel == AttentionKernel::kSimt) return absl::OkStatus();
  return absl::FailedPreconditionError(
      absl::StrCat(std::string(name()), " has no ", std::string(AttentionKernelName(kernel)),
                   " attention kernel (CUDA only); its attention runs on simt"));
}

absl::Status Backend::SetMatMulAlgoRows(int64_t /*rows*/) {
  return absl::FailedPreconditionError(
      absl::StrCat(std::string(name()), "'s MatMul has one kernel: no algorithm to choose"));
}

absl::StatusOr<int64_t> Backend::RandomWeightRows(std::span<const RandomPart> parts,
                                                  int64_t cols) const {
  bool valid = !parts.empty() && cols > 0;
  int64_t rows = 0;
  for (const RandomPart& part : parts) {
    valid = valid && part.rows > 0;
    rows += part.rows;
  }
  if (!valid) {
    return absl::InvalidArgumentError(absl::StrCat(std::string(name()), ": bad random weight of ",
                                                   parts.size(), " parts, ", cols, " columns"));
  }
  return rows;
}

Tensor Tensor::Columns(int64_t begin, int64_t count) const {
  RS_DCHECK(begin >= 0 && begin + count <= cols);
  Tensor t = *this;
  t.data = static_cast<char*>(data) + DTypeBytes(dtype, static_cast<size_t>(begin));
  t.cols = count;
  return t;
}

Tensor Tensor::Rows(int64_t begin, int64_t count) const {
  RS_DCHECK(begin >= 0 && begin + count <= rows);
  Tensor t = *this;
  t.data = static_cast<char*>(data) + DTypeBytes(dtype, static_cast<size_t>(begin * row_stride));
  t.rows = count;
  return t;
}

absl::StatusOr<std::unique_ptr<Backend>> CreateBackend(std::string_view device,
                                                       const BackendOptions& options) {
  if (device == "cpu") return cpu::CpuBackend::Create(options);
  if (device.starts_with("cuda")) {
#ifdef RINGSERVE_HAVE_CUDA
    int ordinal = 0;
    if (device.size() > 4) {
      if (device[4] != ':' || !absl::SimpleAtoi(std::string(device.substr(5)), &ordinal)) {
        return absl::InvalidArgumentError(
            absl::StrCat("device '", std::string(device), "': expected cpu or cuda:N"));
      }
    }
    return cuda::CudaBackend::Create(ordinal, options);
#else
    return absl::FailedPreconditionError(
        absl::StrCat("device '", std::string(device), "': this build has no CUDA backend"));
#endif
  }
  return absl::InvalidArgumentError(
      absl::StrCat("device '", std::string(device), "': expected cpu or cuda:N"));
}

}  // namespace ringserve::kernels
