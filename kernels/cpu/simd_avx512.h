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

inline __m512 Load16(const float* p) { return _mm512_loadu_ps(p); }
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
