// GGUF block formats that ringserve serves as Q8_0, so that every backend's Q8_0 path runs
// them unchanged (at 1.0625 bytes a value, where the file takes 0.33-0.82), or, on a backend
// that takes the compact dtypes (the CPU; CUDA, which converts them on the device), Q4_0,
// Q4_1 and Q4_K as kernels::DType::kQ4Affine (0.75 bytes a value on the CPU), Q5_0, Q5_1
// and Q5_K as kQ5Affine (0.875), both fma(q, d, m) per 32-value block, IQ4_NL and IQ4_XS
// as kIQ4 (0.625), and Q3_K and Q6_K as kQ6 (0.875): their own values.
//
// As Q8_0, two kinds:
//  - exact: Q4_0 and Q5_0 blocks hold 32 values d * (q - 8) and d * (q - 16), with one f16
//    scale d and 4- or 5-bit q. (q - 8) and (q - 16) fit int8, so a Q8_0 block with the
//    same scale holds exactly the same values; so does IQ4_NL's d * level, each of its 16
//    levels an int8 (gguf_iquants.h).
//  - re-rounded: Q4_1 and Q5_1 (an offset per 32 values), and the K-quants Q2_K to Q6_K
//    (super-blocks of 256 values with 4- to 8-bit sub-block scales and mins), and IQ4_XS
//    (6-bit sub-block scales of a super-block's) have no Q8_0 form. Their values, computed
//    in f32 as ggml's dequantization does, are rounded to Q8_0 as ggml's reference
//    quantizer does: each lands within half a Q8_0 step (1/254 of its
//    32-value block's largest magnitude) plus the f16 rounding of the step. A 4-bit file's
//    own steps are about 16 times as coarse, Q6_K's about 4 times.
#ifndef RINGSERVE_WORKER_MODEL_GGUF_BLOCKS_H_
#define RINGSERVE_WORKER_MODEL_GGUF_BLOCKS_H_

#include <cstdint>
#include <optional>
#include <string_view>

#include "kernels/dtype.h"

namespace ringserve::model {

// How a checkpoint tensor's bytes are laid out when they are not its dtype's own.
enum class Packing : uint8_t {
  kAsStored,  // the bytes are the dtype's
  kQ4_0,
  kQ5_0,
  kQ4_1,
  kQ5_1,
  kQ2_K,
  kQ3_K,
  kQ4_K,
  kQ5_K,
  kQ6_K,
  kIQ4_NL,
  kIQ4_XS,
};

struct PackingInfo {
  std::string_view name;  // lower case, as tools spell it: "q4_k"
  uint32_t ggml_type;     // ggml.h's enum ggml_type
  int block_values;       // 32, or 256 for the K-quants
  int block_bytes;
  bool exact;  // a Q8_0 block holds the same values
};

// The facts of a packing other than kAsStored.
const PackingInfo& InfoOf(Packing packing);
inline int BlockBytes(Packing packing) { return InfoOf(packing).block_bytes; }
inline int BlockValues(Packing packing) { return InfoOf(packing).block_values; }

// The packing of a ggml type, if ringserve reads it.
std::optional<Packing> PackingOfGgmlType(uint32_t ggml_type);
// The packing InfoOf names `name` ("q4_k"), if any.
std::optional<Packing> PackingNamed(std::string_view name);

// Bytes of `count` values (a multiple of the packing's block) packed as `packing`.
int64_t PackedBytes(Packing packing, int64_t count);

// The values of `count` packed values at `src`, in f32, computed as ggml's dequantization
// computes them.
void Unpack(Packing packing, const uint8_t* src, int64_t count, float* dst);

// Rewrites `count` packed values as Q8_0 blocks at `dst` (count / 32 * 34 bytes): exactly
// for Q4_0 and Q5_0 (the same scale, each quant re-centred) and IQ4_NL (the same scale, each
// index its level), re-rounded for the others.
void WidenToQ8_0(Packing packing, const uint8_t* src, int64_t count, uint8_t* dst);

// The compact block dtype that holds `packing`'s values exactly: an affine one, fma(q, d, m)
// with f32 d and m per 32 values: kQ4Affine (4-bit q) for Q4_0 (m = -8d), Q4_1 and Q4_K (d
// and m the sub-block's scale and min), kQ5Affine (5-bit q) for Q5_0 (m = -16d), Q5_1 and
// Q5_K; kIQ4 (d * level, an f32 d per 32 values) for IQ4_NL and IQ4_XS; or kQ6 (d * s *
// (q - 32), the file's own block scale d and sub-block scales s, its quants as q) for Q3_K
// and Q6_K; nullopt for the others. Backends that take those dtypes serve them without re-rounding.
std::optional<kernels::DType> CompactDTypeOf(Packing packing);
// Rewrites `count` values packed as such a `packing` as blocks of its CompactDTypeOf at
// `dst` (count / 32 * 24, 28 or 20 bytes), value for value.
void ToCompact(Packing packing, const uint8_t* src, int64_t count, uint8_t* dst);
// Rewrites `count` values of compact dtype `from` as `to`: as kQ5Affine blocks (from
// kQ4Affine, exactly), or as Q8_0 blocks (for a matrix joined with Q8_0 or other parts):
// exactly where a block is d * (q - 8), d * (q - 16) or d * level with an f16 d (Q4_0's,
// Q5_0's and IQ4_NL's blocks), re-rounded like WidenToQ8_0's otherwise (kQ6's always).
void ConvertCompact(kernels::DType from, kernels::DType to, const uint8_t* src, int64_t count,
                    uint8_t* dst);

// One Q8_0 block of 32 values, as ggml's reference quantizer makes it: d = the largest
// magnitude / 127 (stored as f16), each quant the value / d rounded half away from zero.
void QuantizeQ8_0Block(const float* values, uint8_t* out);

// Quantizes `count` floats (a multiple of the packing's block) into `packing` blocks at
// `dst` (PackedBytes(packing, count) bytes), for files the tools write. Q4_0 and Q5_0 follow
// ggml's reference quantizer exactly (so files match its, ties and all); the others fit
// each (sub-)block's range or largest magnitude and round, without ggml's search for the
// scales of least error.
void Pack(Packing packing, const float* values, int64_t count, uint8_t* dst);

}  // namespace ringserve::model

#endif  // RINGSERVE_WORKER_MODEL_GGUF_BLOCKS_H_
