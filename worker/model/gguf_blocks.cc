#include "worker/model/gguf_blocks.h"

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
  return count / kBlock * (packing == Packing::kQ4_0 ? kQ4_0BlockBytes : kQ5_0BlockBytes);
}

void WidenToQ8_0(Packing packing, const uint8_t* src, int64_t count, uint8_t* dst) {
  RS_CHECK(packing != Packing::kAsStored && count % kBlock == 0);
  const int src_block = packing == Packing::kQ4_0 ? kQ4_0BlockBytes : kQ5_0BlockBytes;
  for (int64_t b = 0; b < count / kBlock; ++b) {
    const uint8_t* in = src + b * src_block;
    uint8_t* out = dst + b * kernels::kQ8_0BlockBytes;
    std::memcpy(out, in, 2);  // the f16 scale
    for (int i = 0; i < kBlock; ++i) {
      const int8_t q = packing == Packing::kQ4_0 ? Q4_0Quant(in, i) : Q5_0Quant(in, i);
      std::memcpy(out + 2 + i, &q, 1);
    }
  }
}

}  // namespace ringserve::model
