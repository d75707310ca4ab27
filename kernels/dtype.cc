#include "kernels/dtype.h"

#include <cmath>

#include "common/check.h"
#include "kernels/exact_float.h"

namespace ringserve::kernels {

std::string_view DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return "f32";
    case DType::kF16:
      return "f16";
    case DType::kBF16:
      return "bf16";
    case DType::kQ8_0:
      return "q8_0";
    case DType::kI32:
      return "i32";
    case DType::kQ4Affine:
      return "q4_affine";
    case DType::kQ5Affine:
      return "q5_affine";
    case DType::kIQ4:
      return "iq4";
    case DType::kQ6:
      return "q6";
    case DType::kF8E4M3:
      return "fp8_e4m3";
  }
  return "unknown";
}

std::optional<DType> FloatDTypeNamed(std::string_view name) {
  for (const DType dtype : {DType::kF32, DType::kF16, DType::kBF16}) {
    if (DTypeName(dtype) == name) return dtype;
  }
  return std::nullopt;
}

std::optional<DType> KvDTypeNamed(std::string_view name) {
  if (name == "fp8" || name == DTypeName(DType::kF8E4M3)) return DType::kF8E4M3;
  return FloatDTypeNamed(name);
}

float Q6Scale(const uint8_t* block, int i) {
  uint16_t d = 0;
  std::memcpy(&d, block + 2, sizeof(d));
  return HalfToFloat(d) * static_cast<float>(static_cast<int8_t>(block[i / 16]));
}

size_t DTypeBytes(DType dtype, size_t count) {
  switch (dtype) {
    case DType::kF32:
    case DType::kI32:
      return count * 4;
    case DType::kF16:
    case DType::kBF16:
      return count * 2;
    case DType::kF8E4M3:
      return count;
    case DType::kQ8_0:
      return count / kQ8_0BlockValues * kQ8_0BlockBytes;
    case DType::kQ4Affine:
      return count / kQ4AffineBlockValues * kQ4AffineBlockBytes;
    case DType::kQ5Affine:
      return count / kQ5AffineBlockValues * kQ5AffineBlockBytes;
    case DType::kIQ4:
      return count / kIq4BlockValues * kIq4BlockBytes;
    case DType::kQ6:
      return count / kQ6BlockValues * kQ6BlockBytes;
  }
  return 0;
}

float HalfToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000U) << 16;
  const uint32_t exponent = (h >> 10) & 0x1FU;
  uint32_t mantissa = h & 0x3FFU;
  uint32_t bits;
  if (exponent == 0) {
    if (mantissa == 0) {
      bits = sign;
    } else {  // subnormal: renormalise
      int e = -1;
      do {
        ++e;
        mantissa <<= 1;
      } while ((mantissa & 0x400U) == 0);
      bits = sign | (static_cast<uint32_t>(127 - 15 - e) << 23) | ((mantissa & 0x3FFU) << 13);
    }
  } else if (exponent == 0x1F) {
    bits = sign | 0x7F800000U | (mantissa << 13);
  } else {
    bits = sign | ((exponent + 127 - 15) << 23) | (mantissa << 13);
  }
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

uint16_t FloatToHalf(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof(bits));
  const uint32_t sign = (bits >> 16) & 0x8000U;
  const uint32_t abs = bits & 0x7FFFFFFFU;
  if (abs >= 0x7F800000U) {  // inf or nan
    return static_cast<uint16_t>(sign | 0x7C00U | (abs > 0x7F800000U ? 0x200U : 0U));
  }
  if (abs >= 0x477FF000U) return static_cast<uint16_t>(sign | 0x7C00U);  // overflow
  if (abs < 0x38800000U) {  // subnormal or zero in half
    const float a = std::fabs(f);
    const auto m = static_cast<uint32_t>(std::nearbyint(a * 16777216.0F));  // 2^24
    return static_cast<uint16_t>(sign | m);
  }
  // Round to nearest even on the 13 dropped mantissa bits.
  const uint32_t rounded = abs + 0xFFFU + ((abs >> 13) & 1U);
  return static_cast<uint16_t>(sign | ((rounded - 0x38000000U) >> 13));
}

uint16_t FloatToBFloat16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof(bits));
  if ((bits & 0x7FFFFFFFU) > 0x7F800000U) return static_cast<uint16_t>((bits >> 16) | 0x40U);
  bits += 0x7FFFU + ((bits >> 16) & 1U);
  return static_cast<uint16_t>(bits >> 16);
}

float Float8E4M3ToFloat(uint8_t b) { return E4M3ToFloat(b); }

uint8_t FloatToFloat8E4M3(float f) { return static_cast<uint8_t>(FloatToE4M3(f)); }

void ConvertToFloat(DType dtype, const void* src, size_t count, float* dst) {
  switch (dtype) {
    case DType::kF8E4M3: {
      const auto* b = static_cast<const uint8_t*>(src);
      for (size_t i = 0; i < count; ++i) dst[i] = Float8E4M3ToFloat(b[i]);
      return;
    }
    case DType::kF32:
      std::memcpy(dst, src, count * sizeof(float));
      return;
    case DType::kF16: {
      const auto* h = static_cast<const uint16_t*>(src);
      for (size_t i = 0; i < count; ++i) dst[i] = HalfToFloat(h[i]);
      return;
    }
    case DType::kBF16: {
      const auto* b = static_cast<const uint16_t*>(src);
      for (size_t i = 0; i < count; ++i) dst[i] = BFloat16ToFloat(b[i]);
      return;
    }
    case DType::kQ8_0: {
      RS_CHECK(count % kQ8_0BlockValues == 0);
      const auto* p = static_cast<const uint8_t*>(src);
      for (size_t block = 0; block < count / kQ8_0BlockValues; ++block) {
        uint16_t scale_bits;
        std::memcpy(&scale_bits, p, 2);
        const float scale = HalfToFloat(scale_bits);
        const auto* q = reinterpret_cast<const int8_t*>(p + 2);
        for (int i = 0; i < kQ8_0BlockValues; ++i) *dst++ = scale * static_cast<float>(q[i]);
        p += kQ8_0BlockBytes;
      }
      return;
    }
    case DType::kQ4Affine:
    case DType::kQ5Affine: {
      RS_CHECK(count % kQ4AffineBlockValues == 0);
      const auto* p = static_cast<const uint8_t*>(src);
      const size_t block_bytes = DTypeBytes(dtype, kQ4AffineBlockValues);
      for (size_t block = 0; block < count / kQ4AffineBlockValues; ++block) {
        float scale = 0;
        float offset = 0;
        std::memcpy(&scale, p, 4);
        std::memcpy(&offset, p + 4, 4);
        for (int i = 0; i < kQ4AffineBlockValues; ++i) {
          *dst++ = std::fma(static_cast<float>(AffineQuant(dtype, p, i)), scale, offset);
        }
        p += block_bytes;
      }
      return;
    }
    case DType::kIQ4: {
      RS_CHECK(count % kIq4BlockValues == 0);
      const auto* p = static_cast<const uint8_t*>(src);
      for (size_t block = 0; block < count / kIq4BlockValues; ++block) {
        float scale = 0;
        std::memcpy(&scale, p, 4);
        for (int i = 0; i < kIq4BlockValues; ++i) {
          *dst++ = scale * static_cast<float>(kIq4Levels[Q4AffineQuant(p + 4, i)]);
        }
        p += kIq4BlockBytes;
      }
      return;
    }
    case DType::kQ6: {
      RS_CHECK(count % kQ6BlockValues == 0);
      const auto* p = static_cast<const uint8_t*>(src);
      for (size_t block = 0; block < count / kQ6BlockValues; ++block) {
        for (int i = 0; i < kQ6BlockValues; ++i) {
          *dst++ = Q6Scale(p, i) * static_cast<float>(Q6Quant(p, i) - 32);
        }
        p += kQ6BlockBytes;
      }
      return;
    }
    case DType::kI32:
      RS_CHECK_MSG(false, "ConvertToFloat: i32 is not a floating type");
  }
}

}  // namespace ringserve::kernels
