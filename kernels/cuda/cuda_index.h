// Index math and float arithmetic shared by the CUDA kernels and their host-side tests.
//
// Everything here is __host__ __device__ and compiles with g++ as plain C++, so the KV slot
// arithmetic, the RoPE pair layout, the attention work split and the attention's softmax
// arithmetic are unit tested on a machine without a GPU (tests/unit/kernels/cuda_*_test.cc).
//
// The float helpers of kernels/exact_float.h name every rounding step (Mul, Add, Fma, ...) so
// no compiler may fuse or reorder them. The attention kernel's per-row arithmetic is written
// only in these helpers, so a host emulation reproduces its bits exactly and the
// split-parallel and sequential paths provably agree (see PagedAttention in attention.cu).
#ifndef RINGSERVE_KERNELS_CUDA_CUDA_INDEX_H_
#define RINGSERVE_KERNELS_CUDA_CUDA_INDEX_H_

#include <cstdint>

#include "kernels/cuda/cuda_namespace.h"
#include "kernels/exact_float.h"
#include "kernels/host_device.h"

namespace ringserve::kernels::RS_CUDA_NS {

// The float helpers (Mul, Add, ..., Exp) live in kernels/exact_float.h, shared with the CPU
// backend's sampler.
using ::ringserve::kernels::Add;
using ::ringserve::kernels::AsBits;
using ::ringserve::kernels::AsFloat;
using ::ringserve::kernels::Div;
using ::ringserve::kernels::Exp;
using ::ringserve::kernels::Floor;
using ::ringserve::kernels::Fma;
using ::ringserve::kernels::kNegInf;
using ::ringserve::kernels::MaxF;
using ::ringserve::kernels::Mul;
using ::ringserve::kernels::Sqrt;
using ::ringserve::kernels::Sub;

// ---- online softmax (attention) ----
// Factor that rescales a running sum taken against max `m_old` to max `m_new` >= m_old.
// Exactly 1 when the max did not move, so keys that add nothing change no bit.
RS_HD float RescaleFactor(float m_old, float m_new) {
  return m_old == m_new ? 1.0F : Exp(Sub(m_old, m_new));
}
// running * a + part * b: the one way two partial softmax states are combined.
RS_HD float MergeValue(float running, float a, float part, float b) {
  return Add(Mul(running, a), Mul(part, b));
}

// ---- paged KV ----
// Element offset of (key position `pos`, kv head `kv_head`, dim 0) in a K or V tensor laid
// out [num_blocks, block_size, num_kv_heads, head_dim], given the sequence's block table.
RS_HD int64_t KvOffset(const int32_t* block_table, int block_size, int pos, int num_kv_heads,
                       int head_dim, int kv_head) {
  const int64_t slot =
      static_cast<int64_t>(block_table[pos / block_size]) * block_size + pos % block_size;
  return (slot * num_kv_heads + kv_head) * head_dim;
}

// ---- RoPE ----
// Offsets within a head of the two values rotated by pair i (0 <= i < rotary_dim / 2).
// layout_halves: 0 = adjacent pairs (2i, 2i+1), 1 = halves (i, i + rotary_dim / 2).
struct RopePair {
  int a, b;
};
RS_HD RopePair RopePairOffsets(bool layout_halves, int i, int rotary_dim) {
  return layout_halves ? RopePair{i, i + rotary_dim / 2} : RopePair{2 * i, 2 * i + 1};
}

// ---- attention work split ----
// Where a long decode row's splits run (never a change of bits): kAuto decides per launch,
// kNever merges every row inside its thread block, kAlways runs them split-parallel
// whenever the scratch holds the partials.
enum class SplitMode { kAuto, kNever, kAlways };

// Keys are processed in tiles of kAttentionTileKeys and grouped in splits of
// kAttentionSplitKeys; a query at position p (context n = p + 1) has NumSplits(n) splits.
// Both constants are part of the arithmetic: changing them changes result bits.
inline constexpr int kAttentionTileKeys = 32;
inline constexpr int kAttentionSplitKeys = 256;
static_assert(kAttentionSplitKeys % kAttentionTileKeys == 0);

RS_HD int NumSplits(int context) {
  return (context + kAttentionSplitKeys - 1) / kAttentionSplitKeys;
}

// Sliding-window attention (AttentionShape::window > 0): a query at `position` attends to
// keys FirstKey(position, window)..position. Its splits are those that hold them, split
// FirstSplit(...) to NumSplits(position + 1) - 1: RowSplits of them.
RS_HD int FirstKey(int position, int window) {
  return window > 0 && position >= window ? position - window + 1 : 0;
}
RS_HD int FirstSplit(int position, int window) {
  return FirstKey(position, window) / kAttentionSplitKeys;
}
RS_HD int RowSplits(int position, int window) {
  return NumSplits(position + 1) - FirstSplit(position, window);
}
// The most splits a row of `context` keys at most has under `window`.
RS_HD int MaxRowSplits(int context, int window) {
  const int all = NumSplits(context);
  if (window <= 0) return all;
  const int windowed = (window - 1 + kAttentionSplitKeys - 1) / kAttentionSplitKeys + 1;
  return windowed < all ? windowed : all;
}

// Query tokens of one sequence are grouped into work items of up to `tokens_per_item`
// consecutive tokens (one thread block each per kv head).
RS_HD int ItemsOfSequence(int num_query_tokens, int tokens_per_item) {
  return (num_query_tokens + tokens_per_item - 1) / tokens_per_item;
}
// An upper bound on the items of a batch, for sizing the launch grid on the host, which does
// not see the per-sequence query lengths: the sum of ceil(t / k) over the sequences is at
// most (tokens + seqs * (k - 1)) / k (exactly the tokens when k is 1).
RS_HD int64_t MaxAttentionItems(int num_tokens, int num_seqs, int tokens_per_item) {
  return (static_cast<int64_t>(num_tokens) +
          static_cast<int64_t>(num_seqs) * (tokens_per_item - 1)) /
         tokens_per_item;
}
// Whether a query row's splits run as separate thread blocks (flash-decoding) whose partial
// states a second kernel merges: only for sequences with a single query token (decode; its
// partials are indexed by sequence) and more than one split, and only when the launch has a
// grid slot for every split. Either way the bits are the same; this only decides where the
// merge runs.
RS_HD bool SplitParallel(int sequence_query_tokens, int position, int window, int grid_splits) {
  const int splits = RowSplits(position, window);
  return grid_splits > 1 && sequence_query_tokens == 1 && splits > 1 && splits <= grid_splits;
}

}  // namespace ringserve::kernels::RS_CUDA_NS

#endif  // RINGSERVE_KERNELS_CUDA_CUDA_INDEX_H_
