// simd.h's 16-bit and E4M3 loads and stores against dtype.h's scalar conversions, which the tests'
// references and the weight loaders use: a KV cache written eight values at a time must hold
// exactly what the scalar rounding gives, and read back exactly what it widens to.
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/cpu_attention.h"
#include "kernels/cpu/simd.h"
#include "kernels/dtype.h"

namespace ringserve::kernels::cpu {
namespace {

// Edge cases of both formats, then random values over f32's whole exponent range.
std::vector<float> Values() {
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> v = {0.0F,
                          -0.0F,
                          1.0F,
                          -1.0F,
                          65504.0F,
                          65519.99F,
                          65520.0F,
                          -65520.0F,
                          1e6F,
                          -1e30F,
                          inf,
                          -inf,
                          6.1035e-5F,
                          5.9605e-8F,
                          2.98023e-8F,
                          2.98024e-8F,
                          1e-10F,
                          -3e-6F,
                          1.00048828125F /* f16 tie */,
                          1.001953125F /* bf16 tie */,
                          3.4e38F,
                          -3.4e38F,
                          1.17549435e-38F,
                          1e-45F};
  // Exact ties in both formats, at odd and even neighbours.
  for (uint32_t bits : {0x3F808000U, 0x3F818000U, 0x3F801000U, 0x3F803000U, 0x7F7F8000U}) {
    float f;
    std::memcpy(&f, &bits, sizeof(f));
    v.push_back(f);
    v.push_back(-f);
  }
  std::mt19937 rng(3);
  std::uniform_int_distribution<uint32_t> any_bits;
  while (v.size() % 8 != 0 || v.size() < 4096) {
    const uint32_t bits = any_bits(rng);
    float f;
    std::memcpy(&f, &bits, sizeof(f));
    if (!std::isnan(f)) v.push_back(f);
  }
  return v;
}

template <class T, class Bits>
void ExpectStoresMatchScalar(Bits (*scalar)(float), float (*widen)(Bits)) {
  const std::vector<float> values = Values();
  std::vector<T> stored(values.size());
  for (size_t i = 0; i < values.size(); i += 8) Store8(&stored[i], _mm256_loadu_ps(&values[i]));
  for (size_t i = 0; i < values.size(); ++i) {
    ASSERT_EQ(stored[i].bits, scalar(values[i])) << "value " << values[i] << " (index " << i << ")";
  }
  // Widening: eight at a time and the partial load give the scalar widening's bits.
  for (size_t i = 0; i + 8 <= values.size(); i += 8) {
    alignas(32) float wide[8];
    _mm256_store_ps(wide, Load8(&stored[i]));
    for (int l = 0; l < 8; ++l) {
      const float want = widen(stored[i + l].bits);
      ASSERT_EQ(std::bit_cast<uint32_t>(wide[l]), std::bit_cast<uint32_t>(want))
          << "index " << i + l;
    }
    _mm256_store_ps(wide, Load8Partial(&stored[i], 5));
    for (int l = 0; l < 8; ++l) {
      const float want = l < 5 ? widen(stored[i + l].bits) : 0.0F;
      ASSERT_EQ(std::bit_cast<uint32_t>(wide[l]), std::bit_cast<uint32_t>(want))
          << "partial, index " << i + l;
    }
  }
}

TEST(SimdConvertTest, HalfStoresAndLoadsMatchTheScalarConversions) {
  ExpectStoresMatchScalar<F16>(FloatToHalf, HalfToFloat);
}

TEST(SimdConvertTest, BFloat16StoresAndLoadsMatchTheScalarConversions) {
  ExpectStoresMatchScalar<Bf16>(FloatToBFloat16, BFloat16ToFloat);
}

TEST(SimdConvertTest, E4M3StoresAndLoadsMatchTheScalarConversions) {
  ExpectStoresMatchScalar<F8>(FloatToFloat8E4M3, Float8E4M3ToFloat);
}

// The scalar E4M3 conversions against the format's definition: every code widens to
// (-1)^s 2^(e-7) (1 + m/8), or m 2^-9 for e = 0, S.1111.111 being NaN; narrowing takes every
// value back to its code, rounds a point halfway between two codes to the even one, and
// saturates past 448.
TEST(SimdConvertTest, E4M3FollowsTheFormat) {
  std::vector<float> values;
  for (int code = 0; code < 256; ++code) {
    const int e = (code >> 3) & 15, m = code & 7;
    const float sign = code & 0x80 ? -1.0F : 1.0F;
    const float want = e == 0 ? sign * std::ldexp(static_cast<float>(m), -9)
                              : sign * std::ldexp(1.0F + m / 8.0F, e - 7);
    const float got = Float8E4M3ToFloat(static_cast<uint8_t>(code));
    if ((code & 0x7F) == 0x7F) {
      EXPECT_TRUE(std::isnan(got)) << code;
      continue;
    }
    EXPECT_EQ(got, want) << code;
    EXPECT_EQ(FloatToFloat8E4M3(got), code) << code;
    values.push_back(got);
  }
  // Halfway between neighbours (same sign, magnitude below 448): the even code.
  for (int code = 0; code + 1 < 0x7F; ++code) {
    const float lo = Float8E4M3ToFloat(static_cast<uint8_t>(code));
    const float hi = Float8E4M3ToFloat(static_cast<uint8_t>(code + 1));
    const float mid = (lo + hi) / 2;
    EXPECT_EQ(FloatToFloat8E4M3(mid), code % 2 == 0 ? code : code + 1) << mid;
    EXPECT_EQ(FloatToFloat8E4M3(std::nextafter(mid, hi)), code + 1) << mid;
    EXPECT_EQ(FloatToFloat8E4M3(-std::nextafter(mid, lo)), 0x80 | code) << mid;
  }
  for (const float big : {448.5F, 464.0F, 1e6F, std::numeric_limits<float>::infinity()}) {
    EXPECT_EQ(FloatToFloat8E4M3(big), 0x7E) << big;
    EXPECT_EQ(FloatToFloat8E4M3(-big), 0xFE) << big;
  }
  EXPECT_EQ(FloatToFloat8E4M3(std::ldexp(1.0F, -11)), 0);  // below half the least subnormal
  EXPECT_EQ(FloatToFloat8E4M3(std::ldexp(1.0F, -10)), 0);  // half of it: to even (zero)
  EXPECT_EQ(FloatToFloat8E4M3(std::ldexp(3.0F, -10)), 2);  // 1.5 steps: to even (2)
  EXPECT_EQ(FloatToFloat8E4M3(std::ldexp(3.0F, -11)), 1);  // 0.75 steps: to 1
  EXPECT_TRUE(std::isnan(Float8E4M3ToFloat(FloatToFloat8E4M3(std::nanf("")))));
}

TEST(SimdConvertTest, NaNStaysNaN) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  alignas(32) const float values[8] = {nan, -nan, 1, 2, nan, 3, 4, 5};
  F16 half[8];
  Bf16 bf16[8];
  Store8(half, _mm256_load_ps(values));
  Store8(bf16, _mm256_load_ps(values));
  for (int l : {0, 1, 4}) {
    EXPECT_TRUE(std::isnan(HalfToFloat(half[l].bits))) << l;
    EXPECT_TRUE(std::isnan(BFloat16ToFloat(bf16[l].bits))) << l;
  }
  EXPECT_EQ(HalfToFloat(half[2].bits), 1.0F);
  EXPECT_EQ(BFloat16ToFloat(bf16[7].bits), 5.0F);
}

// The KV store: f16 saturates at +-65504 (an infinity would make the head's attention NaN),
// bf16 (f32's range) does not need to; in-range values are the scalar rounding's.
TEST(SimdConvertTest, HalfKvStoresSaturateInsteadOfOverflowing) {
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> row = {1e5F, -7e4F, 65519.0F, 1.5F, -inf, inf, 3e38F, -2.0F, 9e4F, 0.1F};
  std::vector<F16> half(row.size());
  StoreKvRow(DType::kF16, row.data(), static_cast<int64_t>(row.size()), half.data());
  const std::vector<float> want = {
      65504.0F, -65504.0F, 65504.0F, 1.5F,     -65504.0F,
      65504.0F, 65504.0F,  -2.0F,    65504.0F, HalfToFloat(FloatToHalf(0.1F))};
  for (size_t i = 0; i < row.size(); ++i) {
    EXPECT_EQ(HalfToFloat(half[i].bits), want[i]) << "value " << row[i] << " (index " << i << ")";
  }
  std::vector<Bf16> bf16(row.size());
  StoreKvRow(DType::kBF16, row.data(), static_cast<int64_t>(row.size()), bf16.data());
  for (size_t i = 0; i < row.size(); ++i) {
    EXPECT_EQ(bf16[i].bits, FloatToBFloat16(row[i])) << "index " << i;
  }
}

}  // namespace
}  // namespace ringserve::kernels::cpu
