// Element types of weights, activations and KV storage.
#ifndef RINGSERVE_KERNELS_DTYPE_H_
#define RINGSERVE_KERNELS_DTYPE_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <iterator>
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
  // 4-bit quants with an affine map per 32 values: blocks of an f32 scale d, an f32 offset
  // m and 16 bytes of quants q (byte i: value i in its low nibble, value i + 16 in its high
  // one); value = fma(q, d, m). GGUF's Q4_0, Q4_1 and Q4_K all take this form exactly
  // (gguf_blocks.h), so the CPU serves them at 0.75 bytes a value without re-rounding. (A
  // zero may take the other sign: Q4_0's d * 0 is -0 for a negative d, fma(8, d, -8d) +0;
  // the same value in every sum.)
  kQ4Affine,
  // 5-bit quants with the same affine map: kQ4Affine's block (d, m, the low 4 bits of each
  // quant in its 16 nibble bytes) followed by 4 bytes, bit i of their little-endian uint32
  // the fifth bit of value i. GGUF's Q5_0, Q5_1 and Q5_K take this form exactly, at 0.875
  // bytes a value.
  kQ5Affine,
  // 4-bit indices into kIq4Levels with an f32 scale per 32 values: blocks of the scale d
  // followed by kQ4Affine's 16 bytes of nibbles; value = d * level. GGUF's IQ4_NL and
  // IQ4_XS take this form exactly, at 0.625 bytes a value: their d (an f16, times a 6-bit
  // integer for IQ4_XS) has at most 17 significant bits, a level 7, so d * level is exact.
  kIQ4,
  // 6-bit quants under an int8 scale per 16 values and an f16 one per block: blocks of the
  // int8 scales s0 and s1 (values 0-15, 16-31), the f16 d, kQ4Affine's 16 bytes of nibbles
  // (each quant's low 4 bits), then 8 bytes holding quant i's top two bits at bit 2 (i % 4)
  // of byte i / 4; value i = d * s_(i / 16) * (q_i - 32). GGUF's Q6_K and Q3_K take this
  // form exactly, at 0.875 bytes a value: d * s has at most 11 + 7 significant bits, so it and
  // its product with q - 32 (6 bits) are exact in f32.
  kQ6,
  // 8-bit floats, OCP E4M3 (sign, 4 exponent bits biased by 7, 3 mantissa bits; no
  // infinities, S.1111.111 is NaN, the largest is 448): a KV cache of one byte a value.
  kF8E4M3,
};

inline constexpr int kQ8_0BlockValues = 32;
inline constexpr int kQ8_0BlockBytes = 34;
inline constexpr int kQ4AffineBlockValues = 32;
inline constexpr int kQ4AffineBlockBytes = 24;
inline constexpr int kQ5AffineBlockValues = 32;
inline constexpr int kQ5AffineBlockBytes = 28;
inline constexpr int kIq4BlockValues = 32;
inline constexpr int kIq4BlockBytes = 20;
inline constexpr int kQ6BlockValues = 32;
inline constexpr int kQ6BlockBytes = 28;
// GGUF's IQ4 levels (ggml's kvalues_iq4nl): non-linear, so that the common small magnitudes
// get finer steps than a uniform grid would give them.
inline constexpr int8_t kIq4Levels[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                          1,    13,   25,  38,  53,  69,  89,  113};

// Every dtype of 32-value blocks (IsBlockDType).
inline constexpr DType kBlockDTypes[] = {DType::kQ8_0, DType::kQ4Affine, DType::kQ5Affine,
                                         DType::kIQ4, DType::kQ6};

// Whether `dtype` holds fma(q, d, m) blocks (kQ4Affine, kQ5Affine).
inline bool IsAffineDType(DType dtype) {
  return dtype == DType::kQ4Affine || dtype == DType::kQ5Affine;
}
// Whether `dtype` stores values in 32-value blocks (Q8_0, the affine ones, kIQ4, kQ6): a row
// of such a matrix must be whole blocks.
inline bool IsBlockDType(DType dtype) {
  return std::find(std::begin(kBlockDTypes), std::end(kBlockDTypes), dtype) !=
         std::end(kBlockDTypes);
}

// The 4-bit quant of value i (< 32) of a kQ4Affine block's 16 quant bytes.
inline int Q4AffineQuant(const uint8_t* quants, int i) {
  return i < 16 ? quants[i] & 0x0F : quants[i - 16] >> 4;
}
// The quant of value i (< 32) of an affine block of `dtype` (IsAffineDType) at `block`.
inline int AffineQuant(DType dtype, const uint8_t* block, int i) {
  const int low = Q4AffineQuant(block + 8, i);
  if (dtype == DType::kQ4Affine) return low;
  uint32_t high = 0;
  std::memcpy(&high, block + 24, sizeof(high));
  return low | static_cast<int>((high >> i) & 1U) << 4;
}

// The 6-bit quant (0-63, standing for q - 32) of value i (< 32) of a kQ6 block at `block`.
inline int Q6Quant(const uint8_t* block, int i) {
  return Q4AffineQuant(block + 4, i) | (block[20 + i / 4] >> (2 * (i % 4)) & 3) << 4;
}
// The scale d * s of value i (< 32) of a kQ6 block at `block`.
float Q6Scale(const uint8_t* block, int i);

std::string_view DTypeName(DType dtype);
// The float dtype (f32, f16 or bf16) DTypeName spells `name`; nullopt for anything else.
std::optional<DType> FloatDTypeNamed(std::string_view name);
// The same, and fp8_e4m3 (also spelled fp8): the element types a KV cache may take.
std::optional<DType> KvDTypeNamed(std::string_view name);

// Bytes taken by `count` values of `dtype`. For the block dtypes, `count` must be a
// multiple of 32.
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
// E4M3 (DType::kF8E4M3): exact widening; narrowing rounds to nearest even and saturates at
// +-448 (there is no infinity to overflow to), NaN to NaN.
float Float8E4M3ToFloat(uint8_t b);
uint8_t FloatToFloat8E4M3(float f);

// Converts `count` values of `dtype` at `src` to float32. For the block dtypes `count` is a
// multiple of 32. Used by loaders for backends that compute in f32 and by tests.
void ConvertToFloat(DType dtype, const void* src, size_t count, float* dst);

}  // namespace ringserve::kernels

#endif  // RINGSERVE_KERNELS_DTYPE_H_
