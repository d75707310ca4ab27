// Sixteen cache or weight elements (f32, or simd.h's F16 / Bf16) widened to f32 exactly, as
// simd.h's Load8 widens eight: for the AVX-512 kernels only. Include it (after every other
// header) only from a file whose AVX-512 code sits under RS_BEGIN_AVX512; these definitions
// bracket themselves the same way, so no baseline code ever gets an AVX-512 copy.
#ifndef RINGSERVE_KERNELS_CPU_SIMD_AVX512_H_
#define RINGSERVE_KERNELS_CPU_SIMD_AVX512_H_

#include <immintrin.h>

#include "kernels/cpu/cpu_isa.h"
#include "kernels/cpu/simd.h"

namespace ringserve::kernels::cpu {

RS_BEGIN_AVX512

inline __m512 Widen16(const F16* /*type*/, __m256i halves) { return _mm512_cvtph_ps(halves); }
inline __m512 Widen16(const Bf16* /*type*/, __m256i halves) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(halves), 16));
}

// simd.h's WidenE4M3 on sixteen bytes.
inline __m512 WidenE4M3x16(__m128i bytes) {
  const __m256i w = _mm256_cvtepu8_epi16(bytes);
  const __m256i shifted = _mm256_slli_epi16(w, 7);
  __m256i half = _mm256_add_epi16(shifted, _mm256_and_si256(shifted, _mm256_set1_epi16(0x4000)));
  const __mmask16 nan = _mm256_cmpeq_epi16_mask(_mm256_and_si256(w, _mm256_set1_epi16(0x7F)),
                                                _mm256_set1_epi16(0x7F));
  half = _mm256_mask_mov_epi16(half, nan, _mm256_or_si256(half, _mm256_set1_epi16(0x7C00)));
  return _mm512_mul_ps(_mm512_cvtph_ps(half), _mm512_set1_ps(256.0F));
}

inline __m512 Load16(const float* p) { return _mm512_loadu_ps(p); }
inline __m512 Load16(const F8* p) {
  return WidenE4M3x16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
inline __m512 Load16(const F8* p, __mmask16 mask) {
  return WidenE4M3x16(_mm_maskz_loadu_epi8(mask, p));
}
template <class Half>
__m512 Load16(const Half* p) {
  return Widen16(p, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

// The lanes `mask` selects (the rest zero), reading no element outside them.
inline __m512 Load16(const float* p, __mmask16 mask) { return _mm512_maskz_loadu_ps(mask, p); }
template <class Half>
__m512 Load16(const Half* p, __mmask16 mask) {
  return Widen16(p, _mm256_maskz_loadu_epi16(mask, p));
}

RS_END_AVX512

}  // namespace ringserve::kernels::cpu

#endif  // RINGSERVE_KERNELS_CPU_SIMD_AVX512_H_
