// The attention tile path (cpu_attention.h) on AVX-512: 16 query vectors per tile.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "kernels/cpu/cpu_attention.h"
#include "kernels/cpu/cpu_isa.h"
#include "kernels/cpu/simd.h"
#include "kernels/cpu/simd_avx512.h"

namespace ringserve::kernels::cpu {

RS_BEGIN_AVX512
// GCC 12 reports the _mm512_undefined_ps() pass-through operand inside its own max, min,
// roundscale and cvtps intrinsics as maybe-uninitialized (a known false positive).
#if !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace {

struct Avx512 {
  using F = __m512;
  using M = __mmask16;
  using I = __m512i;
  static constexpr int kLanes = 16;
  // 3 keys x 8 score chains = 24 of the 32 zmm registers; P V keeps 6 rows x 4 vectors
  // (a 64-wide head) of accumulators.
  static constexpr int kScoreKeys = 3;
  static constexpr int kPvRows = 6;
  static constexpr int kPvVecs = 4;

  static __mmask16 FirstLanes(int n) { return static_cast<__mmask16>((1U << n) - 1); }
  static F Zero() { return _mm512_setzero_ps(); }
  static F Set1(float x) { return _mm512_set1_ps(x); }
  static F Load(const float* p) { return _mm512_loadu_ps(p); }
  static void Store(float* p, F v) { _mm512_storeu_ps(p, v); }
  static F LoadN(const float* p, int n) { return _mm512_maskz_loadu_ps(FirstLanes(n), p); }
  static void StoreN(float* p, int n, F v) { _mm512_mask_storeu_ps(p, FirstLanes(n), v); }
  // Cache elements widened exactly (simd_avx512.h).
  template <class T>
  static F LoadKv(const T* p) {
    return Load16(p);
  }
  template <class T>
  static F LoadKvN(const T* p, int n) {
    return Load16(p, FirstLanes(n));
  }
  static F Gather(const float* base, I idx, int n) {
    return _mm512_mask_i32gather_ps(Zero(), FirstLanes(n), idx, base, 4);
  }
  static F Fma(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  static F Add(F a, F b) { return _mm512_add_ps(a, b); }
  static F Sub(F a, F b) { return _mm512_sub_ps(a, b); }
  static F Mul(F a, F b) { return _mm512_mul_ps(a, b); }
  // The same vmaxps as _mm512_max_ps, whose "undefined" pass-through operand GCC 12 reports
  // as uninitialized once inlined into the softmax.
  static F Max(F a, F b) { return _mm512_mask_max_ps(a, static_cast<__mmask16>(0xFFFF), a, b); }
  static I LoadInts(const int32_t* p) { return _mm512_loadu_si512(p); }
  static M Less(int32_t j, I n) { return _mm512_cmpgt_epi32_mask(n, _mm512_set1_epi32(j)); }
  static M InWindow(int32_t j, I first, I n) {
    const __m512i jv = _mm512_set1_epi32(j);
    return _mm512_cmpgt_epi32_mask(n, jv) & _mm512_cmple_epi32_mask(first, jv);
  }
  static F Select(M m, F a, F b) { return _mm512_mask_blend_ps(m, b, a); }
  // Left alone, GCC folds the query vector's load into each of the kScoreKeys FMAs that use
  // it and broadcasts the key values into registers: two loads per FMA, which starve the
  // FMA ports. Pinning the query in a register lets the key values ride along as embedded
  // {1to16} broadcasts, one load per FMA plus one per query vector (~10% of the tile).
  static void KeepInRegister(F& v) { asm("" : "+v"(v)); }
  // Embedded broadcasts make the transposed score loop one load an FMA already.
  static constexpr bool kScoresFromRows = false;

  // simd.h's Exp, operation for operation on 16 lanes, so results match it bit for bit.
  static F Exp(F x) {
    const __mmask16 underflow =
        _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.3365478515625F), _CMP_LT_OQ);
    x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(88.3762626647949F)),
                      _mm512_set1_ps(-87.3365478515625F));
    const F n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341F)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    F r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375F), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4F), r);
    F p = _mm512_set1_ps(1.9875691500E-4F);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507E-3F));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073E-3F));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894E-2F));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459E-1F));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201E-1F));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0F)));
    const __m512i ni = _mm512_cvtps_epi32(n);
    const __m512i half = _mm512_srai_epi32(ni, 1);
    const F s1 =
        _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(half, _mm512_set1_epi32(127)), 23));
    const F s2 = _mm512_castsi512_ps(_mm512_slli_epi32(
        _mm512_add_epi32(_mm512_sub_epi32(ni, half), _mm512_set1_epi32(127)), 23));
    const F result = _mm512_mul_ps(_mm512_mul_ps(p, s1), s2);
    return _mm512_maskz_mov_ps(static_cast<__mmask16>(~underflow), result);
  }
};

#include "kernels/cpu/attention_tile.inc"

}  // namespace

void AttendTileAvx512(const AttentionTile& tile, float* scratch) {
  WithKvElement(tile.kv_dtype, [&]<class T>(const T*) { AttendTile<Avx512, T>(tile, scratch); });
}

#if !defined(__clang__)
#pragma GCC diagnostic pop
#endif
RS_END_AVX512

}  // namespace ringserve::kernels::cpu
