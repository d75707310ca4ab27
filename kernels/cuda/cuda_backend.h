// The CUDA backend: bf16 (default), f16 or f32 activations and KV, weights stored in the
// activation dtype, every op enqueued on one stream.
//
// Owned by whoever created it (the model runner); every method is called from one thread at
// a time. Device memory comes from cudaMalloc only in Allocate, at start-up and in
// ReserveAttention (internal scratch); ops never allocate, so a sequence of them can be
// captured as a CUDA graph (CaptureGraph) and replayed. MatMul runs on cuBLASLt with one fixed
// algorithm per product shape (cublaslt_matmul.h) or, with BackendOptions::cuda_simple_matmul, on
// the simple tiled kernel (simple_matmul.cu); the other ops are the kernels of elementwise.cu,
// rope.cu and attention_launch.cu. All of them are batch invariant (kernels/backend.h).
// cuda_backend.cc holds the resources (device, stream, memory, scratch, graphs),
// cuda_backend_ops.cc the ops.
//
// This header needs no CUDA headers, so code compiled without nvcc's include paths (tests,
// backend.cc) can include it.
#ifndef RINGSERVE_KERNELS_CUDA_CUDA_BACKEND_H_
#define RINGSERVE_KERNELS_CUDA_CUDA_BACKEND_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/backend.h"
#include "kernels/cuda/cuda_index.h"
#include "kernels/cuda/cuda_namespace.h"

struct CUstream_st;  // cudaStream_t

namespace ringserve::kernels::RS_CUDA_NS {

class CublasLtMatMul;

class CudaBackend final : public Backend {
 public:
  // FAILED_PRECONDITION when there is no usable driver or device (or no kernel image for
  // it), NOT_FOUND when `ordinal` is out of range, INVALID_ARGUMENT for bad options.
  static absl::StatusOr<std::unique_ptr<Backend>> Create(int ordinal,
                                                         const BackendOptions& options);
  ~CudaBackend() override;

  std::string_view name() const override { return name_; }
  DType activation_dtype() const override { return dtype_; }
  // The activation dtype, or fp8 (E4M3): half a bf16 cache's bytes, read by the SIMT
  // attention kernel (the tensor-core option keeps SIMT for it).
  bool SupportsKvDtype(DType dtype) const override {
    return dtype == dtype_ || dtype == DType::kF8E4M3;
  }
  size_t FreeMemoryBytes() const override;
  // CUDA loads modules (ours, cuBLASLt's) on first launch and instantiates decode graphs
  // after start-up.
  size_t RuntimeReserveBytes() const override { return size_t{1} << 30; }
  int64_t num_allocations() const override { return num_allocations_; }

  absl::StatusOr<DeviceBuffer> Allocate(size_t bytes) override;
  absl::StatusOr<HostBuffer> AllocateHost(size_t bytes) override;
  void CopyToDevice(void* dst, const void* src, size_t bytes) override;
  void CopyToHost(void* dst, const void* src, size_t bytes) override;
  void CopyToHostQueued(void* dst, const void* src, size_t bytes) override;
  void CopyOnDevice(void* dst, const void* src, size_t bytes) override;
  void CopyOnDevice2D(void* dst, size_t dst_pitch, const void* src, size_t src_pitch, size_t width,
                      size_t rows) override;
  void CopyToDevice2D(void* dst, size_t dst_pitch, const void* src, size_t src_pitch, size_t width,
                      size_t rows) override;
  void CopyToHostQueued2D(void* dst, size_t dst_pitch, const void* src, size_t src_pitch,
                          size_t width, size_t rows) override;
  void Synchronize() override;
  void Fill(void* dst, size_t bytes, uint8_t value) override;
  absl::StatusOr<Weight> UploadWeight(DType dtype, int64_t rows, int64_t cols,
                                      const void* host_data) override;
  // Made on the device in the activation dtype: no host values, no staging.
  absl::StatusOr<Weight> RandomWeight(std::span<const RandomPart> parts, int64_t cols,
                                      float scale) override;

  // Both kernels; kTensorCore needs f16/bf16 activations (FAILED_PRECONDITION in f32).
  AttentionKernel attention_kernel() const override { return attention_kernel_; }
  absl::Status SetAttentionKernel(AttentionKernel kernel) override;
  int64_t matmul_algo_rows() const override;
  absl::Status SetMatMulAlgoRows(int64_t rows) override;

  bool can_capture_graphs() const override { return true; }
  absl::StatusOr<std::unique_ptr<OpGraph>> CaptureGraph(
      absl::FunctionRef<void()> enqueue_ops) override;
  // Sizes the work-item and split-partial scratch with AttentionScratchFor (cuda_ops.h).
  absl::Status ReserveAttention(const AttentionLimits& limits) override;

  void EmbeddingGather(const Weight& table, const int32_t* ids, Tensor out) override;
  void RmsNorm(Tensor x, const Weight& weight, float eps, Tensor out) override;
  void AddRmsNorm(Tensor residual, Tensor delta, const Weight& weight, float eps,
                  Tensor out) override;
  // y may be f32 when the activations are f16/bf16 (logits for the sampler).
  void MatMul(Tensor x, const Weight& w, Tensor y) override;
  void RopeAndWriteKv(Tensor qkv, const AttentionShape& shape, const RopeParams& rope,
                      const AttentionBatch& batch, const KvLayerView& kv) override;
  void PagedAttention(Tensor qkv, const AttentionShape& shape, const AttentionBatch& batch,
                      const KvLayerView& kv, Tensor out) override;
  void AddBias(Tensor x, const Weight& bias) override;
  void HeadRmsNorm(Tensor x, int64_t head_dim, const Weight& weight, float eps) override;
  void SiluMul(Tensor gate_up, Tensor out) override;
  void GatherRows(Tensor x, const int32_t* rows, Tensor out) override;
  void AddLora(Tensor x, const LoraStack& lora, const int32_t* row_slots, float* scratch,
               Tensor y) override;
  void SampleRows(Tensor x, const RowSampling* params, int32_t* ids) override;
  void PenalizeRows(Tensor x, const RowSampling* params, PenaltyEntry* entries) override;
  void UnpenalizeRows(Tensor x, const RowSampling* params, const PenaltyEntry* entries) override;
  void LogprobRows(Tensor x, const int32_t* rows, int32_t num_rows, const int32_t* ids,
                   RowLogprobs* out) override;

  // Tests: force decode attention's split-parallel path on or off (results must not change).
  void set_attention_split_mode(SplitMode mode) { split_mode_ = mode; }
  // Tests: the attention scratch's capacities, and the split slots of the last PagedAttention
  // launch (1: no row ran split-parallel).
  int64_t attention_item_capacity() const { return attention_item_capacity_; }
  int64_t attention_partial_floats() const { return attention_partial_floats_; }
  int last_attention_split_slots() const { return last_attention_split_slots_; }
  // Tests: product shapes the cuBLASLt path planned, and how many fell back to the simple
  // kernel (0 and 0 with cuda_simple_matmul).
  int num_matmul_plans() const;
  int num_simple_matmul_plans() const;

  // Only Create can make the key: construction goes through Create's checks.
  class Key {
    friend class CudaBackend;
    Key() = default;
  };
  CudaBackend(Key key, int ordinal, const BackendOptions& options);

 protected:
  void Free(void* data, size_t bytes) override;
  void FreeHost(void* data, size_t bytes) override;

 private:
  absl::Status Init();
  // cudaMalloc counted in num_allocations_.
  absl::StatusOr<void*> DeviceMalloc(size_t bytes);
  void SetDevice() const;
  // Ends every op: with RINGSERVE_CUDA_SYNC=1 in the environment waits and checks for device
  // faults, so a fault names the op that caused it (not while capturing: the op has not run).
  void AfterOp(const char* op);
  // Calls that wait, copy host memory or (de)allocate cannot be part of a graph.
  void CheckNotCapturing(const char* call) const;
  // Replaces the attention scratch buffers that hold fewer than `items` work items or
  // `partial_floats` partials with ones of exactly that size.
  absl::Status GrowAttentionScratch(int64_t items, int64_t partial_floats);
  // Frees replaced scratch, or keeps it until the backend goes once a graph may hold it.
  void RetireScratch(void* data);

  const int ordinal_;
  const std::string name_;
  const DType dtype_;
  const bool simple_matmul_;
  const bool sync_after_ops_;
  CUstream_st* stream_ = nullptr;
  int64_t num_allocations_ = 0;
  SplitMode split_mode_ = SplitMode::kAuto;
  bool capturing_ = false;        // inside CaptureGraph: ops are recorded, not run
  bool captured_graphs_ = false;  // some graph may point into the current scratch
  AttentionKernel attention_kernel_ = AttentionKernel::kSimt;
  int num_sms_ = 0;
  size_t max_shared_bytes_ = 0;
  // Scratch allocated in Init (matmul, and a floor of attention scratch) and grown by
  // ReserveAttention.
  void* matmul_workspace_ = nullptr;
  size_t matmul_workspace_bytes_ = 0;
  void* attention_items_ = nullptr;
  int64_t attention_item_capacity_ = 0;
  float* attention_partials_ = nullptr;
  int64_t attention_partial_floats_ = 0;
  std::vector<void*> retired_scratch_;  // replaced after a capture; freed in the destructor
  int last_attention_split_slots_ = 0;
  // What the attention scratch's work items were last planned for (PagedAttention).
  struct AttentionPlanKey {
    const int32_t* query_start = nullptr;
    int num_seqs = 0;
    int num_tokens = 0;
    int num_q_heads = 0;
    int num_kv_heads = 0;
    AttentionKernel kernel = AttentionKernel::kSimt;
    int window = 0;  // a sliding-window layer runs the SIMT kernel whatever `kernel` says
    DType kv_dtype = DType::kF32;  // and so does an fp8 cache
    const void* items = nullptr;
    bool operator==(const AttentionPlanKey&) const = default;
  };
  AttentionPlanKey last_attention_plan_;
  std::unique_ptr<CublasLtMatMul> cublas_;
};

}  // namespace ringserve::kernels::RS_CUDA_NS

#endif  // RINGSERVE_KERNELS_CUDA_CUDA_BACKEND_H_
