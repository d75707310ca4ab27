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
// Attention work items (8 bytes each): enough for any batch of up to ~1M tokens.
constexpr int64_t kAttentionItemCapacity = int64_t{1} << 20;
// Split-parallel decode partials, (head_dim + 2) floats per (sequence, query head, split):
// e.g. 128 sequences x 32 heads x 32 splits (8k context) at head_dim 128. A batch that
// needs more runs its splits inside one block each (same bits, less parallelism).
constexpr size_t kAttentionPartialBytes = size_t{64} << 20;

Mat ToMat(const Tensor& t) { return Mat{t.data, t.dtype, t.rows, t.cols, t.row_stride}; }

BatchArgs ToBatchArgs(const AttentionBatch& b) {
  return BatchArgs{b.num_tokens, b.num_seqs, b.max_blocks_per_seq, b.max_context_len,
                   b.positions,  b.slots,    b.query_start,        b.block_tables};
}

HeadArgs ToHeadArgs(const AttentionShape& s) {
  return HeadArgs{s.num_q_heads, s.num_kv_heads, s.head_dim, s.scale};
}

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
  int sms = 0, shared = 0;
  RS_CUDA_RETURN_IF_ERROR(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, ordinal_));
  RS_CUDA_RETURN_IF_ERROR(
      cudaDeviceGetAttribute(&shared, cudaDevAttrMaxSharedMemoryPerBlockOptin, ordinal_));
  num_sms_ = sms;
  RS_CUDA_RETURN_IF_ERROR(
      ConfigureAttentionKernels(static_cast<size_t>(shared), &max_shared_bytes_));
  cudaStream_t stream = nullptr;
  RS_CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  stream_ = stream;

  RS_ASSIGN_OR_RETURN(attention_items_,
                      DeviceMalloc(kAttentionItemCapacity * 2 * sizeof(int32_t) + sizeof(int)));
  attention_item_capacity_ = kAttentionItemCapacity;
  RS_ASSIGN_OR_RETURN(void* partials, DeviceMalloc(kAttentionPartialBytes));
  attention_partials_ = static_cast<float*>(partials);
  attention_partial_floats_ = kAttentionPartialBytes / sizeof(float);
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
  if (stream_ != nullptr) cudaStreamDestroy(stream_);
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
  size_t free_bytes = 0, total_bytes = 0;
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

void CudaBackend::Free(void* data, size_t /*bytes*/) {
  CheckNotCapturing("cuda: a buffer freed inside a graph capture");
  SetDevice();
  // cudaFree waits for the device; a failure here is an earlier op's fault surfacing.
  if (const cudaError_t error = cudaFree(data); error != cudaSuccess) {
    Log(LogLevel::kError, "cuda", "cudaFree failed",
        {{"device", name_}, {"error", cudaGetErrorString(error)}});
  }
}

// Host memory here is pageable, so cudaMemcpyAsync has consumed `src` when it returns.
// A graph cannot capture it: CUDA refuses copies from pageable memory during capture, and
// the source would have to stay valid for every replay.
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

void CudaBackend::CopyOnDevice(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  SetDevice();
  RS_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_));
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
  if (dtype != DType::kF32 && dtype != DType::kF16 && dtype != DType::kBF16 &&
      dtype != DType::kQ8_0) {
    return absl::InvalidArgumentError(
        absl::StrCat(name_, ": cannot upload a weight of dtype ", std::string(DTypeName(dtype))));
  }
  if (rows <= 0 || cols <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(name_, ": bad weight shape [", rows, ", ", cols, "]"));
  }
  if (dtype == DType::kQ8_0 && cols % kQ8_0BlockValues != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(name_, ": q8_0 weight rows must be a multiple of 32 values, got ", cols));
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
  // Other dtypes (and q8_0) go up as they are and are converted on the device.
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
  enqueue_ops();
  capturing_ = false;
  cudaGraph_t graph = nullptr;
  const cudaError_t error = cudaStreamEndCapture(stream_, &graph);
  CudaGraphPtr owned(graph);
  if (error != cudaSuccess) return DeviceError(error, absl::StrCat(name_, ": graph capture"));
  return CudaOpGraph::Instantiate(std::move(owned), ordinal_, stream_, sync_after_ops_);
}

void CudaBackend::EmbeddingGather(const Weight& table, const int32_t* ids, Tensor out) {
  RS_CHECK(table.dtype == dtype_ && out.dtype == dtype_ && out.cols == table.cols);
  SetDevice();
  LaunchEmbeddingGather(stream_, table.buffer.data(), table.rows, ids, ToMat(out));
  AfterOp("EmbeddingGather");
}

void CudaBackend::RmsNorm(Tensor x, const Weight& weight, float eps, Tensor out) {
  RS_CHECK(weight.dtype == dtype_ && weight.rows == 1 && weight.cols == x.cols);
  RS_CHECK(x.dtype == dtype_);
  SetDevice();
  LaunchRmsNorm(stream_, ToMat(x), weight.buffer.data(), eps, ToMat(out));
  AfterOp("RmsNorm");
}

void CudaBackend::AddRmsNorm(Tensor residual, Tensor delta, const Weight& weight, float eps,
                             Tensor out) {
  RS_CHECK(weight.dtype == dtype_ && weight.rows == 1 && weight.cols == residual.cols);
  RS_CHECK(residual.dtype == dtype_);
  SetDevice();
  LaunchAddRmsNorm(stream_, ToMat(residual), ToMat(delta), weight.buffer.data(), eps, ToMat(out));
  AfterOp("AddRmsNorm");
}

void CudaBackend::MatMul(Tensor x, const Weight& w, Tensor y) {
  RS_CHECK(x.dtype == dtype_ && w.dtype == dtype_ && (y.dtype == dtype_ || y.dtype == DType::kF32));
  RS_CHECK(x.cols == w.cols && y.cols == w.rows && y.rows == x.rows);
  SetDevice();
  if (cublas_ != nullptr) {
    cublas_->Run(stream_, ToMat(x), w.buffer.data(), w.rows, ToMat(y));
  } else {
    LaunchSimpleMatMul(stream_, ToMat(x), w.buffer.data(), w.rows, ToMat(y));
  }
  AfterOp("MatMul");
}

void CudaBackend::RopeAndWriteKv(Tensor qkv, const AttentionShape& shape, const RopeParams& rope,
                                 const AttentionBatch& batch, const KvLayerView& kv) {
  RS_CHECK(qkv.dtype == dtype_ && kv.dtype == dtype_);
  RS_CHECK(kv.num_kv_heads == shape.num_kv_heads && kv.head_dim == shape.head_dim);
  SetDevice();
  LaunchRopeAndWriteKv(stream_, ToMat(qkv), ToHeadArgs(shape), rope.inv_freq, rope.rotary_dim,
                       rope.layout == RopeLayout::kHalves, ToBatchArgs(batch),
                       KvArgs{kv.k, kv.v, kv.block_size, kv.num_blocks});
  AfterOp("RopeAndWriteKv");
}

void CudaBackend::PagedAttention(Tensor qkv, const AttentionShape& shape,
                                 const AttentionBatch& batch, const KvLayerView& kv, Tensor out) {
  RS_CHECK(qkv.dtype == dtype_ && kv.dtype == dtype_ && out.dtype == dtype_);
  RS_CHECK(kv.num_kv_heads == shape.num_kv_heads && kv.head_dim == shape.head_dim);
  SetDevice();
  auto* items = static_cast<int32_t*>(attention_items_);
  const AttentionScratch scratch{items,
                                 reinterpret_cast<int*>(items + 2 * attention_item_capacity_),
                                 attention_item_capacity_,
                                 attention_partials_,
                                 attention_partial_floats_,
                                 num_sms_,
                                 max_shared_bytes_};
  LaunchPagedAttention(stream_, ToMat(qkv), ToHeadArgs(shape), ToBatchArgs(batch),
                       KvArgs{kv.k, kv.v, kv.block_size, kv.num_blocks}, scratch, split_mode_,
                       attention_kernel_ == AttentionKernel::kTensorCore, ToMat(out));
  AfterOp("PagedAttention");
}

absl::Status CudaBackend::SetAttentionKernel(AttentionKernel kernel) {
  attention_kernel_ = kernel;
  return absl::OkStatus();
}

void CudaBackend::SiluMul(Tensor gate_up, Tensor out) {
  RS_CHECK(gate_up.dtype == dtype_);
  SetDevice();
  LaunchSiluMul(stream_, ToMat(gate_up), ToMat(out));
  AfterOp("SiluMul");
}

void CudaBackend::GatherRows(Tensor x, const int32_t* rows, Tensor out) {
  RS_CHECK(x.dtype == out.dtype);
  SetDevice();
  LaunchGatherRows(stream_, ToMat(x), rows, ToMat(out));
  AfterOp("GatherRows");
}

int CudaBackend::num_matmul_plans() const { return cublas_ != nullptr ? cublas_->num_plans() : 0; }

int CudaBackend::num_simple_matmul_plans() const {
  return cublas_ != nullptr ? cublas_->num_simple_plans() : 0;
}

}  // namespace ringserve::kernels::RS_CUDA_NS
