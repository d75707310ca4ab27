// AVX2/FMA helpers shared by the CPU kernels. Every function here is a fixed sequence of
// operations, so calling it on the same inputs gives bit-identical results wherever it runs;
// the kernels' batch invariance builds on that.
#ifndef RINGSERVE_KERNELS_CPU_SIMD_H_
#define RINGSERVE_KERNELS_CPU_SIMD_H_

#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "kernels/dtype.h"

namespace ringserve::kernels::cpu {

// Horizontal sum with one fixed reduction tree: (0+4, 1+5, 2+6, 3+7), then pairs, then
// the last two.
inline float HorizontalSum(__m256 v) {
  const __m128 quad = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 pair = _mm_add_ps(quad, _mm_movehl_ps(quad, quad));
  const __m128 one = _mm_add_ss(pair, _mm_movehdup_ps(pair));
  return _mm_cvtss_f32(one);
}

// The 8 sums of v[0..8) by HorizontalSum's tree, at once: lanes 0-3 of the result
// are v[0], v[2], v[4], v[6]'s, lanes 4-7 v[1], v[3], v[5], v[7]'s. Each sum takes the same
// additions in the same association as HorizontalSum: (l0+l4, .., l3+l7), then
// (x0+x2, x1+x3), then those two.
inline __m256 HorizontalSums(const __m256 (&v)[8]) {
  __m256 quads[4];  // quads[i]: v[2i]'s four sums in lanes 0-3, v[2i+1]'s in lanes 4-7
  for (size_t i = 0; i < 4; ++i) {
    quads[i] = _mm256_add_ps(_mm256_permute2f128_ps(v[2 * i], v[2 * i + 1], 0x20),
                             _mm256_permute2f128_ps(v[2 * i], v[2 * i + 1], 0x31));
  }
  __m256 pairs[2];  // pairs[h]: the pair sums of quads[2h] and quads[2h+1], lane by lane
  for (size_t h = 0; h < 2; ++h) {
    const __m256 a = quads[2 * h];
    const __m256 b = quads[2 * h + 1];
    pairs[h] = _mm256_add_ps(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 2, 3, 2)));
  }
  return _mm256_add_ps(_mm256_shuffle_ps(pairs[0], pairs[1], _MM_SHUFFLE(2, 0, 2, 0)),
                       _mm256_shuffle_ps(pairs[0], pairs[1], _MM_SHUFFLE(3, 1, 3, 1)));
}

inline float HorizontalMax(__m256 v) {
  const __m128 quad = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 pair = _mm_max_ps(quad, _mm_movehl_ps(quad, quad));
  const __m128 one = _mm_max_ss(pair, _mm_movehdup_ps(pair));
  return _mm_cvtss_f32(one);
}

// exp(x) for 8 floats, Cephes-style: x = n ln2 + r with |r| <= ln2/2, a degree-5
// polynomial for e^r, then scale by 2^n. Relative error ~2e-7 over the float range;
// inputs below -87.3 flush to 0 (what softmax and SiLU want).
inline __m256 Exp(__m256 x) {
  const __m256 hi = _mm256_set1_ps(88.3762626647949F);
  const __m256 lo = _mm256_set1_ps(-87.3365478515625F);
  const __m256 underflow = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
  x = _mm256_max_ps(_mm256_min_ps(x, hi), lo);
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341F)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  // r = x - n ln2, with ln2 split in two for precision.
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375F), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4F), r);
  __m256 p = _mm256_set1_ps(1.9875691500E-4F);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507E-3F));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073E-3F));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894E-2F));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459E-1F));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201E-1F));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0F)));
  // 2^n: n is in [-126, 128) after clamping, so build the exponent directly; n = 128 is
  // split as 2^127 * 2 to stay finite where exp(88.37) still fits.
  const __m256i ni = _mm256_cvtps_epi32(n);
  const __m256i half = _mm256_srai_epi32(ni, 1);
  const __m256 s1 =
      _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(half, _mm256_set1_epi32(127)), 23));
  const __m256 s2 = _mm256_castsi256_ps(
      _mm256_slli_epi32(_mm256_add_epi32(_mm256_sub_epi32(ni, half), _mm256_set1_epi32(127)), 23));
  const __m256 result = _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
  return _mm256_andnot_ps(underflow, result);
}

// Loads `count` < 8 floats (the rest zero) without reading past the end.
inline __m256 LoadPartial(const float* p, int count) {
  alignas(32) static constexpr int32_t kMask[16] = {-1, -1, -1, -1, -1, -1, -1, -1,
                                                    0,  0,  0,  0,  0,  0,  0,  0};
  const __m256i mask = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kMask + 8 - count));
  return _mm256_maskload_ps(p, mask);
}

inline void StorePartial(float* p, int count, __m256 v) {
  alignas(32) static constexpr int32_t kMask[16] = {-1, -1, -1, -1, -1, -1, -1, -1,
                                                    0,  0,  0,  0,  0,  0,  0,  0};
  const __m256i mask = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kMask + 8 - count));
  _mm256_maskstore_ps(p, mask, v);
}

// 16-bit elements as stored (weight panels, the KV cache); distinct types so that each load
// below is chosen by overload.
struct Bf16 {
  uint16_t bits;
};
struct F16 {
  uint16_t bits;
};
// One byte of E4M3 (DType::kF8E4M3), a KV cache element.
struct F8 {
  uint8_t bits;
};

// Eight elements widened to f32, exactly.
inline __m256 Load8(const float* p) { return _mm256_loadu_ps(p); }
inline __m256 Load8(const Bf16* p) {
  const __m128i half = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(half), 16));
}
inline __m256 Load8(const F16* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
// Eight E4M3 bytes (the low 8 of `bytes`) to f32, exactly as Float8E4M3ToFloat: as f16 bits
// with the same exponent field (so 2^-8 times the value: f16's bias is 8 more), widened by
// F16C, which takes subnormals exactly whatever the FTZ/DAZ modes, then times 2^8; S.1111.111
// gets f16's all-ones exponent, so NaN.
inline __m256 WidenE4M3(__m128i bytes) {
  const __m128i w = _mm_cvtepu8_epi16(bytes);
  // w << 7 puts the magnitude in place and the sign at bit 14; adding bit 14 to itself
  // carries it to bit 15.
  const __m128i shifted = _mm_slli_epi16(w, 7);
  __m128i half = _mm_add_epi16(shifted, _mm_and_si128(shifted, _mm_set1_epi16(0x4000)));
  const __m128i nan = _mm_cmpeq_epi16(_mm_and_si128(w, _mm_set1_epi16(0x7F)), _mm_set1_epi16(0x7F));
  half = _mm_or_si128(half, _mm_and_si128(nan, _mm_set1_epi16(0x7C00)));
  return _mm256_mul_ps(_mm256_cvtph_ps(half), _mm256_set1_ps(256.0F));
}
inline __m256 Load8(const F8* p) {
  return WidenE4M3(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
}
// The first `count` < 8 elements widened (the rest zero), reading nothing past them.
inline __m256 Load8Partial(const float* p, int count) { return LoadPartial(p, count); }
template <class Half>
__m256 Load8Partial(const Half* p, int count) {
  Half first[8] = {};
  std::memcpy(first, p, sizeof(Half) * static_cast<size_t>(count));
  return Load8(first);
}

// Eight floats stored rounded to nearest even: the bits FromFloat below gives each (NaNs
// stay NaN; their payloads may differ).
inline void Store8(float* p, __m256 v) { _mm256_storeu_ps(p, v); }
inline void Store8(F8* p, __m256 v) {
  alignas(32) float values[8];
  _mm256_store_ps(values, v);
  for (int i = 0; i < 8; ++i) p[i].bits = FloatToFloat8E4M3(values[i]);
}
inline void Store8(F16* p, __m256 v) {
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p),
                   _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}
inline void Store8(Bf16* p, __m256 v) {
  const __m256i bits = _mm256_castps_si256(v);
  const __m256i odd = _mm256_and_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(1));
  __m256i top = _mm256_srli_epi32(
      _mm256_add_epi32(bits, _mm256_add_epi32(odd, _mm256_set1_epi32(0x7FFF))), 16);
  // NaN (what a carry could turn into infinity) keeps its top half, made quiet.
  const __m256i magnitude = _mm256_and_si256(bits, _mm256_set1_epi32(0x7FFFFFFF));
  const __m256i nan = _mm256_cmpgt_epi32(magnitude, _mm256_set1_epi32(0x7F800000));
  const __m256i quiet = _mm256_or_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(0x40));
  top = _mm256_blendv_epi8(top, quiet, nan);
  // Narrow the eight 32-bit lanes (each < 2^16) to 16 bits, in order.
  const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(top, top), 0x08);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_castsi256_si128(packed));
}

inline float ToFloat(float v) { return v; }
inline float ToFloat(Bf16 v) { return BFloat16ToFloat(v.bits); }
inline float ToFloat(F16 v) { return HalfToFloat(v.bits); }
inline float ToFloat(F8 v) { return Float8E4M3ToFloat(v.bits); }

// Calls f with a null `const T*` of the element type a KV cache of `dtype` holds (float,
// F16, Bf16 or F8), so that each kernel maps the dtype to its template in one place.
template <class Fn>
decltype(auto) WithKvElement(DType dtype, Fn&& f) {
  switch (dtype) {
    case DType::kF8E4M3:
      return f(static_cast<const F8*>(nullptr));
    case DType::kF16:
      return f(static_cast<const F16*>(nullptr));
    case DType::kBF16:
      return f(static_cast<const Bf16*>(nullptr));
    default:
      return f(static_cast<const float*>(nullptr));
  }
}

// f32 to the stored type, rounded to nearest even (dtype.h's conversions).
template <class T>
T FromFloat(float v);
template <>
inline float FromFloat<float>(float v) {
  return v;
}
template <>
inline Bf16 FromFloat<Bf16>(float v) {
  return {FloatToBFloat16(v)};
}
template <>
inline F16 FromFloat<F16>(float v) {
  return {FloatToHalf(v)};
}
template <>
inline F8 FromFloat<F8>(float v) {
  return {FloatToFloat8E4M3(v)};
}

}  // namespace ringserve::kernels::cpu

#endif  // RINGSERVE_KERNELS_CPU_SIMD_H_
