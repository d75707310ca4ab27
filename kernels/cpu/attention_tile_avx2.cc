// The attention tile path (cpu_attention.h) on AVX2: 8 query vectors per tile.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "kernels/cpu/cpu_attention.h"
#include "kernels/cpu/simd.h"

namespace ringserve::kernels::cpu {
namespace {

struct Avx2 {
  using F = __m256;
  using M = __m256;
  using I = __m256i;
  static constexpr int kLanes = 8;
  // 8 score chains per key leave room for one key in the 16 ymm registers; P V keeps
  // 6 rows x 2 vectors of accumulators.
  static constexpr int kScoreKeys = 1;
  static constexpr int kPvRows = 6;
  static constexpr int kPvVecs = 2;

  static F Zero() { return _mm256_setzero_ps(); }
  static F Set1(float x) { return _mm256_set1_ps(x); }
  static F Load(const float* p) { return _mm256_loadu_ps(p); }
  static void Store(float* p, F v) { _mm256_storeu_ps(p, v); }
  static F LoadN(const float* p, int n) { return LoadPartial(p, n); }
  static void StoreN(float* p, int n, F v) { StorePartial(p, n, v); }
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
  static F Select(M m, F a, F b) { return _mm256_blendv_ps(b, a, m); }
  // Without embedded broadcasts every score FMA needs a load either way.
  static void KeepInRegister(F& /*v*/) {}
};

#include "kernels/cpu/attention_tile.inc"

}  // namespace

int64_t TileScratchFloats(int head_dim, int64_t max_context) {
  return (head_dim + (max_context + 7) / 8 * 8 + 1) * int64_t{kMaxTileLanes};
}

void AttendTileAvx2(const AttentionTile& tile, float* scratch) { AttendTile<Avx2>(tile, scratch); }

}  // namespace ringserve::kernels::cpu
