#include "worker/model/gguf_iquants.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstring>

#include "kernels/dtype.h"
#include "worker/model/gguf_kquants.h"

namespace ringserve::model {
namespace {

constexpr ptrdiff_t kSub = 32;  // values under one scale
constexpr ptrdiff_t kIndexBytes = kSub / 2;
constexpr int kXsSubs = 8;  // an IQ4_XS block's 256 values

constexpr const int8_t (&kLevels)[16] = kernels::kIq4Levels;

int IndexOf(const uint8_t* indices, int i) {
  return i < 16 ? indices[i] & 0x0F : indices[i - 16] >> 4;
}

// IQ4_XS sub-block j's 6-bit scale: its low 4 bits in nibble j % 2 of scales_l[j / 2], its
// top 2 in bits 2j and 2j + 1 of scales_h.
int XsScale(const uint8_t* block, int j) {
  uint16_t high = 0;
  std::memcpy(&high, block + 2, sizeof(high));
  const int low = (block[4 + j / 2] >> (4 * (j % 2))) & 0x0F;
  return low | ((high >> (2 * j)) & 3) << 4;
}

void UnpackSub(float scale, const uint8_t* indices, float* y) {
  for (int i = 0; i < static_cast<int>(kSub); ++i) {
    y[i] = scale * static_cast<float>(kLevels[IndexOf(indices, i)]);
  }
}

// The scale that maps `x`'s largest magnitude onto the end level of its sign.
float SubScale(const float* x) {
  float extreme = 0;
  for (int i = 0; i < static_cast<int>(kSub); ++i) {
    if (std::fabs(x[i]) > std::fabs(extreme)) extreme = x[i];
  }
  return extreme / (extreme < 0 ? -127.0F : 113.0F);
}

void PackSub(float scale, const float* x, uint8_t* indices) {
  std::memset(indices, 0, 16);
  const float inverse = scale != 0 ? 1.0F / scale : 0.0F;
  for (int i = 0; i < static_cast<int>(kSub); ++i) {
    const float v = x[i] * inverse;
    int best = 0;
    for (int l = 1; l < 16; ++l) {
      if (std::fabs(v - kLevels[l]) < std::fabs(v - kLevels[best])) best = l;
    }
    indices[i % 16] |= static_cast<uint8_t>(best << (i < 16 ? 0 : 4));
  }
}

}  // namespace

void UnpackIq4(bool xs, const uint8_t* block, float* values) {
  const float d = LoadHalf(block);
  if (!xs) return UnpackSub(d, block + 2, values);
  for (int j = 0; j < kXsSubs; ++j) {
    UnpackSub(d * static_cast<float>(XsScale(block, j) - 32), block + 8 + kIndexBytes * j,
              values + kSub * j);
  }
}

void Iq4NlToQ8_0(const uint8_t* block, uint8_t* out) {
  std::memcpy(out, block, 2);  // the f16 scale
  for (int i = 0; i < static_cast<int>(kSub); ++i) {
    std::memcpy(out + 2 + i, &kLevels[IndexOf(block + 2, i)], 1);
  }
}

void Iq4ToBlocks(bool xs, const uint8_t* block, uint8_t* out) {
  const float d = LoadHalf(block);
  for (int j = 0; j < (xs ? kXsSubs : 1); ++j, out += kernels::kIq4BlockBytes) {
    // Exact: an f16 times a 6-bit integer.
    const float scale = xs ? d * static_cast<float>(XsScale(block, j) - 32) : d;
    std::memcpy(out, &scale, 4);
    std::memcpy(out + 4, block + (xs ? 8 + kIndexBytes * j : 2), kIndexBytes);
  }
}

void PackIq4(bool xs, const float* values, uint8_t* block) {
  if (!xs) {
    const float d = StoreHalf(SubScale(values), block);
    return PackSub(d, values, block + 2);
  }
  std::array<float, kXsSubs> scales{};
  float largest = 0;
  for (int j = 0; j < kXsSubs; ++j) {
    scales[j] = SubScale(values + kSub * j);
    largest = std::max(largest, std::fabs(scales[j]));
  }
  const float d = StoreHalf(largest / 31.0F, block);
  std::memset(block + 2, 0, 6);
  uint16_t high = 0;
  for (int j = 0; j < kXsSubs; ++j) {
    const int ls =
        d != 0 ? std::clamp(static_cast<int>(std::lround(scales[j] / d)) + 32, 0, 63) : 32;
    block[4 + j / 2] |= static_cast<uint8_t>((ls & 0x0F) << (4 * (j % 2)));
    high |= static_cast<uint16_t>((ls >> 4) << (2 * j));
    PackSub(d * static_cast<float>(ls - 32), values + kSub * j, block + 8 + kIndexBytes * j);
  }
  std::memcpy(block + 2, &high, sizeof(high));
}

}  // namespace ringserve::model
