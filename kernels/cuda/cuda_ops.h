// Launchers of the CUDA backend's kernels. Plain C++ (no Abseil), so the .cu files compile
// without the backend's headers; CudaBackend translates its Tensor/AttentionBatch views into
// these structs. Every launcher checks its preconditions on the host (RS_CHECK), enqueues
// on `stream`, checks the launch, and returns without waiting. Activation tensors are f32,
// f16 or bf16; each kernel computes in f32 and rounds once when it stores.
#ifndef RINGSERVE_KERNELS_CUDA_CUDA_OPS_H_
#define RINGSERVE_KERNELS_CUDA_CUDA_OPS_H_

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "kernels/cuda/cuda_index.h"
#include "kernels/cuda/cuda_namespace.h"
#include "kernels/dtype.h"
#include "kernels/lora_stack.h"
#include "kernels/row_logprobs.h"
#include "kernels/row_sampling.h"

namespace ringserve::kernels::RS_CUDA_NS {

// A 2-D row-major device matrix: rows `stride` elements apart.
struct Mat {
  void* data = nullptr;
  DType dtype = DType::kF32;
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t stride = 0;
};

bool IsActivationDtype(DType dtype);  // f32, f16 or bf16

// dst[i] = src[i] converted to `dst_dtype` (an activation dtype); src may be f32, f16, bf16
// or q8_0 (count a multiple of 32). Used by UploadWeight.
void LaunchConvert(cudaStream_t stream, DType src_dtype, const void* src, DType dst_dtype,
                   void* dst, int64_t count);

// dst[i] = RandomUniform(state, i, scale) (kernels/random_weights.h) rounded to `dtype` (an
// activation dtype), for i < count: Backend::RandomWeight's values made in place.
void LaunchRandomUniform(cudaStream_t stream, uint64_t state, float scale, DType dtype, void* dst,
                         int64_t count);

// In these three, the residual stream (out of EmbeddingGather; x of RmsNorm; residual and
// delta of AddRmsNorm) may be f32 where the other operands are f16/bf16.
// out[i, :] = table[ids[i], :]; table is [table_rows, out.cols] contiguous in table_dtype.
void LaunchEmbeddingGather(cudaStream_t stream, DType table_dtype, const void* table,
                           int64_t table_rows, const int32_t* ids, const Mat& out);
// out = x / rms(x) * weight per row; weight has x.cols values of out.dtype.
void LaunchRmsNorm(cudaStream_t stream, const Mat& x, const void* weight, float eps,
                   const Mat& out);
// residual += delta (rounded to the residual's dtype), then out = RmsNorm(residual); weight
// in out.dtype.
void LaunchAddRmsNorm(cudaStream_t stream, const Mat& residual, const Mat& delta,
                      const void* weight, float eps, const Mat& out);
// x[i, j] += bias[j] for the f32 x; bias holds x.cols values of `bias_dtype` (an activation
// dtype).
void LaunchAddBias(cudaStream_t stream, const Mat& x, const void* bias, DType bias_dtype);
// In place over the f32 x: each head_dim group of a row RMS-normalised, times weight.
void LaunchHeadRmsNorm(cudaStream_t stream, const Mat& x, int64_t head_dim, const void* weight,
                       DType weight_dtype, float eps);
// out[i, j] = silu(g) * u, g = gate_up[i, j], u = gate_up[i, j + out.cols].
void LaunchSiluMul(cudaStream_t stream, const Mat& gate_up, const Mat& out);
// out[i, :] = x[rows[i], :].
void LaunchGatherRows(cudaStream_t stream, const Mat& x, const int32_t* rows, const Mat& out);
// Backend::AddLora: x in the activation dtype, y in it or f32; A and B^T in x's dtype.
void LaunchAddLora(cudaStream_t stream, const Mat& x, const LoraStack& lora,
                   const int32_t* row_slots, float* scratch, const Mat& y);
// ids[i] = the token f32 row i picks under params[i] (device memory, [x.rows]): the chain of
// kernels/row_sampling.h (sampling.cu).
void LaunchSampleRows(cudaStream_t stream, const Mat& x, const RowSampling* params, int32_t* ids);
// Backend::PenalizeRows, UnpenalizeRows and LogprobRows (sampling.cu).
void LaunchPenalizeRows(cudaStream_t stream, const Mat& x, const RowSampling* params,
                        PenaltyEntry* entries);
void LaunchUnpenalizeRows(cudaStream_t stream, const Mat& x, const RowSampling* params,
                          const PenaltyEntry* entries);
void LaunchLogprobRows(cudaStream_t stream, const Mat& x, const int32_t* rows, int32_t num_rows,
                       const int32_t* ids, RowLogprobs* out);

// The simple MatMul: y = x w^T with w [w_rows, x.cols] contiguous in x.dtype; y in x.dtype
// or f32. Every output is one f32 FMA chain over k in order, so it is batch invariant by
// construction (and slow: the reference for the cuBLASLt path).
void LaunchSimpleMatMul(cudaStream_t stream, const Mat& x, const void* w, int64_t w_rows,
                        const Mat& y);

// The batch's metadata (device pointers), as in kernels::AttentionBatch.
struct BatchArgs {
  int num_tokens = 0;
  int num_seqs = 0;
  int max_blocks_per_seq = 0;
  int max_context_len = 0;
  const int32_t* positions = nullptr;
  const int32_t* slots = nullptr;
  const int32_t* query_start = nullptr;
  const int32_t* block_tables = nullptr;
  bool reuse_plan = false;  // the scratch's work items are this batch's already
};
struct HeadArgs {
  int num_q_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  float scale = 0;
  int window = 0;  // AttentionShape::window
};
struct KvArgs {
  void* k = nullptr;
  void* v = nullptr;
  int block_size = 0;
  int num_blocks = 0;
  DType dtype = DType::kF32;  // the activation dtype, or kF8E4M3
};

// Rotates the q and k heads of qkv in place (angles pos * inv_freq[i] in float64) and
// writes k and v of each token to its slot, in kv_dtype. qkv is in kv_dtype or f32.
void LaunchRopeAndWriteKv(cudaStream_t stream, const Mat& qkv, const HeadArgs& heads,
                          const float* inv_freq, int rotary_dim, bool layout_halves,
                          const BatchArgs& batch, DType kv_dtype, const KvArgs& kv);

// Device scratch of the attention, allocated by the backend before the step path.
struct AttentionScratch {
  void* items = nullptr;     // int2 [item_capacity]: (sequence, first token)
  int* num_items = nullptr;  // [1]
  int64_t item_capacity = 0;
  float* partials = nullptr;   // split states: (max, sum, acc[head_dim]) each
  int64_t partial_floats = 0;  // capacity of partials
  int num_sms = 0;
  size_t max_shared_bytes = 0;  // dynamic shared memory a block may use
};

// Causal paged attention; see attention.cu for the arithmetic and why it is batch invariant.
// `tensor_cores`: f16/bf16 shapes run the tensor-core kernel of attention_mma.cu (its own
// arithmetic, the same for every row of the model); others, and f32, the SIMT kernel.
// Stops the process (RS_CHECK) when the batch needs more work items than the scratch holds.
// Returns the split slots it launched: 1 when no row ran split-parallel, 0 for no tokens.
int LaunchPagedAttention(cudaStream_t stream, const Mat& qkv, const HeadArgs& heads,
                         const BatchArgs& batch, const KvArgs& kv, const AttentionScratch& scratch,
                         SplitMode split_mode, bool tensor_cores, const Mat& out);
// The AttentionScratch capacities LaunchPagedAttention uses for a batch of at most
// `max_tokens` tokens and `max_seqs` sequences whose contexts reach at most `max_context_len`
// keys, with either kernel: every work item such a batch may plan, and partials for a split
// slot per split of the longest context, up to a cap of 1 GiB (past it long rows merge in
// their block: same bits, fewer split-parallel rows).
struct AttentionScratchSize {
  int64_t items = 0;
  int64_t partial_floats = 0;
};
AttentionScratchSize AttentionScratchFor(const HeadArgs& heads, int max_tokens, int max_seqs,
                                         int max_context_len);
// The dynamic shared memory a block of the attention needs at these heads, with whichever
// kernel may run at `dtype` (the tensor-core one only at f16/bf16): what the device must
// allow per block (AttentionScratch::max_shared_bytes) before a model of them is accepted.
int64_t AttentionSharedBytesFor(const HeadArgs& heads, DType dtype);
// Raises the attention kernels' dynamic shared memory limit as far as the device's opt-in
// limit allows (once, at start-up); reports the limit for AttentionScratch.
cudaError_t ConfigureAttentionKernels(size_t optin_bytes, size_t* max_dynamic_bytes);

// Fails when this binary has no kernel image for the current device.
cudaError_t CheckKernelImage();

}  // namespace ringserve::kernels::RS_CUDA_NS

#endif  // RINGSERVE_KERNELS_CUDA_CUDA_OPS_H_
