// GGUF's non-linear 4-bit formats: IQ4_NL (blocks of 32 values, an f16 scale d and 4-bit
// indices into a fixed table of 16 int8 levels, value = d * level) and IQ4_XS (super-blocks
// of 256 under one f16 scale d, each 32-value sub-block with a 6-bit scale ls, value =
// d * (ls - 32) * level). gguf_blocks.cc serves both as kernels::DType::kIQ4, value for value,
// on a backend that takes it; else IQ4_NL exactly as Q8_0 (its levels are int8 quants under
// its own f16 scale), IQ4_XS re-rounded to Q8_0 like the K-quants.
#ifndef RINGSERVE_WORKER_MODEL_GGUF_IQUANTS_H_
#define RINGSERVE_WORKER_MODEL_GGUF_IQUANTS_H_

#include <cstdint>

namespace ringserve::model {

inline constexpr int kIq4NlBlockBytes = 18;   // d, 16 bytes of indices
inline constexpr int kIq4XsBlockBytes = 136;  // d, scales_h, scales_l[4], 128 bytes of indices

// The 32 values of an IQ4_NL block (`xs` false) or the 256 of an IQ4_XS one, in f32, as
// ggml's dequantization computes them. Each 32 values keep their indices as Q4_0 keeps its
// quants: value i in the low nibble of byte i % 16 for i < 16, the high nibble after.
void UnpackIq4(bool xs, const uint8_t* block, float* values);

// An IQ4_NL block as the Q8_0 block of the same values (34 bytes at `out`): the same f16
// scale, each quant its index's level.
void Iq4NlToQ8_0(const uint8_t* block, uint8_t* out);

// An IQ4_NL block as one kernels::DType::kIQ4 block (20 bytes at `out`), an IQ4_XS block as
// 8 (160 bytes): each 32 values' scale (IQ4_XS: d * (ls - 32), exact in f32) and indices.
void Iq4ToBlocks(bool xs, const uint8_t* block, uint8_t* out);

// One IQ4_NL block of 32 values or IQ4_XS block of 256, for files the tools write: each
// 32 values' scale maps their largest magnitude to the table's end level of the same sign
// (IQ4_XS: that scale quantized to 6 bits against the super-block's), and each value takes
// the nearest level under it; without ggml's search for the scale of least error.
void PackIq4(bool xs, const float* values, uint8_t* block);

}  // namespace ringserve::model

#endif  // RINGSERVE_WORKER_MODEL_GGUF_IQUANTS_H_
