#include "worker/model/gguf_blocks.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstring>

#include "common/check.h"
#include "kernels/dtype.h"
#include "worker/model/gguf_iquants.h"
#include "worker/model/gguf_kquants.h"

namespace ringserve::model {
namespace {

constexpr int kBlock = kernels::kQ8_0BlockValues;

// Indexed by Packing; the ggml type numbers and block sizes are ggml.h's and ggml.c's.
constexpr std::array<PackingInfo, 12> kPackings = {{
    {"", 0, 1, 1, true},  // kAsStored: not a packing
    {"q4_0", 2, 32, 18, true},
    {"q5_0", 6, 32, 22, true},
    {"q4_1", 3, 32, 20, false},
    {"q5_1", 7, 32, 24, false},
    {"q2_k", 10, 256, 84, false},
    {"q3_k", 11, 256, 110, false},
    {"q4_k", 12, 256, 144, false},
    {"q5_k", 13, 256, 176, false},
    {"q6_k", 14, 256, 210, false},
    {"iq4_nl", 20, 32, kIq4NlBlockBytes, true},
    {"iq4_xs", 23, 256, kIq4XsBlockBytes, false},
}};

// Where the parts of a 32-value block of the first four formats sit: an f16 scale d at 0,
// for Q4_1 and Q5_1 an f16 offset m at 2, for Q5_0 and Q5_1 the fifth bits as a
// little-endian uint32, then 16 bytes whose low nibbles are values 0-15 and high nibbles
// values 16-31 (bit i of the fifth bits belongs to value i).
struct LegacyLayout {
  bool offset;
  bool five_bit;
  int high_at;
  int quants_at;
};

LegacyLayout LayoutOf(Packing packing) {
  switch (packing) {
    case Packing::kQ4_0:
      return {false, false, 0, 2};
    case Packing::kQ5_0:
      return {false, true, 2, 6};
    case Packing::kQ4_1:
      return {true, false, 0, 4};
    default:
      return {true, true, 4, 8};
  }
}

// The quant that stands for 0: 8 or 16 for Q4_0 and Q5_0, 0 (the block's min) for the others.
int CentreOf(const LegacyLayout& layout) {
  if (layout.offset) return 0;
  return layout.five_bit ? 16 : 8;
}

// Q4_0, Q5_0, Q4_1 and Q5_1: a scale (and offset) and 4- or 5-bit quants per 32 values.
bool IsLegacy(Packing packing) {
  return packing == Packing::kQ4_0 || packing == Packing::kQ5_0 || packing == Packing::kQ4_1 ||
         packing == Packing::kQ5_1;
}

bool IsIq4(Packing packing) { return packing == Packing::kIQ4_NL || packing == Packing::kIQ4_XS; }

// std::lround for |v| < 2^23 (half away from zero), without the library call that made it
// most of the time a model took to load: v - trunc(v) is exact in that range.
int RoundHalfAway(float v) {
  if (!(std::fabs(v) < 128.0F)) return v > 0 ? 127 : (v < 0 ? -127 : 0);  // inf, NaN: no UB
  const auto whole = static_cast<int>(v);
  const float fraction = v - static_cast<float>(whole);
  return whole + static_cast<int>(fraction >= 0.5F) - static_cast<int>(fraction <= -0.5F);
}

// The unsigned quant (0-15 or 0-31) of value i of a legacy block.
int LegacyQuant(const LegacyLayout& layout, const uint8_t* block, int i) {
  const uint8_t byte = block[layout.quants_at + i % 16];
  const int low = i < 16 ? byte & 0x0F : byte >> 4;
  if (!layout.five_bit) return low;
  uint32_t high = 0;
  std::memcpy(&high, block + layout.high_at, sizeof(high));
  return low | static_cast<int>((high >> i) & 1U) << 4;
}

// ggml: d * (q - centre) for Q4_0 and Q5_0, d * q + m for Q4_1 and Q5_1.
void UnpackLegacy(Packing packing, const uint8_t* block, float* y) {
  const LegacyLayout layout = LayoutOf(packing);
  const float d = LoadHalf(block);
  const int centre = CentreOf(layout);
  const float m = layout.offset ? LoadHalf(block + 2) : 0.0F;
  for (int i = 0; i < kBlock; ++i) {
    const auto q = static_cast<float>(LegacyQuant(layout, block, i) - centre);
    y[i] = layout.offset ? q * d + m : q * d;
  }
}

// ggml's reference quantizers. Q4_0 / Q5_0: the value of largest magnitude maps to quant 0,
// d = that value / -centre, each value rounds to the nearest quant, clamped to the top one.
// Q4_1 / Q5_1: d = (max - min) / top, m = min.
void PackLegacy(Packing packing, const float* x, uint8_t* out) {
  const LegacyLayout layout = LayoutOf(packing);
  const int top = layout.five_bit ? 31 : 15;
  float d = 0;
  float base = 0;  // what quant 0 stands for, in steps of d below the value
  if (layout.offset) {
    const auto [lo, hi] = std::minmax_element(x, x + kBlock);
    d = (*hi - *lo) / static_cast<float>(top);
    base = *lo;
    StoreHalf(*lo, out + 2);
  } else {
    float extreme = 0;  // the value of largest magnitude, with its sign
    for (int i = 0; i < kBlock; ++i) {
      if (std::fabs(x[i]) > std::fabs(extreme)) extreme = x[i];
    }
    d = extreme / -static_cast<float>(CentreOf(layout));
  }
  StoreHalf(d, out);
  const float inverse = d != 0.0F ? 1.0F / d : 0.0F;
  const float centre = static_cast<float>(CentreOf(layout));
  uint8_t* quants = out + layout.quants_at;
  std::memset(quants, 0, 16);
  uint32_t high = 0;
  for (int i = 0; i < kBlock; ++i) {
    // (x - base) / d + centre + 0.5 truncated (the sum is >= 0), in float, as one expression:
    // the rounding ggml's quantizers do, so that files match theirs, ties and all.
    const float shifted = (x[i] - base) * inverse + (centre + 0.5F);
    const int q = std::min(top, static_cast<int>(shifted));
    quants[i % 16] |= static_cast<uint8_t>((q & 0x0F) << (i < 16 ? 0 : 4));
    high |= static_cast<uint32_t>((q >> 4) & 1) << i;
  }
  if (layout.five_bit) std::memcpy(out + layout.high_at, &high, sizeof(high));
}

// Writes the Q8_0 block of a kQ4Affine, kQ5Affine or kIQ4 block `in` at `out` where it has
// one (d * (q - 8), d * (q - 16) or d * level under an f16 d: Q4_0's, Q5_0's and IQ4_NL's
// blocks), and says whether it did.
bool ExactQ8_0(kernels::DType from, const uint8_t* in, uint8_t* out) {
  const bool levels = from == kernels::DType::kIQ4;
  const int centre = from == kernels::DType::kQ4Affine ? 8 : 16;
  float d = 0;
  float m = 0;
  std::memcpy(&d, in, 4);
  if (!levels) std::memcpy(&m, in + 4, 4);
  if ((!levels && m != -static_cast<float>(centre) * d) ||
      kernels::HalfToFloat(kernels::FloatToHalf(d)) != d) {
    return false;
  }
  StoreHalf(d, out);
  for (int i = 0; i < kBlock; ++i) {
    const auto q =
        static_cast<int8_t>(levels ? kernels::kIq4Levels[kernels::Q4AffineQuant(in + 4, i)]
                                   : kernels::AffineQuant(from, in, i) - centre);
    std::memcpy(out + 2 + i, &q, 1);
  }
  return true;
}

}  // namespace

const PackingInfo& InfoOf(Packing packing) {
  RS_CHECK(packing != Packing::kAsStored);
  return kPackings[static_cast<size_t>(packing)];
}

std::optional<Packing> PackingOfGgmlType(uint32_t ggml_type) {
  for (size_t i = 1; i < kPackings.size(); ++i) {
    if (kPackings[i].ggml_type == ggml_type) return static_cast<Packing>(i);
  }
  return std::nullopt;
}

std::optional<Packing> PackingNamed(std::string_view name) {
  for (size_t i = 1; i < kPackings.size(); ++i) {
    if (kPackings[i].name == name) return static_cast<Packing>(i);
  }
  return std::nullopt;
}

int64_t PackedBytes(Packing packing, int64_t count) {
  const PackingInfo& info = InfoOf(packing);
  RS_CHECK(count % info.block_values == 0);
  return count / info.block_values * info.block_bytes;
}

void Unpack(Packing packing, const uint8_t* src, int64_t count, float* dst) {
  const PackingInfo& info = InfoOf(packing);
  RS_CHECK(count % info.block_values == 0);
  for (int64_t b = 0; b < count / info.block_values; ++b) {
    const uint8_t* block = src + b * info.block_bytes;
    float* y = dst + b * info.block_values;
    if (IsLegacy(packing)) {
      UnpackLegacy(packing, block, y);
    } else if (IsIq4(packing)) {
      UnpackIq4(packing == Packing::kIQ4_XS, block, y);
    } else {
      UnpackKBlock(packing, block, y);
    }
  }
}

void WidenToQ8_0(Packing packing, const uint8_t* src, int64_t count, uint8_t* dst) {
  const PackingInfo& info = InfoOf(packing);
  RS_CHECK(count % info.block_values == 0);
  if (!info.exact) {
    std::array<float, kKQuantBlockValues> values{};
    for (int64_t b = 0; b < count / info.block_values; ++b) {
      Unpack(packing, src + b * info.block_bytes, info.block_values, values.data());
      for (int i = 0; i < info.block_values / kBlock; ++i) {
        QuantizeQ8_0Block(values.data() + static_cast<ptrdiff_t>(i) * kBlock,
                          dst + (b * info.block_values / kBlock + i) * kernels::kQ8_0BlockBytes);
      }
    }
    return;
  }
  if (packing == Packing::kIQ4_NL) {
    for (int64_t b = 0; b < count / kBlock; ++b) {
      Iq4NlToQ8_0(src + b * info.block_bytes, dst + b * kernels::kQ8_0BlockBytes);
    }
    return;
  }
  const LegacyLayout layout = LayoutOf(packing);
  const int centre = CentreOf(layout);
  for (int64_t b = 0; b < count / kBlock; ++b) {
    const uint8_t* in = src + b * info.block_bytes;
    uint8_t* out = dst + b * kernels::kQ8_0BlockBytes;
    std::memcpy(out, in, 2);  // the f16 scale
    for (int i = 0; i < kBlock; ++i) {
      const auto q = static_cast<int8_t>(LegacyQuant(layout, in, i) - centre);
      std::memcpy(out + 2 + i, &q, 1);
    }
  }
}

std::optional<kernels::DType> CompactDTypeOf(Packing packing) {
  switch (packing) {
    case Packing::kQ4_0:
    case Packing::kQ4_1:
    case Packing::kQ4_K:
      return kernels::DType::kQ4Affine;
    case Packing::kQ5_0:
    case Packing::kQ5_1:
    case Packing::kQ5_K:
      return kernels::DType::kQ5Affine;
    case Packing::kIQ4_NL:
    case Packing::kIQ4_XS:
      return kernels::DType::kIQ4;
    case Packing::kQ3_K:
    case Packing::kQ6_K:
      return kernels::DType::kQ6;
    default:
      return std::nullopt;
  }
}

void ToCompact(Packing packing, const uint8_t* src, int64_t count, uint8_t* dst) {
  const std::optional<kernels::DType> compact = CompactDTypeOf(packing);
  RS_CHECK(compact.has_value());
  const PackingInfo& info = InfoOf(packing);
  RS_CHECK(count % info.block_values == 0);
  const auto out_bytes = static_cast<int64_t>(kernels::DTypeBytes(*compact, kBlock));
  for (int64_t b = 0; b < count / info.block_values; ++b) {
    const uint8_t* in = src + b * info.block_bytes;
    uint8_t* out = dst + b * info.block_values / kBlock * out_bytes;
    if (IsIq4(packing)) {
      Iq4ToBlocks(packing == Packing::kIQ4_XS, in, out);
      continue;
    }
    if (packing == Packing::kQ4_K || packing == Packing::kQ5_K) {
      KBlockToAffine(packing == Packing::kQ5_K, in, out);
      continue;
    }
    if (packing == Packing::kQ3_K || packing == Packing::kQ6_K) {
      KBlockToQ6(packing, in, out);
      continue;
    }
    const LegacyLayout layout = LayoutOf(packing);
    const float d = LoadHalf(in);
    // Exact: d is an f16, and 8 and 16 are powers of two.
    const float m = layout.offset ? LoadHalf(in + 2) : -static_cast<float>(CentreOf(layout)) * d;
    std::memcpy(out, &d, 4);
    std::memcpy(out + 4, &m, 4);
    std::memcpy(out + 8, in + layout.quants_at, 16);                     // the same nibble order
    if (layout.five_bit) std::memcpy(out + 24, in + layout.high_at, 4);  // and bit order
  }
}

void ConvertCompact(kernels::DType from, kernels::DType to, const uint8_t* src, int64_t count,
                    uint8_t* dst) {
  RS_CHECK(kernels::IsBlockDType(from) && from != kernels::DType::kQ8_0 && count % kBlock == 0);
  const auto in_bytes = static_cast<int64_t>(kernels::DTypeBytes(from, kBlock));
  if (to == kernels::DType::kQ5Affine) {
    RS_CHECK(from == kernels::DType::kQ4Affine);
    for (int64_t b = 0; b < count / kBlock; ++b) {
      uint8_t* out = dst + b * kernels::kQ5AffineBlockBytes;
      std::memcpy(out, src + b * in_bytes, kernels::kQ4AffineBlockBytes);
      std::memset(out + kernels::kQ4AffineBlockBytes, 0, 4);  // no fifth bits
    }
    return;
  }
  RS_CHECK(to == kernels::DType::kQ8_0);
  std::array<float, kBlock> values{};
  for (int64_t b = 0; b < count / kBlock; ++b) {
    const uint8_t* in = src + b * in_bytes;
    uint8_t* out = dst + b * kernels::kQ8_0BlockBytes;
    // (kQ6's blocks have no Q8_0 form: two scales.)
    if (from != kernels::DType::kQ6 && ExactQ8_0(from, in, out)) continue;
    kernels::ConvertToFloat(from, in, kBlock, values.data());
    QuantizeQ8_0Block(values.data(), out);
  }
}

void QuantizeQ8_0Block(const float* values, uint8_t* out) {
  float amax = 0;
  for (int i = 0; i < kBlock; ++i) amax = std::max(amax, std::fabs(values[i]));
  const float d = amax / 127.0F;
  const float inverse = d != 0 ? 1.0F / d : 0.0F;
  StoreHalf(d, out);
  for (int i = 0; i < kBlock; ++i) {
    out[2 + i] = static_cast<uint8_t>(static_cast<int8_t>(RoundHalfAway(values[i] * inverse)));
  }
}

void Pack(Packing packing, const float* values, int64_t count, uint8_t* dst) {
  const PackingInfo& info = InfoOf(packing);
  RS_CHECK(count % info.block_values == 0);
  for (int64_t b = 0; b < count / info.block_values; ++b) {
    const float* x = values + b * info.block_values;
    uint8_t* out = dst + b * info.block_bytes;
    if (IsLegacy(packing)) {
      PackLegacy(packing, x, out);
    } else if (IsIq4(packing)) {
      PackIq4(packing == Packing::kIQ4_XS, x, out);
    } else {
      PackKBlock(packing, x, out);
    }
  }
}

}  // namespace ringserve::model
