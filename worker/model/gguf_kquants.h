// The K-quant super-blocks of GGUF (Q2_K to Q6_K): 256 values in 16 sub-blocks of 16 or 8
// of 32, each sub-block with its own quantized scale (and, for Q2_K, Q4_K and Q5_K, its own
// quantized min), under one or two f16 super-block scales. gguf_blocks.cc serves them.
#ifndef RINGSERVE_WORKER_MODEL_GGUF_KQUANTS_H_
#define RINGSERVE_WORKER_MODEL_GGUF_KQUANTS_H_

#include <cstdint>
#include <cstring>

#include "kernels/dtype.h"
#include "worker/model/gguf_blocks.h"

namespace ringserve::model {

// The f16 fields of every block format.
inline float LoadHalf(const uint8_t* p) {
  uint16_t bits = 0;
  std::memcpy(&bits, p, sizeof(bits));
  return kernels::HalfToFloat(bits);
}

// Stores `value` as f16 and returns what was stored.
inline float StoreHalf(float value, uint8_t* p) {
  const uint16_t bits = kernels::FloatToHalf(value);
  std::memcpy(p, &bits, sizeof(bits));
  return kernels::HalfToFloat(bits);
}

inline constexpr int kKQuantBlockValues = 256;

// The 256 values of one `packing` (Q2_K-Q6_K) block at `block`, in f32, computed as ggml's
// dequantize_row_q*_K computes them.
void UnpackKBlock(Packing packing, const uint8_t* block, float* values);

// A Q4_K (Q5_K when `five_bit`) block's 8 sub-blocks of 32 values as 8 kQ4Affine
// (kQ5Affine) blocks (192 or 224 bytes at `out`): scale d * sc, offset -(dmin * m), the same
// quants. fma(q, d * sc, -(dmin * m)) is ggml's d * sc * q - dmin * m exactly: both products
// are exact in f32 (at most 11 + 6 + 5 significant bits).
void KBlockToAffine(bool five_bit, const uint8_t* block, uint8_t* out);

// A Q3_K or Q6_K (`packing`) block's 256 values as 8 kernels::DType::kQ6 blocks (224 bytes
// at `out`): each takes its 32 values' two sub-block scales, the super-block's d and the
// quants as 6-bit q (Q6_K's own; Q3_K's quant plus 32), so every value is ggml's
// d * sc * quant, exactly.
void KBlockToQ6(Packing packing, const uint8_t* block, uint8_t* out);

// One `packing` block of 256 values: each sub-block's scale (and min) fitted to its range,
// the sub-block scales quantized against the super-block's, each value rounded to the
// nearest quant under its sub-block's quantized scale.
void PackKBlock(Packing packing, const float* values, uint8_t* block);

}  // namespace ringserve::model

#endif  // RINGSERVE_WORKER_MODEL_GGUF_KQUANTS_H_
