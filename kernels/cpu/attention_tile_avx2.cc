// The attention tile path (cpu_attention.h) on AVX2: 8 query vectors per tile.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "kernels/cpu/cpu_attention.h"
#include "kernels/cpu/simd.h"

namespace ringserve::kernels::cpu {
namespace {

// Defined after the shared tile code, whose key prefetch it uses.
template <class T>
void ScoresFromRows(const AttentionTile& t, int64_t first, int64_t n_end, float* s);

struct Avx2 {
  using F = __m256;
  using M = __m256;
  using I = __m256i;
  static constexpr int kLanes = 8;
  // P V keeps 6 rows x 2 vectors of accumulators (the scores: ScoresFromRows).
  static constexpr int kPvRows = 6;
  static constexpr int kPvVecs = 2;

  static F Zero() { return _mm256_setzero_ps(); }
  static F Set1(float x) { return _mm256_set1_ps(x); }
  static F Load(const float* p) { return _mm256_loadu_ps(p); }
  static void Store(float* p, F v) { _mm256_storeu_ps(p, v); }
  static F LoadN(const float* p, int n) { return LoadPartial(p, n); }
  static void StoreN(float* p, int n, F v) { StorePartial(p, n, v); }
  template <class T>
  static F LoadKv(const T* p) {
    return Load8(p);
  }
  template <class T>
  static F LoadKvN(const T* p, int n) {
    return Load8Partial(p, n);
  }
  static F Gather(const float* base, I idx, int n) {
    return _mm256_mask_i32gather_ps(Zero(), base, idx, _mm256_castsi256_ps(FirstLanes(n)), 4);
  }
  static I FirstLanes(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static F Fma(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  static F Add(F a, F b) { return _mm256_add_ps(a, b); }
  static F Sub(F a, F b) { return _mm256_sub_ps(a, b); }
  static F Mul(F a, F b) { return _mm256_mul_ps(a, b); }
  static F Max(F a, F b) { return _mm256_max_ps(a, b); }
  static F Exp(F x) { return cpu::Exp(x); }
  static I LoadInts(const int32_t* p) { return _mm256_loadu_si256(reinterpret_cast<const I*>(p)); }
  static M Less(int32_t j, I n) {
    return _mm256_castsi256_ps(_mm256_cmpgt_epi32(n, _mm256_set1_epi32(j)));
  }
  static M InWindow(int32_t j, I first, I n) {
    return _mm256_castsi256_ps(_mm256_andnot_si256(_mm256_cmpgt_epi32(first, _mm256_set1_epi32(j)),
                                                   _mm256_cmpgt_epi32(n, _mm256_set1_epi32(j))));
  }
  static F Select(M m, F a, F b) { return _mm256_blendv_ps(b, a, m); }
  // Without embedded broadcasts every score FMA needs a load either way.
  static void KeepInRegister(F& /*v*/) {}
  // Scores come from the queries' rows (ScoresFromRows), not from transposed queries.
  static constexpr bool kScoresFromRows = true;
  template <class T>
  static void RowScores(const AttentionTile& t, int64_t first, int64_t n_end, float* s) {
    ScoresFromRows<T>(t, first, n_end, s);
  }
};

#include "kernels/cpu/attention_tile.inc"

// Scores of keys [first, n_end) into S (S[j * 8 + lane]), from the queries' own rows: every
// (query, key) is Dot1's arithmetic in attention_row.cc (lane l of an accumulator chains
// d = l mod 8, HorizontalSum's tree, the remaining d in order, then the scale), so a tile's
// scores are the decode path's bits. All eight queries against one key at a time: nine
// loads (from L1, but the key's) feed eight FMAs, where broadcasting key elements against
// transposed queries needs two loads an FMA, each key is read once a tile, and one shuffle
// tree reduces the eight accumulators straight into the key's row of S.
template <class T>
void ScoresFromRows(const AttentionTile& t, int64_t first, int64_t n_end, float* s) {
  constexpr int kLanes = 8;
  const int hd = t.head_dim;
  const int full = hd / 8 * 8;
  const __m256 scale = _mm256_set1_ps(t.scale);
  // Accumulator 2i holds lane i, 2i + 1 lane 4 + i, so HorizontalSums returns lanes 0-7 in
  // order. Idle lanes repeat the last active one: defined values that nothing reads.
  const auto lane_of = [](int a) { return a % 2 == 0 ? a / 2 : 4 + a / 2; };
  const float* q[kLanes];
  for (int a = 0; a < kLanes; ++a) q[a] = t.q[std::min(lane_of(a), t.num_lanes - 1)];
  for (int64_t j = first; j < n_end; ++j) {
    const T* key = KeysOf<T>(t) + t.key_offsets[j];
    if (j + kPrefetchKeys < n_end) PrefetchRow(KeysOf<T>(t) + t.key_offsets[j + kPrefetchKeys], hd);
    __m256 acc[kLanes];
    for (__m256& v : acc) v = _mm256_setzero_ps();
    for (int d = 0; d < full; d += 8) {
      const __m256 kv = Load8(key + d);
      for (int a = 0; a < kLanes; ++a) {
        acc[a] = _mm256_fmadd_ps(_mm256_loadu_ps(q[a] + d), kv, acc[a]);
      }
    }
    __m256 sums = HorizontalSums(acc);
    if (full < hd) {
      alignas(32) float lanes[kLanes];
      _mm256_store_ps(lanes, sums);
      for (int a = 0; a < kLanes; ++a) {
        float& sum = lanes[lane_of(a)];
        for (int d = full; d < hd; ++d) sum = std::fma(q[a][d], ToFloat(key[d]), sum);
      }
      sums = _mm256_load_ps(lanes);
    }
    _mm256_storeu_ps(s + j * kLanes, _mm256_mul_ps(sums, scale));
  }
}

}  // namespace

int64_t TileScratchFloats(int head_dim, int64_t max_context) {
  return (head_dim + (max_context + 7) / 8 * 8 + 1) * int64_t{kMaxTileLanes} +
         int64_t{kMaxScoreKeys} * head_dim;
}

void AttendTileAvx2(const AttentionTile& tile, float* scratch) {
  WithKvElement(tile.kv_dtype, [&]<class T>(const T*) { AttendTile<Avx2, T>(tile, scratch); });
}

}  // namespace ringserve::kernels::cpu
