#include "kernels/cuda/cuda_backend.h"

#include <cuda_runtime_api.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/check.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "kernels/cuda/cublaslt_matmul.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_graph.h"
#include "kernels/cuda/cuda_namespace.h"
#include "kernels/cuda/cuda_ops.h"

namespace ringserve::kernels::RS_CUDA_NS {
namespace {

// cuBLASLt workspace. Split-K is excluded, so algorithms need little or none.
constexpr size_t kMatMulWorkspaceBytes = size_t{32} << 20;
// Attention scratch before any ReserveAttention, for callers that run the op without
// reserving (the kernel tests): work items (8 bytes each) for batches of up to ~1000 tokens,
// and split-parallel partials ((head_dim + 2) floats per sequence, query head and split) for
// e.g. 8 sequences x 8 query heads x 2k context at head_dim 128. A model reserves what its
// options allow when it is created (LlamaModel::Init).
constexpr int64_t kMinAttentionItems = 1024;                        // 8 KiB
constexpr int64_t kMinAttentionPartialFloats = int64_t{64} * 1024;  // 256 KiB

bool EnvFlag(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr && std::strcmp(value, "0") != 0 && value[0] != '\0';
}

absl::Status DeviceError(cudaError_t error, const std::string& what) {
  cudaGetLastError();  // clear a non-sticky error so later calls do not report it again
  return absl::FailedPreconditionError(
      absl::StrCat(what, ": ", cudaGetErrorName(error), " (", cudaGetErrorString(error), ")"));
}

}  // namespace

CudaBackend::CudaBackend(Key /*key*/, int ordinal, const BackendOptions& options)
    : ordinal_(ordinal),
      name_(absl::StrCat("cuda:", ordinal)),
      dtype_(options.cuda_activation_dtype),
      simple_matmul_(options.cuda_simple_matmul),
      sync_after_ops_(EnvFlag("RINGSERVE_CUDA_SYNC")),
      attention_kernel_(options.cuda_attention_kernel) {}

absl::StatusOr<std::unique_ptr<Backend>> CudaBackend::Create(int ordinal,
                                                             const BackendOptions& options) {
  if (!IsActivationDtype(options.cuda_activation_dtype)) {
    return absl::InvalidArgumentError(
        absl::StrCat("cuda backend: activation dtype must be f32, f16 or bf16, got ",
                     std::string(DTypeName(options.cuda_activation_dtype))));
  }
  if (options.cuda_attention_kernel == AttentionKernel::kTensorCore &&
      options.cuda_activation_dtype == DType::kF32) {
    return absl::InvalidArgumentError(
        "cuda backend: tensor-core attention needs f16 or bf16 activations (--dtype); f32 runs "
        "simt");
  }
  int count = 0;
  const cudaError_t error = cudaGetDeviceCount(&count);
  if (error != cudaSuccess) return DeviceError(error, "cuda: no usable CUDA driver or device");
  if (ordinal < 0 || ordinal >= count) {
    return absl::NotFoundError(
        absl::StrCat("cuda:", ordinal, ": this machine has ", count, " CUDA device(s)"));
  }
  int major = 0;
  RS_CUDA_RETURN_IF_ERROR(
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, ordinal));
  if (major < 8) {
    return absl::FailedPreconditionError(absl::StrCat("cuda:", ordinal, ": compute capability ",
                                                      major, ".x; the CUDA backend needs 8.0+"));
  }
  auto backend = std::make_unique<CudaBackend>(Key(), ordinal, options);
  RS_RETURN_IF_ERROR(backend->Init());
  return backend;
}

absl::Status CudaBackend::Init() {
  RS_CUDA_RETURN_IF_ERROR(cudaSetDevice(ordinal_));
  if (const cudaError_t error = CheckKernelImage(); error != cudaSuccess) {
    return DeviceError(error, absl::StrCat(name_, ": no kernel image for this GPU"));
  }
  int sms = 0;
  int shared = 0;
  RS_CUDA_RETURN_IF_ERROR(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, ordinal_));
  RS_CUDA_RETURN_IF_ERROR(
      cudaDeviceGetAttribute(&shared, cudaDevAttrMaxSharedMemoryPerBlockOptin, ordinal_));
  num_sms_ = sms;
  RS_CUDA_RETURN_IF_ERROR(
      ConfigureAttentionKernels(static_cast<size_t>(shared), &max_shared_bytes_));
  cudaStream_t stream = nullptr;
  RS_CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  stream_ = stream;

  RS_RETURN_IF_ERROR(GrowAttentionScratch(kMinAttentionItems, kMinAttentionPartialFloats));
  if (!simple_matmul_) {
    RS_ASSIGN_OR_RETURN(matmul_workspace_, DeviceMalloc(kMatMulWorkspaceBytes));
    matmul_workspace_bytes_ = kMatMulWorkspaceBytes;
    RS_ASSIGN_OR_RETURN(cublas_, CublasLtMatMul::Create(matmul_workspace_, kMatMulWorkspaceBytes));
  }
  return absl::OkStatus();
}

CudaBackend::~CudaBackend() {
  cudaSetDevice(ordinal_);
  if (stream_ != nullptr) {
    if (const cudaError_t error = cudaStreamSynchronize(stream_); error != cudaSuccess) {
      Log(LogLevel::kError, "cuda", "stream failed before teardown",
          {{"device", name_}, {"error", cudaGetErrorString(error)}});
    }
  }
  cublas_.reset();
  for (void* p : {matmul_workspace_, attention_items_, static_cast<void*>(attention_partials_)}) {
    if (p != nullptr) cudaFree(p);
  }
  for (void* p : retired_scratch_) cudaFree(p);
  if (stream_ != nullptr) cudaStreamDestroy(stream_);
}

absl::Status CudaBackend::ReserveAttention(const AttentionLimits& limits) {
  CheckNotCapturing("cuda: ReserveAttention inside a graph capture");
  const AttentionLimits& l = limits;
  if (l.max_tokens <= 0 || l.max_seqs <= 0 || l.max_context_len <= 0 || l.num_q_heads <= 0 ||
      l.num_kv_heads <= 0 || l.head_dim <= 0 || l.num_q_heads % l.num_kv_heads != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(name_, ": bad attention limits: ", l.max_tokens, " tokens, ", l.max_seqs,
                     " sequences, context ", l.max_context_len, ", ", l.num_q_heads,
                     " query heads, ", l.num_kv_heads, " kv heads, head_dim ", l.head_dim));
  }
  const HeadArgs heads{l.num_q_heads, l.num_kv_heads, l.head_dim, 0.0F};
  // Refused here, at load, rather than by a check that would end the process at the first
  // pass: a model whose heads need more shared memory a block than this device allows.
  if (const int64_t shared = AttentionSharedBytesFor(heads, dtype_);
      static_cast<size_t>(shared) > max_shared_bytes_) {
    const int group = l.num_q_heads / l.num_kv_heads;
    return absl::InvalidArgumentError(
        absl::StrCat(name_, ": attention at head_dim ", l.head_dim, " with ", group,
                     " query heads per kv head needs ", shared, " bytes of shared memory a ",
                     "block; the device allows ", max_shared_bytes_));
  }
  const AttentionScratchSize size =
      AttentionScratchFor(heads, l.max_tokens, l.max_seqs, l.max_context_len);
  SetDevice();
  return GrowAttentionScratch(size.items, size.partial_floats);
}

absl::Status CudaBackend::GrowAttentionScratch(int64_t items, int64_t partial_floats) {
  if (items > attention_item_capacity_) {
    // An int2 per item, then the planned item count.
    RS_ASSIGN_OR_RETURN(
        void* buffer, DeviceMalloc(static_cast<size_t>(items) * 2 * sizeof(int32_t) + sizeof(int)));
    RetireScratch(attention_items_);
    attention_items_ = buffer;
    attention_item_capacity_ = items;
  }
  if (partial_floats > attention_partial_floats_) {
    RS_ASSIGN_OR_RETURN(void* buffer,
                        DeviceMalloc(static_cast<size_t>(partial_floats) * sizeof(float)));
    RetireScratch(attention_partials_);
    attention_partials_ = static_cast<float*>(buffer);
    attention_partial_floats_ = partial_floats;
  }
  return absl::OkStatus();
}

// A graph's launches keep the scratch pointers and capacities of their capture, so once a
// graph may exist, replaced scratch lives as long as the backend. Before that it goes at
// once (cudaFree waits for the queued ops that may still use it).
void CudaBackend::RetireScratch(void* data) {
  if (data == nullptr) return;
  if (captured_graphs_) {
    retired_scratch_.push_back(data);
  } else {
    cudaFree(data);
  }
}

// While capturing, CaptureGraph has set the device on this thread already.
void CudaBackend::SetDevice() const {
  if (!capturing_) RS_CUDA_CHECK(cudaSetDevice(ordinal_));
}

void CudaBackend::CheckNotCapturing(const char* call) const { RS_CHECK_MSG(!capturing_, call); }

void CudaBackend::AfterOp(const char* op) {
  if (!sync_after_ops_ || capturing_) return;
  const cudaError_t error = cudaStreamSynchronize(stream_);
  if (error != cudaSuccess) CudaCheckFailed(error, op, __FILE__, __LINE__);
}

absl::StatusOr<void*> CudaBackend::DeviceMalloc(size_t bytes) {
  void* data = nullptr;
  const cudaError_t error = cudaMalloc(&data, bytes);
  if (error != cudaSuccess) {
    cudaGetLastError();
    return absl::ResourceExhaustedError(
        absl::StrCat(name_, ": cannot allocate ", bytes, " bytes: ", cudaGetErrorString(error)));
  }
  ++num_allocations_;
  return data;
}

size_t CudaBackend::FreeMemoryBytes() const {
  SetDevice();
  size_t free_bytes = 0;
  size_t total_bytes = 0;
  RS_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  return free_bytes;
}

absl::StatusOr<DeviceBuffer> CudaBackend::Allocate(size_t bytes) {
  CheckNotCapturing("cuda: Allocate inside a graph capture");
  if (bytes == 0) return DeviceBuffer(this, nullptr, 0);
  SetDevice();
  RS_ASSIGN_OR_RETURN(void* data, DeviceMalloc(bytes));
  return DeviceBuffer(this, data, bytes);
}

absl::StatusOr<HostBuffer> CudaBackend::AllocateHost(size_t bytes) {
  CheckNotCapturing("cuda: AllocateHost inside a graph capture");
  if (bytes == 0) return HostBuffer(this, nullptr, 0);
  SetDevice();
  void* data = nullptr;
  if (const cudaError_t error = cudaHostAlloc(&data, bytes, cudaHostAllocDefault);
      error != cudaSuccess) {
    cudaGetLastError();
    return absl::ResourceExhaustedError(absl::StrCat(
        name_, ": cannot page-lock ", bytes, " bytes of host memory: ", cudaGetErrorString(error)));
  }
  ++num_allocations_;
  return HostBuffer(this, data, bytes);
}

void CudaBackend::FreeHost(void* data, size_t /*bytes*/) {
  CheckNotCapturing("cuda: a host buffer freed inside a graph capture");
  SetDevice();  // a thread without a current device would start a context on device 0
  if (const cudaError_t error = cudaFreeHost(data); error != cudaSuccess) {
    static_cast<void>(cudaGetLastError());  // reported here, not by the next launch check
    Log(LogLevel::kError, "cuda", "cudaFreeHost failed",
        {{"device", name_}, {"error", cudaGetErrorString(error)}});
  }
}

void CudaBackend::Free(void* data, size_t /*bytes*/) {
  CheckNotCapturing("cuda: a buffer freed inside a graph capture");
  SetDevice();
  // cudaFree waits for the device; a failure here is an earlier op's fault surfacing.
  if (const cudaError_t error = cudaFree(data); error != cudaSuccess) {
    static_cast<void>(cudaGetLastError());  // reported here, not by the next launch check
    Log(LogLevel::kError, "cuda", "cudaFree failed",
        {{"device", name_}, {"error", cudaGetErrorString(error)}});
  }
}

// From pageable memory cudaMemcpyAsync has consumed `src` when it returns; from a
// HostBuffer (page-locked) it reads `src` later, in stream order, so the caller leaves it
// unchanged until the next CopyToHost or Synchronize (backend.h). A graph cannot capture
// it: CUDA refuses copies from pageable memory during capture, and the source would have to
// stay valid for every replay.
void CudaBackend::CopyToDevice(void* dst, const void* src, size_t bytes) {
  CheckNotCapturing("cuda: CopyToDevice inside a graph capture");
  if (bytes == 0) return;
  SetDevice();
  RS_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_));
}

void CudaBackend::CopyToHost(void* dst, const void* src, size_t bytes) {
  CheckNotCapturing("cuda: CopyToHost inside a graph capture");
  SetDevice();
  if (bytes > 0) RS_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_));
  RS_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaBackend::CopyToHostQueued(void* dst, const void* src, size_t bytes) {
  CheckNotCapturing("cuda: CopyToHostQueued inside a graph capture");
  if (bytes == 0) return;
  SetDevice();
  RS_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_));
}

void CudaBackend::CopyOnDevice(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  SetDevice();
  RS_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_));
}

namespace {

// One cudaMemcpy2DAsync on `stream`; false, and nothing queued, for a pitch beyond the
// device's memPitch (2^31 - 1 bytes on every GPU ringserve runs on): the caller then copies
// row by row (a KV pool whose layers lie further apart).
bool TryCopy2D(cudaStream_t stream, void* dst, size_t dst_pitch, const void* src, size_t src_pitch,
               size_t width, size_t rows, cudaMemcpyKind kind) {
  constexpr size_t kMaxCopyPitch = 2147483647;
  if (dst_pitch > kMaxCopyPitch || src_pitch > kMaxCopyPitch) return false;
  if (width > 0 && rows > 0) {
    RS_CUDA_CHECK(cudaMemcpy2DAsync(dst, dst_pitch, src, src_pitch, width, rows, kind, stream));
  }
  return true;
}

}  // namespace

void CudaBackend::CopyOnDevice2D(void* dst, size_t dst_pitch, const void* src, size_t src_pitch,
                                 size_t width, size_t rows) {
  SetDevice();
  if (!TryCopy2D(stream_, dst, dst_pitch, src, src_pitch, width, rows, cudaMemcpyDeviceToDevice)) {
    Backend::CopyOnDevice2D(dst, dst_pitch, src, src_pitch, width, rows);
  }
}

void CudaBackend::CopyToDevice2D(void* dst, size_t dst_pitch, const void* src, size_t src_pitch,
                                 size_t width, size_t rows) {
  CheckNotCapturing("cuda: CopyToDevice2D inside a graph capture");
  SetDevice();
  if (!TryCopy2D(stream_, dst, dst_pitch, src, src_pitch, width, rows, cudaMemcpyHostToDevice)) {
    Backend::CopyToDevice2D(dst, dst_pitch, src, src_pitch, width, rows);
  }
}

void CudaBackend::CopyToHostQueued2D(void* dst, size_t dst_pitch, const void* src, size_t src_pitch,
                                     size_t width, size_t rows) {
  CheckNotCapturing("cuda: CopyToHostQueued2D inside a graph capture");
  SetDevice();
  if (!TryCopy2D(stream_, dst, dst_pitch, src, src_pitch, width, rows, cudaMemcpyDeviceToHost)) {
    Backend::CopyToHostQueued2D(dst, dst_pitch, src, src_pitch, width, rows);
  }
}

void CudaBackend::Synchronize() {
  CheckNotCapturing("cuda: Synchronize inside a graph capture");
  SetDevice();
  RS_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaBackend::Fill(void* dst, size_t bytes, uint8_t value) {
  if (bytes == 0) return;
  SetDevice();
  RS_CUDA_CHECK(cudaMemsetAsync(dst, value, bytes, stream_));
}

absl::StatusOr<Weight> CudaBackend::UploadWeight(DType dtype, int64_t rows, int64_t cols,
                                                 const void* host_data) {
  CheckNotCapturing("cuda: UploadWeight inside a graph capture");
  if (!TakesWeightDType(dtype)) {
    return absl::InvalidArgumentError(
        absl::StrCat(name_, ": cannot upload a weight of dtype ", std::string(DTypeName(dtype))));
  }
  if (rows <= 0 || cols <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(name_, ": bad weight shape [", rows, ", ", cols, "]"));
  }
  if (IsBlockDType(dtype) && cols % kQ8_0BlockValues != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(name_, ": ", std::string(DTypeName(dtype)),
                     " weight rows must be a multiple of 32 values, got ", cols));
  }
  SetDevice();
  const auto count = static_cast<size_t>(rows) * static_cast<size_t>(cols);
  Weight w;
  w.dtype = dtype_;
  w.rows = rows;
  w.cols = cols;
  RS_ASSIGN_OR_RETURN(w.buffer, Allocate(DTypeBytes(dtype_, count)));
  const size_t source_bytes = DTypeBytes(dtype, count);
  if (dtype == dtype_) {
    CopyToDevice(w.buffer.data(), host_data, source_bytes);
    return w;
  }
  // Other dtypes (and the quantized ones) go up as they are and are converted on the device.
  RS_ASSIGN_OR_RETURN(void* staging, DeviceMalloc(source_bytes));
  CopyToDevice(staging, host_data, source_bytes);
  LaunchConvert(stream_, dtype, staging, dtype_, w.buffer.data(), static_cast<int64_t>(count));
  const cudaError_t error = cudaStreamSynchronize(stream_);
  cudaFree(staging);
  RS_CUDA_RETURN_IF_ERROR(error);
  return w;
}

absl::StatusOr<Weight> CudaBackend::RandomWeight(std::span<const RandomPart> parts, int64_t cols,
                                                 float scale) {
  CheckNotCapturing("cuda: RandomWeight inside a graph capture");
  RS_ASSIGN_OR_RETURN(const int64_t rows, RandomWeightRows(parts, cols));
  SetDevice();
  Weight w;
  w.dtype = dtype_;
  w.rows = rows;
  w.cols = cols;
  RS_ASSIGN_OR_RETURN(w.buffer, Allocate(DTypeBytes(dtype_, static_cast<size_t>(rows * cols))));
  auto* dst = static_cast<uint8_t*>(w.buffer.data());
  for (const RandomPart& part : parts) {
    const int64_t count = part.rows * cols;
    LaunchRandomUniform(stream_, part.state, scale, dtype_, dst, count);
    dst += DTypeBytes(dtype_, static_cast<size_t>(count));
  }
  AfterOp("RandomWeight");
  return w;
}

// Thread-local capture mode: a call on this thread that cannot be captured (an allocation, a
// wait) invalidates the capture instead of silently running outside the graph, while other
// threads (other backends) are unaffected. Kernel arguments are copied at capture, so the
// graph keeps only device pointers, all of them into memory this backend owns.
absl::StatusOr<std::unique_ptr<OpGraph>> CudaBackend::CaptureGraph(
    absl::FunctionRef<void()> enqueue_ops) {
  CheckNotCapturing("cuda: nested graph capture");
  SetDevice();
  // Faults of earlier work surface here, not as a failed capture.
  RS_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
  RS_CUDA_RETURN_IF_ERROR(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
  capturing_ = true;
  captured_graphs_ = true;
  {
    const CaptureScope scope;
    enqueue_ops();
  }
  capturing_ = false;
  cudaGraph_t graph = nullptr;
  const cudaError_t error = cudaStreamEndCapture(stream_, &graph);
  CudaGraphPtr owned(graph);
  if (error != cudaSuccess) return DeviceError(error, absl::StrCat(name_, ": graph capture"));
  return CudaOpGraph::Instantiate(std::move(owned), ordinal_, stream_, sync_after_ops_);
}

}  // namespace ringserve::kernels::RS_CUDA_NS
