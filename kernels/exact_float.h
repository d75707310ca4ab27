// Float arithmetic with every rounding step named, for results that must be the same bits
// on a GPU and on the host: on the device the _rn intrinsics, on the host IEEE operations in
// translation units built with -ffp-contract=off (no compiler may fuse or reorder them).
// The CUDA attention kernel's softmax (kernels/cuda/cuda_index.h) and the sampler
// (kernels/row_sampling.h) are written in these helpers, so the CPU emulation of the CUDA
// kernels and the CPU backend reproduce a GPU's bits exactly.
#ifndef RINGSERVE_KERNELS_EXACT_FLOAT_H_
#define RINGSERVE_KERNELS_EXACT_FLOAT_H_

#include <cstdint>

#include "kernels/host_device.h"

#ifndef __CUDACC__
#include <cmath>
#endif

namespace ringserve::kernels {

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
RS_HD uint32_t AsBits(float f) { return __float_as_uint(f); }
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
RS_HD uint32_t AsBits(float f) {
  uint32_t bits;
  __builtin_memcpy(&bits, &f, sizeof(f));
  return bits;
}
#endif

inline constexpr float kNegInf = -__builtin_inff();

// exp(x) for x in [-87.33654, 88.7] with explicit FMAs (Cephes expf: Cody-Waite reduction
// by ln 2, degree-6 polynomial), < 2 ulp. Without Exp's range checks, so a host loop of it
// vectorizes.
RS_HD float ExpInRange(float x) {
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
  const int k1 = ki / 2;
  const int k2 = ki - k1;
  return Mul(Mul(y, AsFloat(static_cast<uint32_t>(k1 + 127) << 23)),
             AsFloat(static_cast<uint32_t>(k2 + 127) << 23));
}

// Below it exp(x) is under FLT_MIN: Exp returns 0 there, which softmax never misses.
inline constexpr float kExpMin = -87.33654F;

// exp(x) (ExpInRange), 0 below kExpMin. Identical bits on every device and on the host,
// unlike the math library's expf, whose code may differ between translation units.
RS_HD float Exp(float x) {
  if (!(x >= kExpMin)) return x != x ? x : 0.0F;  // -inf and tiny -> 0, NaN stays NaN
  if (x > 88.7F) return __builtin_inff();
  return ExpInRange(x);
}

// OCP E4M3 (DType::kF8E4M3), the same bits on the host and every device: `byte` widened
// exactly (S.1111.111 is NaN), and f32 narrowed to nearest even, saturated at +-448, NaN to
// S.1111.111.
RS_HD float E4M3ToFloat(uint32_t byte) {
  const uint32_t magnitude = byte & 0x7FU;
  float value;
  if (magnitude == 0x7FU) {
    value = AsFloat(0x7FC00000U);
  } else if (magnitude < 0x08U) {
    value = Mul(static_cast<float>(magnitude), 1.0F / 512);  // subnormal: m * 2^-9, exact
  } else {
    value = AsFloat((magnitude << 20) + (120U << 23));  // exponent - 7 + 127
  }
  return (byte & 0x80U) != 0 ? -value : value;
}
RS_HD uint32_t FloatToE4M3(float f) {
  const uint32_t bits = AsBits(f);
  const uint32_t sign = (bits >> 24) & 0x80U;
  const uint32_t magnitude_bits = bits & 0x7FFFFFFFU;
  if (magnitude_bits > 0x7F800000U) return sign | 0x7FU;            // NaN
  if (magnitude_bits > 0x43E00000U) return sign | 0x7EU;            // past 448: saturated
  if (magnitude_bits < 0x3C800000U) {                               // below 2^-6: subnormal
    const float steps = Mul(AsFloat(magnitude_bits), 512.0F);       // exact, in [0, 8)
    const float rounded = Sub(Add(steps, 8388608.0F), 8388608.0F);  // to nearest even
    return sign | static_cast<uint32_t>(rounded);                   // 8 is 2^-6's code
  }
  // The 23-bit mantissa to 3, to nearest even; a carry moves the exponent, as it should.
  const uint32_t rounded = magnitude_bits + 0x7FFFFU + ((magnitude_bits >> 20) & 1U);
  const uint32_t code = ((rounded >> 20) - (120U << 3)) & 0xFFU;
  return sign | (code < 0x7EU ? code : 0x7EU);
}

}  // namespace ringserve::kernels

#endif  // RINGSERVE_KERNELS_EXACT_FLOAT_H_
