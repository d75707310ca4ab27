#include "tests/support/block_encoding.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "common/check.h"

namespace ringserve::testing {
namespace {

using kernels::DType;

constexpr int kBlock = 32;

// The value of largest magnitude, with its sign.
float Extreme(const float* v, int count) {
  float extreme = 0;
  for (int i = 0; i < count; ++i) {
    if (std::fabs(v[i]) > std::fabs(extreme)) extreme = v[i];
  }
  return extreme;
}

int Nearest(float v, float lo, float hi) {
  return static_cast<int>(std::clamp(std::nearbyint(v), lo, hi));
}

void EncodeQ8_0(const float* v, uint8_t* block) {
  const float scale = std::fabs(Extreme(v, kBlock)) / 127.0F;
  const uint16_t h = kernels::FloatToHalf(scale);
  std::memcpy(block, &h, 2);
  for (int i = 0; i < kBlock; ++i) {
    const int q = scale == 0 ? 0 : Nearest(v[i] / scale, -127, 127);
    block[2 + i] = static_cast<uint8_t>(static_cast<int8_t>(q));
  }
}

void EncodeAffine(bool five, const float* v, uint8_t* block) {
  const float top = five ? 31.0F : 15.0F;
  const auto [lo, hi] = std::minmax_element(v, v + kBlock);
  const float scale = (*hi - *lo) / top;
  std::memcpy(block, &scale, 4);
  std::memcpy(block + 4, &*lo, 4);
  uint32_t high = 0;
  for (int i = 0; i < kBlock; ++i) {
    const int q = scale == 0 ? 0 : Nearest((v[i] - *lo) / scale, 0, top);
    block[8 + i % 16] |= static_cast<uint8_t>((q & 0x0F) << (i < 16 ? 0 : 4));
    high |= static_cast<uint32_t>(q >> 4) << i;
  }
  if (five) std::memcpy(block + 24, &high, 4);
}

void EncodeIq4(const float* v, uint8_t* block) {
  const float extreme = Extreme(v, kBlock);
  const float scale = extreme / (extreme < 0 ? -127.0F : 113.0F);
  std::memcpy(block, &scale, 4);
  for (int i = 0; i < kBlock; ++i) {
    int best = 0;
    for (int l = 1; l < 16; ++l) {
      if (std::fabs(v[i] - scale * kernels::kIq4Levels[l]) <
          std::fabs(v[i] - scale * kernels::kIq4Levels[best])) {
        best = l;
      }
    }
    block[4 + i % 16] |= static_cast<uint8_t>(best << (i < 16 ? 0 : 4));
  }
}

void EncodeQ6(const float* v, uint8_t* block) {
  // Each half's step maps its largest magnitude to quant 31; d fits the larger step to 127.
  const float steps[2] = {std::fabs(Extreme(v, 16)) / 31.0F,
                          std::fabs(Extreme(v + 16, 16)) / 31.0F};
  const uint16_t d_bits = kernels::FloatToHalf(std::max(steps[0], steps[1]) / 127.0F);
  const float d = kernels::HalfToFloat(d_bits);
  std::memcpy(block + 2, &d_bits, 2);
  for (int h = 0; h < 2; ++h) {
    const int s = d == 0 ? 0 : Nearest(steps[h] / d, -128, 127);
    block[h] = static_cast<uint8_t>(static_cast<int8_t>(s));
  }
  for (int i = 0; i < kBlock; ++i) {
    const float step = kernels::Q6Scale(block, i);
    const int q = (step == 0 ? 0 : Nearest(v[i] / step, -32, 31)) + 32;
    block[4 + i % 16] |= static_cast<uint8_t>((q & 0x0F) << (i < 16 ? 0 : 4));
    block[20 + i / 4] |= static_cast<uint8_t>((q >> 4) << (2 * (i % 4)));
  }
}

}  // namespace

std::vector<uint8_t> EncodeBlocks(DType dtype, const std::vector<float>& values) {
  RS_CHECK(kernels::IsBlockDType(dtype) && values.size() % kBlock == 0);
  std::vector<uint8_t> out(kernels::DTypeBytes(dtype, values.size()));
  const size_t block_bytes = kernels::DTypeBytes(dtype, kBlock);
  for (size_t b = 0; b < values.size() / kBlock; ++b) {
    const float* v = values.data() + b * kBlock;
    uint8_t* block = out.data() + b * block_bytes;
    switch (dtype) {
      case DType::kQ8_0:
        EncodeQ8_0(v, block);
        break;
      case DType::kQ4Affine:
      case DType::kQ5Affine:
        EncodeAffine(dtype == DType::kQ5Affine, v, block);
        break;
      case DType::kIQ4:
        EncodeIq4(v, block);
        break;
      default:
        EncodeQ6(v, block);
    }
  }
  return out;
}

}  // namespace ringserve::testing
