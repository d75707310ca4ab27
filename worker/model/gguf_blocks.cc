#include "worker/model/gguf_blocks.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "common/check.h"
#include "kernels/dtype.h"

namespace ringserve::model {
namespace {

constexpr int kBlock = kernels::kQ8_0BlockValues;

// Value i of a block: the low nibbles of the 16 quant bytes are values 0-15, the high
// nibbles values 16-31; Q5_0's fifth bit of value i is bit i of its 32-bit qh.
int8_t Q4_0Quant(const uint8_t* block, int i) {
  const uint8_t byte = block[2 + i % 16];
  return static_cast<int8_t>((i < 16 ? byte & 0x0F : byte >> 4) - 8);
}

int8_t Q5_0Quant(const uint8_t* block, int i) {
  uint32_t high = 0;
  std::memcpy(&high, block + 2, sizeof(high));  // little-endian, as GGUF is
  const uint8_t byte = block[6 + i % 16];
  const int low = i < 16 ? byte & 0x0F : byte >> 4;
  return static_cast<int8_t>((low | static_cast<int>((high >> i) & 1U) << 4) - 16);
}

}  // namespace

int64_t PackedBytes(Packing packing, int64_t count) {
  RS_CHECK(packing != Packing::kAsStored && count % kBlock == 0);
  return count / kBlock * BlockBytes(packing);
}

void WidenToQ8_0(Packing packing, const uint8_t* src, int64_t count, uint8_t* dst) {
  RS_CHECK(packing != Packing::kAsStored && count % kBlock == 0);
  for (int64_t b = 0; b < count / kBlock; ++b) {
    const uint8_t* in = src + b * BlockBytes(packing);
    uint8_t* out = dst + b * kernels::kQ8_0BlockBytes;
    std::memcpy(out, in, 2);  // the f16 scale
    for (int i = 0; i < kBlock; ++i) {
      const int8_t q = packing == Packing::kQ4_0 ? Q4_0Quant(in, i) : Q5_0Quant(in, i);
      std::memcpy(out + 2 + i, &q, 1);
    }
  }
}

void Pack(Packing packing, const float* values, int64_t count, uint8_t* dst) {
  RS_CHECK(packing != Packing::kAsStored && count % kBlock == 0);
  const bool five_bit = packing == Packing::kQ5_0;
  const int centre = five_bit ? 16 : 8;
  const int top = 2 * centre - 1;
  for (int64_t b = 0; b < count / kBlock; ++b) {
    const float* x = values + b * kBlock;
    uint8_t* out = dst + b * BlockBytes(packing);
    float extreme = 0;  // the value of largest magnitude, with its sign
    for (int i = 0; i < kBlock; ++i) {
      if (std::fabs(x[i]) > std::fabs(extreme)) extreme = x[i];
    }
    const float d = extreme / static_cast<float>(-centre);
    const float inverse = d != 0.0F ? 1.0F / d : 0.0F;
    const uint16_t d_bits = kernels::FloatToHalf(d);
    std::memcpy(out, &d_bits, 2);
    uint8_t* quants = out + (five_bit ? 6 : 2);
    std::memset(quants, 0, 16);
    uint32_t high = 0;
    for (int i = 0; i < kBlock; ++i) {
      // x / d + centre + 0.5 truncated (the sum is >= 0), in float, as one expression: the
      // rounding ggml's quantizer does, so that files match its, ties and all.
      const float shifted = x[i] * inverse + (static_cast<float>(centre) + 0.5F);
      const int q = std::min(top, static_cast<int>(shifted));
      quants[i % 16] |= static_cast<uint8_t>((q & 0x0F) << (i < 16 ? 0 : 4));
      if (five_bit) high |= static_cast<uint32_t>((q >> 4) & 1) << i;
    }
    if (five_bit) std::memcpy(out + 2, &high, sizeof(high));
  }
}

}  // namespace ringserve::model
