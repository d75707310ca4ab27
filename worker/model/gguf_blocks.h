// GGUF block formats that ringserve serves by widening them to Q8_0 value for value. Q4_0
// and Q5_0 blocks hold 32 values d * (q - 8) and d * (q - 16), with one f16 scale d and 4- or
// 5-bit q: (q - 8) and (q - 16) fit int8, so a Q8_0 block with the same scale holds exactly
// the same values, and every backend's Q8_0 path runs them unchanged (at 1.125 bytes a
// value, where the file takes 0.5625 or 0.6875).
#ifndef RINGSERVE_WORKER_MODEL_GGUF_BLOCKS_H_
#define RINGSERVE_WORKER_MODEL_GGUF_BLOCKS_H_

#include <cstdint>

namespace ringserve::model {

// How a checkpoint tensor's bytes are laid out when they are not its dtype's own.
enum class Packing : uint8_t {
  kAsStored,  // the bytes are the dtype's
  kQ4_0,      // GGUF Q4_0 blocks (18 bytes: f16 d, 16 bytes of nibbles), served as Q8_0
  kQ5_0,      // GGUF Q5_0 blocks (22 bytes: f16 d, 32 high bits, 16 bytes of nibbles), as Q8_0
};

inline constexpr int kQ4_0BlockBytes = 18;
inline constexpr int kQ5_0BlockBytes = 22;

// Bytes of one block of 32 values packed as `packing` (Q4_0 or Q5_0).
constexpr int BlockBytes(Packing packing) {
  return packing == Packing::kQ4_0 ? kQ4_0BlockBytes : kQ5_0BlockBytes;
}

// Bytes of `count` values (a multiple of 32) packed as `packing`, which is not kAsStored.
int64_t PackedBytes(Packing packing, int64_t count);

// Rewrites `count` values (a multiple of 32) packed as `packing` (Q4_0 or Q5_0) as Q8_0
// blocks at `dst` (count / 32 * 34 bytes): the same scale, each quant re-centred.
void WidenToQ8_0(Packing packing, const uint8_t* src, int64_t count, uint8_t* dst);

// Quantizes `count` floats (a multiple of 32) into `packing` blocks at `dst`
// (PackedBytes(packing, count)) the way ggml's reference quantizer does: per block, the value
// of largest magnitude maps to quant 0, d = that value / -8 (Q4_0) or / -16 (Q5_0), and each
// value rounds to the nearest quant, clamped to the top one. For files the tools write.
void Pack(Packing packing, const float* values, int64_t count, uint8_t* dst);

}  // namespace ringserve::model

#endif  // RINGSERVE_WORKER_MODEL_GGUF_BLOCKS_H_
