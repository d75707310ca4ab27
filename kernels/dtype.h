// Element types of weights, activations and KV storage.
#ifndef RINGSERVE_KERNELS_DTYPE_H_
#define RINGSERVE_KERNELS_DTYPE_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

namespace ringserve::kernels {

enum class DType : uint8_t {
  kF32,
  kF16,
  kBF16,
  // GGUF Q8_0: blocks of 32 values, each an f16 scale followed by 32 int8 quants.
  kQ8_0,
  kI32,
};

inline constexpr int kQ8_0BlockValues = 32;
inline constexpr int kQ8_0BlockBytes = 34;

std::string_view DTypeName(DType dtype);
// The float dtype (f32, f16 or bf16) DTypeName spells `name`; nullopt for anything else.
std::optional<DType> FloatDTypeNamed(std::string_view name);

// Bytes taken by `count` values of `dtype`. For kQ8_0, `count` must be a multiple of 32.
size_t DTypeBytes(DType dtype, size_t count);

// Scalar conversions (IEEE half and bfloat16, round to nearest even).
float HalfToFloat(uint16_t h);
uint16_t FloatToHalf(float f);
inline float BFloat16ToFloat(uint16_t b) {
  const uint32_t bits = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}
uint16_t FloatToBFloat16(float f);

// Converts `count` values of `dtype` at `src` to float32. For kQ8_0 `count` is a multiple
// of 32. Used by loaders for backends that compute in f32 and by tests.
void ConvertToFloat(DType dtype, const void* src, size_t count, float* dst);

}  // namespace ringserve::kernels

#endif  // RINGSERVE_KERNELS_DTYPE_H_
