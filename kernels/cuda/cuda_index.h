// Index math and float arithmetic shared by the CUDA kernels and their host-side tests.
//
// Everything here is __host__ __device__ and compiles with g++ as plain C++, so the KV slot
// arithmetic, the RoPE pair layout, the attention work split and the attention's softmax
// arithmetic are unit tested on a machine without a GPU (tests/unit/kernels/cuda_*_test.cc).
//
// The float helpers name every rounding step (Mul, Add, Fma, ...) so no compiler may fuse or
// reorder them: on the device they are the _rn intrinsics, on the host IEEE operations in a
// translation unit built with -ffp-contract=off. The attention kernel's per-row arithmetic
// is written only in these helpers, so a host emulation reproduces its bits exactly and the
// split-parallel and sequential paths provably agree (see PagedAttention in attention.cu).
#ifndef RINGSERVE_KERNELS_CUDA_CUDA_INDEX_H_
#define RINGSERVE_KERNELS_CUDA_CUDA_INDEX_H_

#include <cstdint>

#include "kernels/cuda/cuda_namespace.h"
#include "kernels/host_device.h"

#ifndef __CUDACC__
#include <cmath>
#endif

namespace ringserve::kernels::RS_CUDA_NS {

// ---- float arithmetic with explicit rounding ----
#ifdef __CUDA_ARCH__
RS_HD float Mul(float a, float b) { return __fmul_rn(a, b); }
RS_HD float Add(float a, float b) { return __fadd_rn(a, b); }
RS_HD float Sub(float a, float b) { return __fsub_rn(a, b); }
RS_HD float Div(float a, float b) { return __fdiv_rn(a, b); }
RS_HD float Fma(float a, float b, float c) { return __fmaf_rn(a, b, c); }
RS_HD float Sqrt(float a) { return __fsqrt_rn(a); }
RS_HD float Floor(float a) { return floorf(a); }
RS_HD float MaxF(float a, float b) { return fmaxf(a, b); }
RS_HD float AsFloat(uint32_t bits) { return __uint_as_float(bits); }
#else
RS_HD float Mul(float a, float b) { return a * b; }
RS_HD float Add(float a, float b) { return a + b; }
RS_HD float Sub(float a, float b) { return a - b; }
RS_HD float Div(float a, float b) { return a / b; }
RS_HD float Fma(float a, float b, float c) { return std::fma(a, b, c); }
RS_HD float Sqrt(float a) { return std::sqrt(a); }
RS_HD float Floor(float a) { return std::floor(a); }
RS_HD float MaxF(float a, float b) { return std::fmax(a, b); }
RS_HD float AsFloat(uint32_t bits) {
  float f;
  __builtin_memcpy(&f, &bits, sizeof(f));
  return f;
}
#endif

inline constexpr float kNegInf = -__builtin_inff();

// exp(x) with explicit FMAs (Cephes expf: Cody-Waite reduction by ln 2, degree-6
// polynomial), < 2 ulp for x in [-87.3, 88]. Below -87.3 (results under FLT_MIN) it returns
// 0, which softmax never misses. Identical bits on every device and on the host, unlike
// the math library's expf, whose code may differ between translation units.
RS_HD float Exp(float x) {
  if (!(x >= -87.33654F)) return x != x ? x : 0.0F;  // -inf and tiny -> 0, NaN stays NaN
  if (x > 88.7F) return __builtin_inff();
  const float k = Floor(Add(Mul(x, 1.44269504088896341F), 0.5F));
  float r = Fma(k, -0.693359375F, x);
  r = Fma(k, 2.12194440e-4F, r);
  float p = 1.9875691500E-4F;
  p = Fma(p, r, 1.3981999507E-3F);
  p = Fma(p, r, 8.3334519073E-3F);
  p = Fma(p, r, 4.1665795894E-2F);
  p = Fma(p, r, 1.6666665459E-1F);
  p = Fma(p, r, 5.0000001201E-1F);
  const float y = Add(Fma(p, Mul(r, r), r), 1.0F);
  // 2^k in two normal factors, so k down to -126 (and a subnormal product) stays exact.
  const int ki = static_cast<int>(k);
  const int k1 = ki / 2, k2 = ki - ki / 2;
  return Mul(Mul(y, AsFloat(static_cast<uint32_t>(k1 + 127) << 23)),
             AsFloat(static_cast<uint32_t>(k2 + 127) << 23));
}

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

// Query tokens of one sequence are grouped into work items of up to `tokens_per_item`
// consecutive tokens (one thread block each per kv head).
RS_HD int ItemsOfSequence(int num_query_tokens, int tokens_per_item) {
  return (num_query_tokens + tokens_per_item - 1) / tokens_per_item;
}
// An upper bound on the items of a batch, for sizing the launch grid on the host, which does
// not see the per-sequence query lengths.
RS_HD int64_t MaxAttentionItems(int num_tokens, int num_seqs, int tokens_per_item) {
  return (static_cast<int64_t>(num_tokens) + tokens_per_item - 1) / tokens_per_item + num_seqs;
}
// Whether a query row's splits run as separate thread blocks (flash-decoding) whose partial
// states a second kernel merges: only for sequences with a single query token (decode; its
// partials are indexed by sequence) and more than one split, and only when the launch has a
// grid slot for every split. Either way the bits are the same; this only decides where the
// merge runs.
RS_HD bool SplitParallel(int sequence_query_tokens, int position, int grid_splits) {
  const int splits = NumSplits(position + 1);
  return grid_splits > 1 && sequence_query_tokens == 1 && splits > 1 && splits <= grid_splits;
}

}  // namespace ringserve::kernels::RS_CUDA_NS

#endif  // RINGSERVE_KERNELS_CUDA_CUDA_INDEX_H_
