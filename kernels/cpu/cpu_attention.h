// Internals of the CPU paged attention (cpu_attention.cc plans the work, attention_row.cc
// and attention_tile_*.cc run it), exposed for tests and benchmarks.
//
// Two code paths compute every query head's output with the same float operations:
//  - rows: one (token, kv head) at a time, the group's query heads against every key; what
//    decode runs, where a token has no neighbours to share keys with.
//  - tiles: up to 16 query vectors of one sequence and kv head at once (several tokens of a
//    prefill chunk and/or the group's heads), one per vector lane. Each K and V row is then
//    loaded once per tile instead of once per token, the scores need no horizontal sums and
//    the output accumulators stay in registers across keys.
// Per query vector both paths compute, in this order (hd = head_dim, keys f..n-1: n its
// context, f its first attended key, 0 without a sliding window):
//   score_j = HorizontalSum tree (simd.h) of 8 FMA chains a_l over d = l, l + 8, ... below
//             hd rounded down to 8, then fma over the remaining d; score_j *= scale.
//   max = max over f <= j < n; p_j = Exp(score_j - max) (simd.h's polynomial, lane-wise).
//   sum = HorizontalSum tree of 8 running sums, lane l over the keys j = l (mod 8) from f
//         below n rounded down to 8, then += p_j for the rest in order; inv = 1 / sum.
//   out[d] = fma(p_j, v_j[d], out[d]) for j = f..n-1 in order from +0; out[d] *= inv.
// (Keys before f are left out, which is what adding exact zeros to the running sums from
// key 0 on would give: f moves no key to another sum.) So a query's result depends on
// nothing but its q and its keys, whichever path, tile shape, ISA or batch computed it. A 16-bit
// cache (f16 or bf16, KvLayerView::dtype) is widened to f32 exactly as it is loaded, so the same
// holds for it, on either ISA.
#ifndef RINGSERVE_KERNELS_CPU_CPU_ATTENTION_H_
#define RINGSERVE_KERNELS_CPU_CPU_ATTENTION_H_

#include <cstdint>
#include <vector>

#include "kernels/backend.h"
#include "kernels/cpu/cpu_isa.h"
#include "kernels/cpu/thread_pool.h"

namespace ringserve::kernels::cpu {

struct AttentionOptions {
  Isa isa = Isa::kAvx2;
  // A sequence whose query vectors (tokens x group heads) number at least this goes
  // through tiles, the rest through rows. Tests set 1 (tiles wherever possible) or a huge
  // value (rows only) to compare the paths.
  int min_tile_vectors = 4;
};

// PagedAttentionOp (cpu_ops.h) with explicit options; PagedAttentionOp runs the defaults
// on BestIsa().
void PagedAttentionOp(ThreadPool& pool, const Tensor& qkv, const AttentionShape& shape,
                      const AttentionBatch& batch, const KvLayerView& kv, const Tensor& out,
                      const AttentionOptions& options);

// Stores `count` values of a token's K or V row into a cache of `dtype` (f32, f16, bf16),
// rounded to nearest even; f16 saturates at +-65504 instead of overflowing to infinity.
void StoreKvRow(DType dtype, const float* src, int64_t count, void* dst);

// One token's query heads of a range of kv heads, against keys first_key..context-1 of its
// sequence.
struct AttentionRow {
  const float* q;         // first query head of the range; heads hd apart
  float* out;             // same layout as q
  int group;              // query heads sharing each kv head
  int kv_head;            // first kv head of the range ...
  int num_kv_heads;       // ... and how many
  int64_t context;        // keys first_key..context-1
  const int32_t* blocks;  // the sequence's block table
  int64_t first_key = 0;  // FirstAttendedKey of the token's position
};

// The row path; `scratch` is resized to what the row needs.
void AttendRow(const AttentionRow& row, const AttentionShape& shape, const KvLayerView& kv,
               std::vector<float>& scratch);

inline constexpr int kMaxTileLanes = 16;
// The most keys a tile scores at once (its ISA's kScoreKeys).
inline constexpr int kMaxScoreKeys = 4;

// One tile: up to the ISA's vector width of query vectors that share a kv head's keys.
struct AttentionTile {
  int num_lanes = 0;
  const float* q[kMaxTileLanes] = {};     // each lane's query head, head_dim values
  float* out[kMaxTileLanes] = {};         // where its output head goes
  int32_t context[kMaxTileLanes] = {};    // lane i attends to keys first_key[i]..context[i]-1
  int32_t first_key[kMaxTileLanes] = {};  // (first_key[i] < context[i])
  const void* k = nullptr;                // the kv head's K in the first key's row ...
  const void* v = nullptr;                // ... and its V, elements of kv_dtype
  DType kv_dtype = DType::kF32;           // f32, f16 or bf16
  const int64_t* key_offsets = nullptr;   // key j's row starts at k + key_offsets[j] elements
  int head_dim = 0;
  float scale = 0;
};

// Floats of scratch a tile needs whose longest context is max_context.
int64_t TileScratchFloats(int head_dim, int64_t max_context);

// The tile path on one ISA; num_lanes <= 8 for AVX2, <= 16 for AVX-512.
void AttendTileAvx2(const AttentionTile& tile, float* scratch);
void AttendTileAvx512(const AttentionTile& tile, float* scratch);

}  // namespace ringserve::kernels::cpu

#endif  // RINGSERVE_KERNELS_CPU_CPU_ATTENTION_H_
