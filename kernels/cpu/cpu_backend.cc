#include "kernels/cpu/cpu_backend.h"

#include <cblas.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/check.h"
#include "common/status_macros.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/host_memory.h"

namespace ringserve::kernels::cpu {
namespace {

constexpr size_t kAlignment = 64;  // a cache line, and enough for any vector load

// A norm's gain: always f32 (CpuBackend::StoredDType).
const float* WeightData(const Weight& w) {
  RS_CHECK(w.dtype == DType::kF32);
  return w.buffer.as<const float>();
}

}  // namespace

CpuBackend::CpuBackend(Key /*key*/, const BackendOptions& options)
    : use_blas_(options.cpu_use_blas), pool_(options.num_threads) {}

absl::StatusOr<std::unique_ptr<Backend>> CpuBackend::Create(const BackendOptions& options) {
  if (options.num_threads < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cpu backend: num_threads must be >= 0, got ", options.num_threads));
  }
  auto backend = std::make_unique<CpuBackend>(Key(), options);
  // OpenBLAS runs with as many threads as our pool, which idles (spins, then sleeps) while
  // sgemm runs, so the two never compete for cores.
  openblas_set_num_threads(backend->pool_.num_threads());
  return backend;
}

size_t CpuBackend::FreeMemoryBytes() const { return AvailableHostBytes(); }

// Physical memory (capped by the process's memory cgroup), not what is available now: a KV
// pool is backed as it fills, over hours, so the question is whether it can ever be backed.
// What is available at start moves with page cache and other processes (a build running
// beside the worker would refuse a pool that fits once it ends) and promises nothing later;
// the fraction form of --kv-memory already sizes from it.
size_t CpuBackend::LazyMemoryLimitBytes() const {
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page_bytes = sysconf(_SC_PAGE_SIZE);
  const uint64_t physical = pages > 0 && page_bytes > 0
                                ? static_cast<uint64_t>(pages) * static_cast<uint64_t>(page_bytes)
                                : 0;
  return HostMemoryLimitBytes(physical);  // 0: unknown, no check
}

absl::StatusOr<DeviceBuffer> CpuBackend::Allocate(size_t bytes) {
  const size_t rounded = std::max(kAlignment, (bytes + kAlignment - 1) / kAlignment * kAlignment);
  void* data = std::aligned_alloc(kAlignment, rounded);
  if (data == nullptr) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cpu backend: cannot allocate ", bytes, " bytes"));
  }
  return DeviceBuffer(this, data, bytes);
}

void CpuBackend::Free(void* data, size_t /*bytes*/) { std::free(data); }

void CpuBackend::CopyToDevice(void* dst, const void* src, size_t bytes) {
  if (bytes > 0) std::memcpy(dst, src, bytes);
}

void CpuBackend::CopyToHost(void* dst, const void* src, size_t bytes) {
  if (bytes > 0) std::memcpy(dst, src, bytes);
}

void CpuBackend::CopyOnDevice(void* dst, const void* src, size_t bytes) {
  if (bytes > 0) std::memcpy(dst, src, bytes);
}

void CpuBackend::Fill(void* dst, size_t bytes, uint8_t value) {
  if (bytes > 0) std::memset(dst, value, bytes);
}

absl::StatusOr<Weight> CpuBackend::UploadWeight(DType dtype, int64_t rows, int64_t cols,
                                                const void* host_data) {
  if (!TakesWeightDType(dtype)) {
    return absl::InvalidArgumentError(absl::StrCat("cpu backend: cannot upload a weight of dtype ",
                                                   std::string(DTypeName(dtype))));
  }
  if (rows <= 0 || cols <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cpu backend: bad weight shape [", rows, ", ", cols, "]"));
  }
  if (IsBlockDType(dtype) && cols % kQuantBlock != 0) {
    return absl::InvalidArgumentError(absl::StrCat("cpu backend: ", std::string(DTypeName(dtype)),
                                                   " weight rows must be a multiple of ",
                                                   kQuantBlock, " values, got ", cols));
  }
  const auto* src = static_cast<const uint8_t*>(host_data);
  const DType stored = StoredDType(dtype, rows);
  if (IsBlockDType(stored)) {
    return PackBlockWeight(stored, rows, cols, src);
  }
  return PackWeight(rows, cols, stored, [&](int64_t r0, int64_t width, float* rows_f32) {
    ConvertToFloat(dtype, src + DTypeBytes(dtype, static_cast<size_t>(r0 * cols)),
                   static_cast<size_t>(width * cols), rows_f32);
  });
}

absl::StatusOr<Weight> CpuBackend::RandomWeight(std::span<const RandomPart> parts, int64_t cols,
                                                float scale) {
  RS_ASSIGN_OR_RETURN(const int64_t rows, RandomWeightRows(parts, cols));
  return PackWeight(rows, cols, DType::kF32, [&](int64_t r0, int64_t width, float* rows_f32) {
    FillRandomRows(parts, cols, scale, r0, r0 + width, rows_f32);
  });
}

size_t CpuBackend::WeightBytes(DType dtype, int64_t rows, int64_t cols) const {
  return static_cast<size_t>(PanelBytes(cpu::PanelTypeOf(StoredDType(dtype, rows)), rows, cols));
}

DType CpuBackend::StoredDType(DType file_dtype, int64_t rows) const {
  const bool compact =
      file_dtype == DType::kBF16 || file_dtype == DType::kF16 || IsBlockDType(file_dtype);
  return compact && rows > 1 && !use_blas_ ? file_dtype : DType::kF32;
}

absl::StatusOr<Weight> CpuBackend::PackBlockWeight(DType dtype, int64_t rows, int64_t cols,
                                                   const uint8_t* blocks) {
  Weight w;
  w.dtype = dtype;
  w.rows = rows;
  w.cols = cols;
  RS_ASSIGN_OR_RETURN(w.buffer,
                      Allocate(static_cast<size_t>(PanelBytes(PanelTypeOf(w), rows, cols))));
  const PanelLayout layout = LayoutOf(w);
  const size_t row_bytes = DTypeBytes(dtype, static_cast<size_t>(cols));
  pool_.ParallelFor(layout.num_panels(), [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t r0 = p * kPanelWidth;
      PackBlockRows(layout, PanelTypeOf(w), blocks + static_cast<size_t>(r0) * row_bytes, r0,
                    layout.width(p), w.buffer.data(), BlockParamsOf(w));
    }
  });
  return w;
}

float* CpuBackend::BlockParamsOf(const Weight& w) {
  const PanelType type = PanelTypeOf(w);
  if (!IsQuantized(type)) return nullptr;
  return reinterpret_cast<float*>(static_cast<char*>(w.buffer.data()) +
                                  QuantBytes(type, w.rows, w.cols));
}

absl::StatusOr<Weight> CpuBackend::PackWeight(
    int64_t rows, int64_t cols, DType stored,
    absl::FunctionRef<void(int64_t, int64_t, float*)> fill_rows) {
  Weight w;
  w.dtype = stored;
  w.rows = rows;
  w.cols = cols;
  const PanelType type = PanelTypeOf(w);
  RS_ASSIGN_OR_RETURN(w.buffer, Allocate(static_cast<size_t>(PanelBytes(type, rows, cols))));
  const PanelLayout layout = LayoutOf(w);
  void* dst = w.buffer.data();
  // One panel of rows at a time, so no full-size f32 copy of the weight is ever made.
  pool_.ParallelFor(layout.num_panels(), [&](int64_t p0, int64_t p1) {
    std::vector<float> rows_f32(static_cast<size_t>(kPanelWidth * cols));
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t r0 = p * kPanelWidth;
      const int64_t width = layout.width(p);
      fill_rows(r0, width, rows_f32.data());
      PackRows(layout, type, rows_f32.data(), r0, width, dst);
    }
  });
  return w;
}

void CpuBackend::EmbeddingGather(const Weight& table, const int32_t* ids, Tensor out) {
  RS_CHECK(out.cols == table.cols);
  const PanelLayout layout = LayoutOf(table);
  pool_.ParallelFor(
      out.rows,
      [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
          RS_DCHECK(ids[i] >= 0 && ids[i] < table.rows);
          UnpackRow(layout, PanelTypeOf(table), table.buffer.data(), ids[i],
                    static_cast<float*>(out.data) + i * out.row_stride, BlockParamsOf(table));
        }
      },
      8);
}

void CpuBackend::RmsNorm(Tensor x, const Weight& weight, float eps, Tensor out) {
  RS_CHECK(weight.rows == 1 && weight.cols == x.cols && out.cols == x.cols);
  RmsNormRows(pool_, x, WeightData(weight), eps, out);
}

void CpuBackend::AddRmsNorm(Tensor residual, Tensor delta, const Weight& weight, float eps,
                            Tensor out) {
  RS_CHECK(weight.rows == 1 && weight.cols == residual.cols && delta.cols == residual.cols);
  AddRmsNormRows(pool_, residual, delta, WeightData(weight), eps, out);
}

void CpuBackend::MatMul(Tensor x, const Weight& w, Tensor y) {
  RS_CHECK(x.dtype == DType::kF32 && x.cols == w.cols && y.cols == w.rows && y.rows == x.rows);
  const MatMulArgs args{.x = static_cast<const float*>(x.data),
                        .ldx = x.row_stride,
                        .n = x.rows,
                        .w = w.buffer.data(),
                        .layout = LayoutOf(w),
                        .y = static_cast<float*>(y.data),
                        .ldy = y.row_stride,
                        .w_type = PanelTypeOf(w),
                        .w_params = BlockParamsOf(w)};
  if (use_blas_ && x.rows >= kBlasMinRows) {
    MatMulBlas(args);
  } else {
    cpu::MatMul(pool_, args);
  }
}

void CpuBackend::RopeAndWriteKv(Tensor qkv, const AttentionShape& shape, const RopeParams& rope,
                                const AttentionBatch& batch, const KvLayerView& kv) {
  RopeAndWriteKvOp(pool_, qkv, shape, rope, batch, kv);
}

void CpuBackend::PagedAttention(Tensor qkv, const AttentionShape& shape,
                                const AttentionBatch& batch, const KvLayerView& kv, Tensor out) {
  PagedAttentionOp(pool_, qkv, shape, batch, kv, out);
}

void CpuBackend::AddBias(Tensor x, const Weight& bias) {
  RS_CHECK(x.dtype == DType::kF32 && bias.rows == 1 && bias.cols == x.cols);
  AddBiasRows(pool_, x, WeightData(bias));
}

void CpuBackend::HeadRmsNorm(Tensor x, int64_t head_dim, const Weight& weight, float eps) {
  RS_CHECK(x.dtype == DType::kF32 && head_dim > 0 && x.cols % head_dim == 0 && weight.rows == 1 &&
           weight.cols == head_dim);
  HeadRmsNormRows(pool_, x, head_dim, WeightData(weight), eps);
}

void CpuBackend::SiluMul(Tensor gate_up, Tensor out) {
  RS_CHECK(gate_up.cols == 2 * out.cols && gate_up.rows == out.rows);
  SiluMulRows(pool_, gate_up, out);
}

void CpuBackend::GatherRows(Tensor x, const int32_t* rows, Tensor out) {
  RS_CHECK(x.cols == out.cols);
  GatherRowsOp(pool_, x, rows, out);
}

void CpuBackend::AddLora(Tensor x, const LoraStack& lora, const int32_t* row_slots, float* scratch,
                         Tensor y) {
  RS_CHECK(x.dtype == DType::kF32 && y.dtype == DType::kF32);
  RS_CHECK(x.cols == lora.in && y.cols == lora.out && x.rows == y.rows);
  RS_CHECK(lora.rank > 0 && lora.num_slots > 0 && lora.a != nullptr && lora.b_t != nullptr);
  if (x.rows == 0) return;
  RS_CHECK(row_slots != nullptr && scratch != nullptr);
  AddLoraRows(pool_, x, lora, row_slots, scratch, y);
}

void CpuBackend::PenalizeRows(Tensor x, const RowSampling* params, PenaltyEntry* entries) {
  RS_CHECK(x.dtype == DType::kF32 && x.cols <= INT32_MAX);
  PenalizeRowsOp(pool_, x, params, entries);
}

void CpuBackend::UnpenalizeRows(Tensor x, const RowSampling* params, const PenaltyEntry* entries) {
  RS_CHECK(x.dtype == DType::kF32 && x.cols <= INT32_MAX);
  UnpenalizeRowsOp(pool_, x, params, entries);
}

void CpuBackend::LogprobRows(Tensor x, const int32_t* rows, int32_t num_rows, const int32_t* ids,
                             RowLogprobs* out) {
  RS_CHECK(x.dtype == DType::kF32 && x.cols > 0 && x.cols <= INT32_MAX && num_rows >= 0);
  for (int32_t i = 0; i < num_rows; ++i) RS_CHECK(rows[i] >= 0 && rows[i] < x.rows);
  LogprobRowsOp(pool_, x, {rows, static_cast<size_t>(num_rows)}, ids, out);
}

void CpuBackend::SampleRows(Tensor x, const RowSampling* params, int32_t* ids) {
  RS_CHECK(x.dtype == DType::kF32 && x.cols > 0 && x.cols <= INT32_MAX);
  SampleRowsOp(pool_, x, params, ids);
}

}  // namespace ringserve::kernels::cpu
