// The paged-attention launch both kernels share (the SIMT one of attention.cu and the
// tensor-core one of attention_mma.cu): the device-side plan of work items, the choice of
// split-parallel decode and its merge kernel, and the scratch sizes a backend reserves so
// that every batch within its limits fits.
#include <algorithm>
#include <cstdint>

#include "kernels/cuda/attention.h"
#include "kernels/cuda/attention_common.cuh"
#include "kernels/cuda/attention_mma.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_dtype.cuh"
#include "kernels/cuda/cuda_namespace.h"
#include "kernels/cuda/cuda_ops.h"

namespace ringserve::kernels::RS_CUDA_NS {
namespace {

constexpr int kPlanThreads = 1024;
// Splits a launch's partials hold per row (the grid's z is at most this).
constexpr int kMaxSplitSlots = 65535;
// Split-parallel blocks a launch aims for per SM: a few waves of the attention kernel.
constexpr int64_t kSplitBlocksPerSm = 16;
// The most partials scratch AttentionScratchFor asks for: 1 GiB holds e.g. 256 sequences x
// 32 query heads at 64k context and head_dim 128. Past it a batch gets fewer split slots
// than its longest rows have splits, and those rows merge inside their thread block (same
// bits, less parallelism), as with any batch the partials do not cover.
constexpr int64_t kMaxPartialBytes = int64_t{1} << 30;

using Params = AttentionParams;

// Lists the work items: each sequence's tokens in groups of tokens_per_item. One block;
// a Hillis-Steele scan of the per-sequence item counts, kPlanThreads sequences at a time.
__global__ void __launch_bounds__(kPlanThreads)
    PlanItemsKernel(const int32_t* query_start, int num_seqs, int tokens_per_item, int2* items,
                    int* num_items, int64_t capacity) {
  __shared__ int scan[kPlanThreads];
  const int tid = static_cast<int>(threadIdx.x);
  int64_t offset = 0;
  for (int base = 0; base < num_seqs; base += kPlanThreads) {
    const int s = base + tid;
    int first = 0, count = 0;
    if (s < num_seqs) {
      first = query_start[s];
      count = ItemsOfSequence(query_start[s + 1] - first, tokens_per_item);
    }
    scan[tid] = count;
    __syncthreads();
    for (int step = 1; step < kPlanThreads; step *= 2) {
      const int add = tid >= step ? scan[tid - step] : 0;
      __syncthreads();
      scan[tid] += add;
      __syncthreads();
    }
    const int64_t before = offset + scan[tid] - count;
    for (int b = 0; b < count; ++b) {
      if (before + b < capacity) items[before + b] = make_int2(s, first + b * tokens_per_item);
    }
    offset += scan[kPlanThreads - 1];
    __syncthreads();  // everyone has read scan before the next round overwrites it
  }
  if (tid == 0) *num_items = static_cast<int>(offset < capacity ? offset : capacity);
}

// One warp per (sequence, query head) of the split-parallel rows: merges the split states
// in order exactly as MergeSplit in attention.cu does, then writes the output.
template <typename T>
__global__ void __launch_bounds__(32) MergeSplitsKernel(const Params p) {
  const int seq = static_cast<int>(blockIdx.x);
  const int head = static_cast<int>(blockIdx.y);
  const int first = p.query_start[seq];
  const int seq_tokens = p.query_start[seq + 1] - first;
  if (seq_tokens != 1) return;
  const int position = p.positions[first];
  if (!SplitParallel(seq_tokens, position, p.window, p.grid_splits)) return;
  const int splits = RowSplits(position, p.window);
  const int hd = p.head_dim;
  T* out = static_cast<T*>(p.out) + first * p.out_stride + static_cast<int64_t>(head) * hd;
  for (int d0 = 0; d0 < hd; d0 += 32) {
    const int d = d0 + static_cast<int>(threadIdx.x);
    float big_m = kNegInf, big_l = 0, o = 0;
    for (int s = 0; s < splits; ++s) {
      const float* part = SplitPartial(p, seq, head, s);
      const float m = part[0], l = part[1];
      const float m_new = MaxF(big_m, m);
      const float a = RescaleFactor(big_m, m_new);
      const float b = RescaleFactor(m, m_new);
      big_l = MergeValue(big_l, a, l, b);
      if (d < hd) o = MergeValue(o, a, part[2 + d], b);
      big_m = m_new;
    }
    if (d < hd) out[d] = FromFloat<T>(Div(o, big_l));
  }
}

// Floats of one split slot's partials over a batch: (max, sum, acc[head_dim]) per (sequence,
// query head).
int64_t PartialFloatsPerSplit(int num_seqs, const HeadArgs& heads) {
  return static_cast<int64_t>(num_seqs) * heads.num_q_heads * (heads.head_dim + 2);
}

}  // namespace

AttentionScratchSize AttentionScratchFor(const HeadArgs& heads, int max_tokens, int max_seqs,
                                         int max_context_len) {
  RS_CHECK(heads.num_q_heads > 0 && heads.num_kv_heads > 0 && heads.head_dim > 0);
  RS_CHECK(heads.num_q_heads % heads.num_kv_heads == 0);
  RS_CHECK(max_tokens > 0 && max_seqs > 0 && max_context_len > 0);
  // Whichever kernel runs: the tensor-core option may be switched between passes.
  const int group = heads.num_q_heads / heads.num_kv_heads;
  AttentionScratchSize size;
  size.items = std::max(MaxAttentionItems(max_tokens, max_seqs, SimtTokensPerItem(group)),
                        MaxAttentionItems(max_tokens, max_seqs, MmaTokensPerItem(group)));
  const int64_t slots = std::min(NumSplits(max_context_len), kMaxSplitSlots);
  size.partial_floats = std::min(PartialFloatsPerSplit(max_seqs, heads) * slots,
                                 kMaxPartialBytes / static_cast<int64_t>(sizeof(float)));
  return size;
}

int64_t AttentionSharedBytesFor(const HeadArgs& heads, DType dtype) {
  RS_CHECK(heads.num_q_heads > 0 && heads.num_kv_heads > 0 && heads.head_dim > 0);
  const int group = heads.num_q_heads / heads.num_kv_heads;
  // A prefill item of the SIMT kernel holds the most rows (a decode item holds one token's).
  int64_t bytes = SimtAttentionSharedBytes(group, heads.head_dim, SimtTokensPerItem(group));
  if (MmaAttentionSupports(dtype, group, heads.head_dim)) {
    bytes = std::max(bytes, MmaAttentionSharedBytes(heads.head_dim, MmaTokensPerItem(group)));
  }
  return bytes;
}

cudaError_t ConfigureAttentionKernels(size_t optin_bytes, size_t* max_dynamic_bytes) {
  *max_dynamic_bytes = optin_bytes;
  const cudaError_t error = ConfigureSimtAttentionKernels(optin_bytes, max_dynamic_bytes);
  if (error != cudaSuccess) return error;
  return ConfigureMmaAttentionKernels(optin_bytes, max_dynamic_bytes);
}

int LaunchPagedAttention(cudaStream_t stream, const Mat& qkv, const HeadArgs& heads,
                         const BatchArgs& batch, const KvArgs& kv, const AttentionScratch& scratch,
                         SplitMode split_mode, bool tensor_cores, const Mat& out) {
  RS_CHECK(heads.num_q_heads > 0 && heads.num_kv_heads > 0 && heads.head_dim > 0);
  RS_CHECK(heads.num_q_heads % heads.num_kv_heads == 0);
  // out (and K/V) are in the activation dtype; q may be f32 (LlamaModel keeps qkv wide).
  RS_CHECK((qkv.dtype == out.dtype || qkv.dtype == DType::kF32) && qkv.rows == batch.num_tokens &&
           out.rows == batch.num_tokens);
  RS_CHECK(qkv.cols >= static_cast<int64_t>(heads.num_q_heads) * heads.head_dim);
  RS_CHECK(out.cols == static_cast<int64_t>(heads.num_q_heads) * heads.head_dim);
  RS_CHECK(qkv.stride >= qkv.cols && out.stride >= out.cols);
  RS_CHECK(kv.block_size > 0 && kv.k != nullptr && kv.v != nullptr);
  if (batch.num_tokens == 0) return 0;
  RS_CHECK(batch.num_seqs > 0 && batch.max_context_len > 0 && batch.max_blocks_per_seq > 0);
  const int group = heads.num_q_heads / heads.num_kv_heads;
  // The path depends on the model and the option only, never on the batch (see
  // attention_mma.cu): every row of a layer takes the same arithmetic. Sliding-window layers
  // and fp8 caches run on the SIMT kernel.
  const bool mma = tensor_cores && heads.window == 0 && kv.dtype == out.dtype &&
                   MmaAttentionSupports(out.dtype, group, heads.head_dim);
  // A pass of one token a sequence (decode) shares no K/V tile between tokens: one token an
  // item sizes the SIMT kernel's shared memory for its rows only (39 instead of 58 KB at
  // Llama-3-8B's heads, 5 blocks an SM instead of 3 on an H100), with the same bits (a row's
  // arithmetic never depends on its item).
  const int tokens_per_item =
      mma ? MmaTokensPerItem(group)
          : (batch.num_tokens <= batch.num_seqs ? 1 : SimtTokensPerItem(group));
  const int64_t shared_bytes =
      mma ? MmaAttentionSharedBytes(heads.head_dim, tokens_per_item)
          : SimtAttentionSharedBytes(group, heads.head_dim, tokens_per_item);
  RS_CHECK_MSG(static_cast<size_t>(shared_bytes) <= scratch.max_shared_bytes,
               "attention: head_dim x query heads per kv head too large for shared memory");
  const int64_t max_items = MaxAttentionItems(batch.num_tokens, batch.num_seqs, tokens_per_item);
  // Backend::ReserveAttention sizes the items for every batch a model accepts.
  RS_CHECK_MSG(max_items <= scratch.item_capacity,
               "attention: batch exceeds the reserved work items (Backend::ReserveAttention)");
  RS_CHECK(heads.num_kv_heads <= 65535);

  // Split-parallel decode pays off when the batch alone does not fill the GPU. The launch has
  // a slot for every split of the longest row, or as many as the partials scratch holds;
  // rows with more splits than slots merge inside their block (same bits).
  const int splits = static_cast<int>(std::min<int64_t>(
      {MaxRowSplits(batch.max_context_len, heads.window),
       scratch.partial_floats / PartialFloatsPerSplit(batch.num_seqs, heads), kMaxSplitSlots}));
  bool parallel = splits > 1;
  if (split_mode == SplitMode::kNever) parallel = false;
  if (split_mode == SplitMode::kAuto) {
    parallel = parallel && static_cast<int64_t>(batch.num_seqs) * heads.num_kv_heads <
                               4 * static_cast<int64_t>(scratch.num_sms);
  }

  Params p{};
  p.qkv = qkv.data;
  p.qkv_stride = qkv.stride;
  p.q_f32 = qkv.dtype == DType::kF32;
  p.out = out.data;
  p.out_stride = out.stride;
  p.k = kv.k;
  p.v = kv.v;
  p.num_q_heads = heads.num_q_heads;
  p.num_kv_heads = heads.num_kv_heads;
  p.head_dim = heads.head_dim;
  p.group = group;
  p.scale = heads.scale;
  p.window = heads.window;
  p.block_size = kv.block_size;
  p.max_blocks_per_seq = batch.max_blocks_per_seq;
  p.positions = batch.positions;
  p.query_start = batch.query_start;
  p.block_tables = batch.block_tables;
  p.items = static_cast<const int2*>(scratch.items);
  p.num_items = scratch.num_items;
  p.tokens_per_item = tokens_per_item;
  p.partials = scratch.partials;
  p.grid_splits = parallel ? splits : 1;
  const int64_t element_bytes = static_cast<int64_t>(DTypeBytes(kv.dtype, 1));
  p.vector_loads = heads.head_dim * element_bytes % 16 == 0 &&
                   reinterpret_cast<uintptr_t>(kv.k) % 16 == 0 &&
                   reinterpret_cast<uintptr_t>(kv.v) % 16 == 0;

  if (!batch.reuse_plan) {
    RS_LAUNCH(PlanItemsKernel, 1, kPlanThreads, 0, stream, batch.query_start, batch.num_seqs,
              tokens_per_item, static_cast<int2*>(scratch.items), scratch.num_items,
              scratch.item_capacity);
    RS_CUDA_CHECK_LAUNCH();
  }
  // Slots per split-parallel row (grid z): enough blocks for a few waves, not one per split;
  // slot z runs every grid_z-th split. A decode graph is captured for the model's longest
  // context, where a slot per split would launch mostly blocks that find no split and exit,
  // each holding its shared memory while it does.
  const int64_t block_rows = max_items * heads.num_kv_heads;
  const int64_t grid_z = std::clamp<int64_t>(
      (kSplitBlocksPerSm * scratch.num_sms + block_rows - 1) / block_rows, 1, p.grid_splits);
  const dim3 grid(static_cast<unsigned>(max_items), static_cast<unsigned>(heads.num_kv_heads),
                  static_cast<unsigned>(grid_z));
  if (mma) {
    LaunchMmaAttentionKernel(stream, grid, shared_bytes, p, out.dtype);
  } else {
    LaunchSimtAttentionKernel(stream, grid, shared_bytes, p, out.dtype, kv.dtype);
  }
  RS_CUDA_CHECK_LAUNCH();
  if (parallel) {
    RS_CHECK(heads.num_q_heads <= 65535);
    const dim3 merge_grid(static_cast<unsigned>(batch.num_seqs),
                          static_cast<unsigned>(heads.num_q_heads));
    RS_DISPATCH_ACTIVATION(out.dtype, T,
                           RS_LAUNCH(MergeSplitsKernel<T>, merge_grid, 32, 0, stream, p));
    RS_CUDA_CHECK_LAUNCH();
  }
  return p.grid_splits;
}

}  // namespace ringserve::kernels::RS_CUDA_NS
