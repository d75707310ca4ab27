// The compute interface the model runs on: device-resident buffers and the batched ops of
// a Llama forward pass. The CPU backend (kernels/cpu/) and the CUDA backend (kernels/cuda/)
// implement it; the model never touches device memory any other way.
//
// Conventions, identical on every backend:
// - Every pointer an op receives is device memory of that backend (allocated through it);
//   ops are enqueued on the backend's single stream in call order and may run
//   asynchronously. Only CopyToHost and Synchronize wait. No op reads host memory, so a
//   forward pass makes no host round trip between ops.
// - Activation tensors are 2-D row-major [rows, cols] in the backend's activation dtype
//   (f32 on the CPU). One row per token of the batch.
// - A Weight is a 2-D matrix [rows = output features, cols = input features] uploaded once
//   and stored in whatever layout the backend's MatMul prefers.
// - Results are batch invariant: a row's output depends only on that row's inputs (and for
//   attention, on its own sequence's KV), never on how many rows or sequences share the
//   call. The generator's determinism guarantee rests on this.
#ifndef RINGSERVE_KERNELS_BACKEND_H_
#define RINGSERVE_KERNELS_BACKEND_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kernels/dtype.h"
#include "kernels/lora_stack.h"
#include "kernels/random_weights.h"
#include "kernels/row_logprobs.h"
#include "kernels/row_sampling.h"

namespace ringserve::kernels {

class Backend;

// Where a buffer lives: device memory (Backend::Allocate), or host memory the backend's
// copies run fastest from and to (Backend::AllocateHost).
enum class MemoryKind : uint8_t { kDevice, kHost };

// Memory owned by a Backend; freed through it when the buffer is destroyed. Move-only.
// The Backend must outlive its buffers.
template <MemoryKind kKind>
class OwnedBuffer {
 public:
  OwnedBuffer() = default;
  OwnedBuffer(Backend* owner, void* data, size_t bytes)
      : owner_(owner), data_(data), bytes_(bytes) {}
  OwnedBuffer(OwnedBuffer&& other) noexcept { *this = std::move(other); }
  OwnedBuffer& operator=(OwnedBuffer&& other) noexcept {
    if (this != &other) {
      Reset();
      owner_ = std::exchange(other.owner_, nullptr);
      data_ = std::exchange(other.data_, nullptr);
      bytes_ = std::exchange(other.bytes_, 0);
    }
    return *this;
  }
  OwnedBuffer(const OwnedBuffer&) = delete;
  OwnedBuffer& operator=(const OwnedBuffer&) = delete;
  ~OwnedBuffer() { Reset(); }

  void Reset();  // defined after Backend
  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  template <typename T>
  T* as() const {
    return static_cast<T*>(data_);
  }

 private:
  Backend* owner_ = nullptr;
  void* data_ = nullptr;
  size_t bytes_ = 0;
};
using DeviceBuffer = OwnedBuffer<MemoryKind::kDevice>;
using HostBuffer = OwnedBuffer<MemoryKind::kHost>;

// A view of a 2-D row-major activation tensor in device memory. Rows are `row_stride`
// elements apart (row_stride >= cols), so a column slice of a wider tensor is a view too.
struct Tensor {
  void* data = nullptr;
  DType dtype = DType::kF32;
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t row_stride = 0;

  static Tensor Of(void* data, DType dtype, int64_t rows, int64_t cols) {
    return Tensor{data, dtype, rows, cols, cols};
  }
  // Columns [begin, begin + count) of every row.
  Tensor Columns(int64_t begin, int64_t count) const;
  // Rows [begin, begin + count).
  Tensor Rows(int64_t begin, int64_t count) const;
};

// A weight matrix in the backend's preferred layout. Created by Backend::UploadWeight.
struct Weight {
  DeviceBuffer buffer;
  DType dtype = DType::kF32;  // element type as stored on the device
  int64_t rows = 0;           // output features
  int64_t cols = 0;           // input features
};

// Paged KV storage of one layer. K and V are each [num_blocks, block_size, num_kv_heads,
// head_dim] in `dtype`; token t of a sequence lives in slot block_table[t / block_size] *
// block_size + t % block_size.
struct KvLayerView {
  void* k = nullptr;
  void* v = nullptr;
  DType dtype = DType::kF32;
  int num_blocks = 0;
  int block_size = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
};

// Where each token of a batch sits, all arrays in device memory. Built once per forward
// pass by the model and shared by every layer.
//
// Padding, so that a replayed graph (Backend::CaptureGraph) can serve batches smaller than
// the one it was captured for: a token with a negative slot writes no K/V; token rows from
// query_start[num_seqs] on belong to no sequence, and attention leaves their output
// undefined; a sequence may have no tokens. Real rows' results do not change.
struct AttentionBatch {
  int num_tokens = 0;
  int num_seqs = 0;
  int max_blocks_per_seq = 0;  // row length of block_tables
  // At least the largest of context_lens, for launch sizing only: a graph passes the most
  // its replays may need.
  int max_context_len = 0;
  const int32_t* positions = nullptr;     // [num_tokens] absolute position in its sequence
  const int32_t* slots = nullptr;         // [num_tokens] KV slot the token's K/V goes to, or -1
  const int32_t* token_seq = nullptr;     // [num_tokens] index of the token's sequence, or -1
  const int32_t* query_start = nullptr;   // [num_seqs + 1] first token row of each sequence
  const int32_t* context_lens = nullptr;  // [num_seqs] KV length after this pass
  const int32_t* block_tables = nullptr;  // [num_seqs, max_blocks_per_seq]
  // query_start (and the counts above) hold what they held at this backend's previous
  // PagedAttention call: the attention's work plan, which depends on them only, may be kept.
  // LlamaModel sets it for every layer of a pass after the first. A backend re-plans anyway
  // when the call's pointers, counts or kernel differ from the previous call's.
  bool plan_reused = false;
};

// Rotary embedding parameters. Scaling variants (e.g. Llama 3) only change the
// frequencies, so the model computes them on the host once and uploads them.
enum class RopeLayout : uint8_t {
  kAdjacentPairs,  // rotate (x[2i], x[2i+1]): llama2.c, GGUF "llama"
  kHalves,         // rotate (x[i], x[i + d/2]): Hugging Face checkpoints
};
struct RopeParams {
  const float* inv_freq = nullptr;  // device [rotary_dim / 2]
  int rotary_dim = 0;               // leading dims of each head that rotate (<= head_dim)
  RopeLayout layout = RopeLayout::kAdjacentPairs;
};

// Shape of the fused QKV projection: each token row holds num_q_heads query heads, then
// num_kv_heads key heads, then num_kv_heads value heads, head_dim values each.
struct AttentionShape {
  int num_q_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  float scale = 0;  // softmax scale, usually 1/sqrt(head_dim)
  // Sliding-window attention (Mistral 7B v0.1): > 0, a query at position p attends to its
  // last `window` keys only, positions FirstAttendedKey(p, window)..p; 0 attends to all.
  int window = 0;
};

// The first key position a query at `position` attends to (AttentionShape::window).
inline int32_t FirstAttendedKey(int32_t position, int window) {
  return window > 0 && position >= window ? position - window + 1 : 0;
}

// The attention kernels behind PagedAttention. Both are batch invariant; they differ in the
// last bits, so a backend switches only between generations.
enum class AttentionKernel : uint8_t {
  kSimt,        // f32 arithmetic throughout: the CPU's kernel, CUDA's SIMT kernel
  kTensorCore,  // CUDA: softmax weights rounded to f16/bf16 for mma.sync (attention_mma.cu)
};
// "simt" or "tensor-core", as the --attention flag spells them.
std::string_view AttentionKernelName(AttentionKernel kernel);

// The largest PagedAttention calls a model will make, for Backend::ReserveAttention.
struct AttentionLimits {
  int max_tokens = 0;       // query token rows of one call
  int max_seqs = 0;         // sequences of one call
  int max_context_len = 0;  // keys (positions 0..p) of the longest context a sequence reaches
  int num_q_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
};

// Ops recorded by Backend::CaptureGraph. Replay enqueues them again with the same arguments
// (device pointers, shapes, launch sizes) in one call; what may differ between replays is
// the contents of device memory. Owned by the caller; must not outlive its backend.
class OpGraph {
 public:
  virtual ~OpGraph() = default;
  virtual void Replay() = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual std::string_view name() const = 0;
  // dtype of activation tensors this backend computes in.
  virtual DType activation_dtype() const = 0;
  // Whether the KV cache (KvLayerView::dtype) may be kept in `dtype`: the activation dtype
  // everywhere; the CPU, which computes in f32, also keeps it in f16 or bf16 (half the
  // memory and the bytes each decode step reads), widened exactly as attention loads it.
  virtual bool SupportsKvDtype(DType dtype) const { return dtype == activation_dtype(); }
  // Device memory free for allocation now (bytes); used to size the KV pool.
  virtual size_t FreeMemoryBytes() const = 0;
  // What a KV pool sized from free memory leaves aside for the device runtime's own later
  // allocations (kernels loaded on first use, graph executables), so that even a pool of all
  // the free memory does not make those fail mid-serving. 0 where there are none.
  virtual size_t RuntimeReserveBytes() const { return 0; }
  // For a device that backs an allocation only when it is first written (the CPU: Linux
  // overcommits, so a 100 GB KV pool "allocated" on a 24 GiB machine and the worker was
  // killed for memory once the pool filled), the most memory it can ever back (capped by a
  // container's memory limit); a model
  // refuses at start to need more. 0 where Allocate itself fails when memory runs out (a
  // GPU: cudaMalloc).
  virtual size_t LazyMemoryLimitBytes() const { return 0; }

  // ---- memory ----
  virtual absl::StatusOr<DeviceBuffer> Allocate(size_t bytes) = 0;
  // Host memory for the data a step copies each way (batch metadata up, logits down):
  // page-locked on a GPU, so CopyToHost runs at full bus speed and CopyToDevice needs no
  // staging copy; plain memory elsewhere. Allocate at start-up, never on the step path.
  virtual absl::StatusOr<HostBuffer> AllocateHost(size_t bytes);
  // Asynchronous in stream order: a HostBuffer source must stay unchanged until the next
  // CopyToHost or Synchronize (pageable memory may be reused at once).
  virtual void CopyToDevice(void* dst, const void* src, size_t bytes) = 0;
  // Waits for every queued op, then copies.
  virtual void CopyToHost(void* dst, const void* src, size_t bytes) = 0;
  // A copy into a HostBuffer queued in stream order like an op, without waiting: the bytes
  // are there for later copies on the stream (CopyToDevice from them) at once, and for host
  // code after the next Synchronize or CopyToHost. The KV cache's host tier copies evicted
  // blocks out so, between passes, without stalling on each one.
  virtual void CopyToHostQueued(void* dst, const void* src, size_t bytes) {
    CopyToHost(dst, src, bytes);
  }
  // Device-to-device copy, enqueued on the stream like an op (copy-on-write of KV blocks).
  // The ranges must not overlap.
  virtual void CopyOnDevice(void* dst, const void* src, size_t bytes) = 0;
  // The copies above for `rows` rows of `width` bytes each, `src_pitch` and `dst_pitch`
  // bytes apart (>= width), in one call where a row each would take `rows`: a KV block in
  // every layer's K and V (KvStorage). The defaults copy row by row.
  virtual void CopyOnDevice2D(void* dst, size_t dst_pitch, const void* src, size_t src_pitch,
                              size_t width, size_t rows);
  virtual void CopyToDevice2D(void* dst, size_t dst_pitch, const void* src, size_t src_pitch,
                              size_t width, size_t rows);
  virtual void CopyToHostQueued2D(void* dst, size_t dst_pitch, const void* src, size_t src_pitch,
                                  size_t width, size_t rows);
  virtual void Synchronize() = 0;
  virtual void Fill(void* dst, size_t bytes, uint8_t value) = 0;

  // Uploads a [rows, cols] host matrix of `dtype` (f32, f16, bf16, q8_0, or what else
  // TakesWeightDType allows) into the backend's MatMul layout. Unsupported dtypes are an
  // error, never a crash.
  virtual absl::StatusOr<Weight> UploadWeight(DType dtype, int64_t rows, int64_t cols,
                                              const void* host_data) = 0;
  // Whether UploadWeight takes matrices of `dtype`: loaders give a backend that does not
  // take a checkpoint's format the nearest one it does (the compact dtypes: Q8_0). The CPU
  // and CUDA backends take all of these.
  virtual bool TakesWeightDType(DType dtype) const {
    return dtype == DType::kF32 || dtype == DType::kF16 || dtype == DType::kBF16 ||
           IsBlockDType(dtype);
  }
  // Whether it takes the compact block dtypes (kQ4Affine, kQ5Affine, kIQ4), which loaders
  // then serve GGUF's 4- and 5-bit formats as, with the file's values (model/gguf_blocks.h).
  bool TakesCompactWeights() const {
    return TakesWeightDType(DType::kQ4Affine) && TakesWeightDType(DType::kQ5Affine) &&
           TakesWeightDType(DType::kIQ4);
  }
  // The bytes UploadWeight takes for such a matrix: the activation dtype's by default (every
  // weight is stored in it); the CPU keeps bf16, f16 and quantized matrices as they are,
  // else f32.
  virtual size_t WeightBytes(DType dtype, int64_t rows, int64_t cols) const {
    return DTypeBytes(activation_dtype(), static_cast<size_t>(rows * cols));
  }

  // A [sum of the parts' rows, cols] weight of random values (benchmarks at real shapes):
  // the parts' rows in order, element i of a part RandomUniform(part.state, i, scale),
  // stored exactly as UploadWeight stores those values given in f32. Each backend makes
  // them in parallel where they are stored (the CPU on its pool, CUDA on the device).
  virtual absl::StatusOr<Weight> RandomWeight(std::span<const RandomPart> parts, int64_t cols,
                                              float scale) = 0;

  // ---- ops ----
  // The residual stream and q/k/v may be kept in f32 on backends with narrower activations:
  // `out` of EmbeddingGather, `x` of RmsNorm, `residual` and `delta` of AddRmsNorm, `qkv` of
  // RopeAndWriteKv and PagedAttention (and so MatMul's y) are in the activation dtype or
  // f32; the other tensors are in the activation dtype, and the KV cache in a dtype
  // SupportsKvDtype accepts.

  // out[i, :] = table[ids[i], :] for i < num_tokens. ids are device int32.
  virtual void EmbeddingGather(const Weight& table, const int32_t* ids, Tensor out) = 0;

  // out[i, :] = x[i, :] / rms(x[i, :]) * weight, rms = sqrt(mean(x^2) + eps).
  // `weight` is a [1, cols] Weight.
  virtual void RmsNorm(Tensor x, const Weight& weight, float eps, Tensor out) = 0;

  // residual += delta (rounded to residual's dtype); out = RmsNorm(residual). The residual
  // stream update fused with the next norm.
  virtual void AddRmsNorm(Tensor residual, Tensor delta, const Weight& weight, float eps,
                          Tensor out) = 0;

  // y[n, rows(w)] = x[n, cols(w)] * w^T. y is in the activation dtype, or f32 (logits, the
  // residual stream's deltas, qkv) on backends whose activations are narrower.
  virtual void MatMul(Tensor x, const Weight& w, Tensor y) = 0;

  // qkv is the fused projection output [num_tokens, (Hq + 2 Hkv) * head_dim]. Rotates the
  // query heads in place, rotates the key heads, and writes K and V of every token into
  // its slot of `kv`.
  virtual void RopeAndWriteKv(Tensor qkv, const AttentionShape& shape, const RopeParams& rope,
                              const AttentionBatch& batch, const KvLayerView& kv) = 0;

  // Causal attention of every query row over its own sequence's paged KV (positions
  // 0..position inclusive, or its window: AttentionShape::window), grouped-query aware: query head
  // h reads KV head h / (Hq / Hkv). Covers prefill chunks and decode alike. Reads the queries from
  // the first Hq * head_dim columns of qkv; writes out [num_tokens, Hq * head_dim].
  virtual void PagedAttention(Tensor qkv, const AttentionShape& shape, const AttentionBatch& batch,
                              const KvLayerView& kv, Tensor out) = 0;

  // Makes PagedAttention ready for every call within `limits`: allocates whatever scratch
  // those calls need now, so the step path never allocates and never runs out. Called once
  // by a model at creation; grows what earlier calls reserved, never shrinks it, so models
  // may share a backend. Not inside a graph capture. INVALID_ARGUMENT for non-positive
  // limits or query heads not a multiple of kv heads, RESOURCE_EXHAUSTED when the device
  // memory is short. The default (CPU) has nothing to reserve.
  virtual absl::Status ReserveAttention(const AttentionLimits& limits);

  // y[i, :] += (x[i, :] A_s^T) B_s^T for every row i whose slot s = row_slots[i] (device
  // int32 [rows(x)]) is >= 0; rows with a negative slot keep y as it is. x [rows, lora.in] is in
  // the activation dtype, y [rows, lora.out] in it or f32 (a column slice of a projection's
  // output); `scratch` is device memory for rows(x) * lora.rank floats. Each row's sums run
  // in f32 in a fixed order (batch invariant) and round once into y.
  virtual void AddLora(Tensor x, const LoraStack& lora, const int32_t* row_slots, float* scratch,
                       Tensor y) = 0;
  // x[i, :] += bias[0, :] for every row of the f32 x: the Q/K/V projection biases of the
  // models that have them (Qwen2). bias is a [1, cols(x)] Weight.
  virtual void AddBias(Tensor x, const Weight& bias) = 0;
  // In place, each group of head_dim columns of every row of the f32 x: group /= rms(group),
  // times weight (a [1, head_dim] Weight): the per-head Q and K norms of the models that
  // have them (Qwen3). cols(x) is a multiple of head_dim.
  virtual void HeadRmsNorm(Tensor x, int64_t head_dim, const Weight& weight, float eps) = 0;

  // out[i, j] = silu(gate_up[i, j]) * gate_up[i, j + cols(out)]: the SwiGLU product of
  // the fused gate/up projection.
  virtual void SiluMul(Tensor gate_up, Tensor out) = 0;

  // out[i, :] = x[rows[i], :] for i < rows(out). rows is device int32. Used to keep only
  // the rows whose logits are sampled.
  virtual void GatherRows(Tensor x, const int32_t* rows, Tensor out) = 0;

  // ids[i] = the token that row i of the f32 logits x picks under params[i]: the chain of
  // kernels/row_sampling.h, whose result is the same on every backend. params is device
  // memory [x.rows], ids device int32 [x.rows]. Sampling on the device means only the ids
  // cross the bus, and no host thread walks the vocabulary per row.
  virtual void SampleRows(Tensor x, const RowSampling* params, int32_t* ids) = 0;
  // For every row i of the f32 logits x, in place: x[i, e.token] = PenalizedLogit(x[i,
  // e.token], params[i], e) for the entries e of [params[i].penalty_begin,
  // params[i].penalty_end) (kernels/row_sampling.h; a row's tokens are distinct, ids outside
  // the row are skipped), keeping the logit it replaces in e.raw. params and entries are
  // device memory.
  virtual void PenalizeRows(Tensor x, const RowSampling* params, PenaltyEntry* entries) = 0;
  // Undoes PenalizeRows with the same params and entries: x[i, e.token] = e.raw, the raw
  // logits again, bit for bit, for LogprobRows.
  virtual void UnpenalizeRows(Tensor x, const RowSampling* params, const PenaltyEntry* entries) = 0;
  // out[i] = the logprobs of row rows[i] of the f32 logits x, its chosen token being
  // ids[rows[i]] (kernels/row_logprobs.h), for i < num_rows. rows, ids and out are device
  // memory. A row's logprobs never depend on the other rows.
  virtual void LogprobRows(Tensor x, const int32_t* rows, int32_t num_rows, const int32_t* ids,
                           RowLogprobs* out) = 0;

  // The kernel PagedAttention runs (shapes it does not cover run on kSimt: see
  // BackendOptions::cuda_attention_kernel).
  virtual AttentionKernel attention_kernel() const { return AttentionKernel::kSimt; }
  // Switches PagedAttention's kernel from the next call on (benchmarks compare both in one
  // process). Never in the middle of a generation: the result bits change. Graphs captured
  // before replay the old kernel (model::DecodeGraphs captures again). The default is a
  // backend with only kSimt: OK for it, FAILED_PRECONDITION naming the backend for any
  // other (nothing changes then).
  virtual absl::Status SetAttentionKernel(AttentionKernel kernel);

  // The row count MatMul's one algorithm per product shape is chosen for (CUDA: cuBLASLt's
  // heuristic; 0 where MatMul has a single kernel, as on the CPU). SetMatMulAlgoRows changes
  // it from the next product on: a benchmark's sweep or --matmul-algo-rows, never in the
  // middle of a generation (the result bits change). Graphs captured before replay the old
  // algorithms. FAILED_PRECONDITION naming the backend where there is nothing to choose,
  // INVALID_ARGUMENT for rows the backend cannot plan for.
  virtual int64_t matmul_algo_rows() const { return 0; }
  virtual absl::Status SetMatMulAlgoRows(int64_t rows);

  // ---- graphs ----
  // Whether CaptureGraph works here (CUDA); elsewhere callers simply enqueue ops each time.
  virtual bool can_capture_graphs() const { return false; }
  // Waits for queued work, then records the ops `enqueue_ops` issues on this backend
  // without running them. Those ops must not wait or touch host memory (no CopyToDevice,
  // CopyToHost, Synchronize) nor allocate or free; every lazily created resource they use
  // (e.g. MatMul plans) should exist already, so run the same ops once before capturing.
  // UNIMPLEMENTED where can_capture_graphs() is false.
  virtual absl::StatusOr<std::unique_ptr<OpGraph>> CaptureGraph(
      absl::FunctionRef<void()> enqueue_ops);

  // Device allocations made so far (buffers, weights, internal scratch), or -1 where the
  // backend does not count them. Tests assert it stays put across forward passes: the step
  // path must never allocate.
  virtual int64_t num_allocations() const { return -1; }

 protected:
  template <MemoryKind>
  friend class OwnedBuffer;
  // The rows of RandomWeight's result; INVALID_ARGUMENT for no parts or an empty one.
  absl::StatusOr<int64_t> RandomWeightRows(std::span<const RandomPart> parts, int64_t cols) const;
  virtual void Free(void* data, size_t bytes) = 0;
  virtual void FreeHost(void* data, size_t bytes);
};

template <MemoryKind kKind>
void OwnedBuffer<kKind>::Reset() {
  if (owner_ != nullptr && data_ != nullptr) {
    if constexpr (kKind == MemoryKind::kDevice) {
      owner_->Free(data_, bytes_);
    } else {
      owner_->FreeHost(data_, bytes_);
    }
  }
  owner_ = nullptr;
  data_ = nullptr;
  bytes_ = 0;
}

// Every backend this build and machine can run: always "cpu", plus "cuda:N" for each
// visible GPU when the CUDA backend is built.
struct BackendOptions {
  int num_threads = 0;  // CPU: 0 = one per core
  // CPU: use OpenBLAS sgemm for large products. Faster prefill, but the result of a row
  // then depends on the batch shape, so batch invariance no longer holds.
  bool cpu_use_blas = false;
  // CUDA: dtype of activations, KV storage and stored weights: bf16 (default), f16, or f32
  // (slow; for checking against the CPU and float64 references).
  DType cuda_activation_dtype = DType::kBF16;
  // CUDA: MatMul on the simple tiled kernel instead of cuBLASLt. Both are batch invariant;
  // the simple one is the reference (and fallback) for the fast one.
  bool cuda_simple_matmul = false;
  // CUDA: kTensorCore runs paged attention on tensor cores (mma.sync) for f16/bf16
  // activations: every row, prefill and decode, through the same MMA arithmetic
  // (kernels/cuda/attention_mma.cu), so results stay batch invariant but differ in the last
  // bits from the SIMT f32 kernel's. kSimt until validated on hardware. It needs f16 or bf16
  // activations (INVALID_ARGUMENT with f32); head_dim > 256 and more than 64 query heads per
  // kv head keep the SIMT kernel.
  // Backend::SetAttentionKernel switches it later.
  AttentionKernel cuda_attention_kernel = AttentionKernel::kSimt;
};
absl::StatusOr<std::unique_ptr<Backend>> CreateBackend(std::string_view device,
                                                       const BackendOptions& options = {});

}  // namespace ringserve::kernels

#endif  // RINGSERVE_KERNELS_BACKEND_H_
