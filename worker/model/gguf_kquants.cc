#include "worker/model/gguf_kquants.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstring>

#include "common/check.h"
#include "kernels/dtype.h"

namespace ringserve::model {
namespace {

constexpr int kValues = kKQuantBlockValues;

// Byte offsets inside each block (ggml-common.h's block_q*_K structs, in order).
namespace q2k {
constexpr int kScales = 0, kQuants = 16, kD = 80, kDmin = 82;  // 84 bytes
}
namespace q3k {
constexpr int kHighMask = 0, kQuants = 32, kScales = 96, kD = 108;  // 110 bytes
}
namespace q45k {  // Q4_K (144 bytes) and Q5_K (176 bytes)
constexpr int kD = 0, kDmin = 2, kScales = 4, kQ4Quants = 16, kQ5High = 16, kQ5Quants = 48;
}
namespace q6k {
constexpr int kLow = 0, kHigh = 128, kScales = 192, kD = 208;  // 210 bytes
}

// Scale and min j (0-7) of a Q4_K / Q5_K block: 6 bits each in 12 bytes. Bytes 0-3 hold
// scales 0-3 in their low 6 bits, bytes 4-7 mins 0-3; scales and mins 4-7 keep their low
// 4 bits in bytes 8-11 (scale low, min high nibble) and their top 2 bits in the spare top
// bits of bytes 0-3 (scales) and 4-7 (mins).
void ScaleMinK4(const uint8_t* s, int j, int* scale, int* min) {
  if (j < 4) {
    *scale = s[j] & 63;
    *min = s[j + 4] & 63;
  } else {
    *scale = (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4);
    *min = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

void PutScaleMinK4(int j, int scale, int min, uint8_t* s) {
  if (j < 4) {
    s[j] |= static_cast<uint8_t>(scale);
    s[j + 4] |= static_cast<uint8_t>(min);
  } else {
    s[j + 4] = static_cast<uint8_t>((scale & 0x0F) | (min & 0x0F) << 4);
    s[j - 4] |= static_cast<uint8_t>((scale >> 4) << 6);
    s[j] |= static_cast<uint8_t>((min >> 4) << 6);
  }
}

// Sub-block scale i (0-15) of a Q3_K block, 6 bits stored with a bias of 32: low nibbles in
// bytes 0-7 (scales 0-7 low, 8-15 high nibble), top 2 bits in bytes 8-11 (byte 8 + i % 4,
// bit pair i / 4).
int ScaleQ3K(const uint8_t* s, int i) {
  const int low = i < 8 ? s[i] & 0x0F : s[i - 8] >> 4;
  const int high = (s[8 + i % 4] >> (2 * (i / 4))) & 3;
  return (low | high << 4) - 32;
}

void PutScaleQ3K(int i, int scale, uint8_t* s) {
  const int biased = scale + 32;
  s[i % 8] |= static_cast<uint8_t>((biased & 0x0F) << (i < 8 ? 0 : 4));
  s[8 + i % 4] |= static_cast<uint8_t>((biased >> 4) << (2 * (i / 4)));
}

// The unpacking loops follow ggml's, so that each value is the same f32 expression.

void UnpackQ2K(const uint8_t* b, float* y) {
  const float d = LoadHalf(b + q2k::kD);
  const float dmin = LoadHalf(b + q2k::kDmin);
  int is = 0;
  for (int n = 0; n < 2; ++n) {
    const uint8_t* q = b + q2k::kQuants + ptrdiff_t{32} * n;
    for (int shift = 0; shift < 8; shift += 2) {
      for (int half = 0; half < 2; ++half) {
        const int sc = b[q2k::kScales + is++];
        const float dl = d * static_cast<float>(sc & 0x0F);
        const float ml = dmin * static_cast<float>(sc >> 4);
        for (int l = 0; l < 16; ++l) {
          *y++ = dl * static_cast<float>((q[l + 16 * half] >> shift) & 3) - ml;
        }
      }
    }
  }
}

void UnpackQ3K(const uint8_t* b, float* y) {
  const float d = LoadHalf(b + q3k::kD);
  const uint8_t* high = b + q3k::kHighMask;
  int is = 0;
  unsigned mask = 1;
  for (int n = 0; n < 2; ++n) {
    const uint8_t* q = b + q3k::kQuants + ptrdiff_t{32} * n;
    for (int shift = 0; shift < 8; shift += 2, mask <<= 1) {
      for (int half = 0; half < 2; ++half) {
        const float dl = d * static_cast<float>(ScaleQ3K(b + q3k::kScales, is++));
        for (int l = 16 * half; l < 16 * half + 16; ++l) {
          const int quant = ((q[l] >> shift) & 3) - ((high[l] & mask) != 0 ? 0 : 4);
          *y++ = dl * static_cast<float>(quant);
        }
      }
    }
  }
}

void UnpackQ45K(bool five_bit, const uint8_t* b, float* y) {
  const float d = LoadHalf(b + q45k::kD);
  const float dmin = LoadHalf(b + q45k::kDmin);
  const uint8_t* q = b + (five_bit ? q45k::kQ5Quants : q45k::kQ4Quants);
  const uint8_t* high = b + q45k::kQ5High;
  unsigned mask = 1;  // the fifth bit of sub-block j is bit j of high[l]
  for (int j = 0; j < 8; j += 2, q += 32) {
    for (int nibble = 0; nibble < 2; ++nibble, mask <<= 1) {
      int sc = 0;
      int m = 0;
      ScaleMinK4(b + q45k::kScales, j + nibble, &sc, &m);
      const float dl = d * static_cast<float>(sc);
      const float ml = dmin * static_cast<float>(m);
      for (int l = 0; l < 32; ++l) {
        int quant = (q[l] >> (4 * nibble)) & 0x0F;
        if (five_bit && (high[l] & mask) != 0) quant += 16;
        *y++ = dl * static_cast<float>(quant) - ml;
      }
    }
  }
}

void UnpackQ6K(const uint8_t* b, float* y) {
  const float d = LoadHalf(b + q6k::kD);
  const uint8_t* low = b + q6k::kLow;
  const uint8_t* high = b + q6k::kHigh;
  const auto* scales = reinterpret_cast<const int8_t*>(b + q6k::kScales);
  for (int n = 0; n < 2; ++n, y += 128, low += 64, high += 32, scales += 8) {
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      for (int k = 0; k < 4; ++k) {  // value 32k + l of this half
        const int nibble = (low[l + 32 * (k & 1)] >> (4 * (k / 2))) & 0x0F;
        const int quant = (nibble | ((high[l] >> (2 * k)) & 3) << 4) - 32;
        y[32 * k + l] = d * static_cast<float>(scales[is + 2 * k]) * static_cast<float>(quant);
      }
    }
  }
}

// The format of a K-quant, as the packer sees it: quants of `bits` bits per value under a
// scale per `sub_block` values, quantized to `scale_bits` bits against an f16 super-block
// scale. Asymmetric formats also keep a min per sub-block (value = scale * q - min, q >= 0);
// symmetric ones centre q on zero (value = scale * q, q in [-2^(bits-1), 2^(bits-1))).
struct KFormat {
  int bits;
  int sub_block;
  int scale_bits;
  bool asymmetric;
};

KFormat FormatOf(Packing packing) {
  switch (packing) {
    case Packing::kQ2_K:
      return {2, 16, 4, true};
    case Packing::kQ3_K:
      return {3, 16, 6, false};
    case Packing::kQ4_K:
      return {4, 32, 6, true};
    case Packing::kQ5_K:
      return {5, 32, 6, true};
    default:
      return {6, 16, 8, false};
  }
}

// Sub-block scales and mins, quantized; `quants` holds each value's quant (unsigned for
// the asymmetric formats, signed for the symmetric ones).
struct KQuantized {
  std::array<int, 16> scales{};
  std::array<int, 16> mins{};
  std::array<int, kValues> quants{};
};

// Fits each sub-block's scale (and min), quantizes those against the super-block scales it
// stores at `d_at` (and `dmin_at`), then each value against its sub-block's.
KQuantized Quantize(const KFormat& f, const float* x, uint8_t* d_at, uint8_t* dmin_at) {
  const int subs = kValues / f.sub_block;
  const int top = f.asymmetric ? (1 << f.bits) - 1 : (1 << (f.bits - 1)) - 1;
  const int bottom = f.asymmetric ? 0 : -(1 << (f.bits - 1));
  const int scale_top = f.asymmetric ? (1 << f.scale_bits) - 1 : (1 << (f.scale_bits - 1)) - 1;
  const int scale_bottom = f.asymmetric ? 0 : -(1 << (f.scale_bits - 1));
  std::array<float, 16> scale{};
  std::array<float, 16> min{};
  float largest_scale = 0;  // with its sign, for the symmetric formats
  float largest_min = 0;
  for (int j = 0; j < subs; ++j) {
    const float* v = x + static_cast<ptrdiff_t>(j) * f.sub_block;
    if (f.asymmetric) {  // quant 0 is min(0, lowest); the top quant the highest
      const auto [lo, hi] = std::minmax_element(v, v + f.sub_block);
      min[j] = -std::min(0.0F, *lo);
      scale[j] = (std::max(*hi, 0.0F) + min[j]) / static_cast<float>(top);
      largest_min = std::max(largest_min, min[j]);
    } else {  // the value of largest magnitude is the bottom quant, as in Q4_0
      float extreme = 0;
      for (int i = 0; i < f.sub_block; ++i) {
        if (std::fabs(v[i]) > std::fabs(extreme)) extreme = v[i];
      }
      scale[j] = extreme / static_cast<float>(bottom);
    }
    if (std::fabs(scale[j]) > std::fabs(largest_scale)) largest_scale = scale[j];
  }
  // The largest sub-block scale is the extreme quantized scale (the top one, or for the
  // symmetric formats the bottom one, with the largest magnitude).
  const float d =
      StoreHalf(largest_scale / static_cast<float>(f.asymmetric ? scale_top : scale_bottom), d_at);
  const float dmin =
      f.asymmetric ? StoreHalf(largest_min / static_cast<float>(scale_top), dmin_at) : 0.0F;
  KQuantized out;
  for (int j = 0; j < subs; ++j) {
    out.scales[j] = d != 0.0F ? static_cast<int>(std::clamp(std::lround(scale[j] / d),
                                                            long{scale_bottom}, long{scale_top}))
                              : 0;
    out.mins[j] =
        dmin != 0.0F ? static_cast<int>(std::clamp(std::lround(min[j] / dmin), 0L, long{scale_top}))
                     : 0;
    const float step = d * static_cast<float>(out.scales[j]);
    const float offset = dmin * static_cast<float>(out.mins[j]);
    for (int i = j * f.sub_block; i < (j + 1) * f.sub_block; ++i) {
      const long q = step != 0.0F ? std::lround((x[i] + offset) / step) : 0;
      out.quants[i] = static_cast<int>(std::clamp(q, long{bottom}, long{top}));
    }
  }
  return out;
}

// Where value e of a super-block keeps its quant bits. Q2_K, Q3_K and Q6_K lay values
// 128n + 32k + l (n < 2, k < 4, l < 32) out in bit pair k of byte 32n + l; Q4_K and Q5_K
// values 64p + 32h + l in nibble h of byte 32p + l; the high bits (Q3_K's third, Q5_K's
// fifth, Q6_K's top two) sit in byte l of a separate array.
struct Place {
  int n;     // which half of the super-block (Q2_K, Q3_K, Q6_K)
  int pair;  // which bit pair (k above) of the byte
  int l;     // which byte of the 32
};

Place PlaceOf(int e) { return {e / 128, (e % 128) / 32, e % 32}; }

void PackQ2K(const float* x, uint8_t* b) {
  const KQuantized k = Quantize(FormatOf(Packing::kQ2_K), x, b + q2k::kD, b + q2k::kDmin);
  for (int j = 0; j < 16; ++j) {
    b[q2k::kScales + j] = static_cast<uint8_t>(k.scales[j] | k.mins[j] << 4);
  }
  for (int e = 0; e < kValues; ++e) {
    const auto [n, pair, l] = PlaceOf(e);
    b[q2k::kQuants + 32 * n + l] |= static_cast<uint8_t>(k.quants[e] << (2 * pair));
  }
}

void PackQ3K(const float* x, uint8_t* b) {
  const KQuantized k = Quantize(FormatOf(Packing::kQ3_K), x, b + q3k::kD, nullptr);
  for (int j = 0; j < 16; ++j) PutScaleQ3K(j, k.scales[j], b + q3k::kScales);
  for (int e = 0; e < kValues; ++e) {
    const auto [n, pair, l] = PlaceOf(e);
    const int biased = k.quants[e] + 4;  // the high bit set means "no -4"
    b[q3k::kQuants + 32 * n + l] |= static_cast<uint8_t>((biased & 3) << (2 * pair));
    b[q3k::kHighMask + l] |= static_cast<uint8_t>((biased >> 2) << (4 * n + pair));
  }
}

void PackQ45K(bool five_bit, const float* x, uint8_t* b) {
  const KQuantized k = Quantize(FormatOf(five_bit ? Packing::kQ5_K : Packing::kQ4_K), x,
                                b + q45k::kD, b + q45k::kDmin);
  for (int j = 0; j < 8; ++j) PutScaleMinK4(j, k.scales[j], k.mins[j], b + q45k::kScales);
  uint8_t* quants = b + (five_bit ? q45k::kQ5Quants : q45k::kQ4Quants);
  for (int e = 0; e < kValues; ++e) {
    const int j = e / 32;  // the sub-block
    const int l = e % 32;
    quants[32 * (j / 2) + l] |= static_cast<uint8_t>((k.quants[e] & 0x0F) << (4 * (j % 2)));
    if (five_bit) b[q45k::kQ5High + l] |= static_cast<uint8_t>((k.quants[e] >> 4) << j);
  }
}

void PackQ6K(const float* x, uint8_t* b) {
  const KQuantized k = Quantize(FormatOf(Packing::kQ6_K), x, b + q6k::kD, nullptr);
  for (int j = 0; j < 16; ++j) {
    const auto scale = static_cast<int8_t>(k.scales[j]);
    std::memcpy(b + q6k::kScales + j, &scale, 1);
  }
  for (int e = 0; e < kValues; ++e) {
    const auto [n, pair, l] = PlaceOf(e);
    const int biased = k.quants[e] + 32;
    b[q6k::kLow + 64 * n + 32 * (pair & 1) + l] |=
        static_cast<uint8_t>((biased & 0x0F) << (4 * (pair / 2)));
    b[q6k::kHigh + 32 * n + l] |= static_cast<uint8_t>((biased >> 4) << (2 * pair));
  }
}

}  // namespace

void UnpackKBlock(Packing packing, const uint8_t* block, float* values) {
  switch (packing) {
    case Packing::kQ2_K:
      return UnpackQ2K(block, values);
    case Packing::kQ3_K:
      return UnpackQ3K(block, values);
    case Packing::kQ4_K:
    case Packing::kQ5_K:
      return UnpackQ45K(packing == Packing::kQ5_K, block, values);
    case Packing::kQ6_K:
      return UnpackQ6K(block, values);
    default:
      RS_CHECK(false && "not a K-quant");
  }
}

void KBlockToAffine(bool five_bit, const uint8_t* block, uint8_t* out) {
  const float d = LoadHalf(block + q45k::kD);
  const float dmin = LoadHalf(block + q45k::kDmin);
  const int out_bytes = five_bit ? kernels::kQ5AffineBlockBytes : kernels::kQ4AffineBlockBytes;
  const uint8_t* high = block + q45k::kQ5High;
  for (int j = 0; j < 8; ++j, out += out_bytes) {
    int sc = 0;
    int m = 0;
    ScaleMinK4(block + q45k::kScales, j, &sc, &m);
    const float scale = d * static_cast<float>(sc);
    const float offset = -(dmin * static_cast<float>(m));
    std::memcpy(out, &scale, 4);
    std::memcpy(out + 4, &offset, 4);
    // Sub-blocks 2i and 2i + 1 share 32 bytes: the low and the high nibbles; value l of
    // sub-block j keeps its fifth bit in bit j of high[l].
    const uint8_t* q =
        block + (five_bit ? q45k::kQ5Quants : q45k::kQ4Quants) + ptrdiff_t{32} * (j / 2);
    const int shift = 4 * (j % 2);
    for (int i = 0; i < 16; ++i) {
      out[8 + i] =
          static_cast<uint8_t>(((q[i] >> shift) & 0x0F) | ((q[i + 16] >> shift) & 0x0F) << 4);
    }
    if (!five_bit) continue;
    uint32_t fifth = 0;
    for (int l = 0; l < 32; ++l) fifth |= static_cast<uint32_t>((high[l] >> j) & 1) << l;
    std::memcpy(out + 24, &fifth, 4);
  }
}

void KBlockToQ6(Packing packing, const uint8_t* block, uint8_t* out) {
  RS_CHECK(packing == Packing::kQ3_K || packing == Packing::kQ6_K);
  const bool q3 = packing == Packing::kQ3_K;
  for (int t = 0; t < 8; ++t, out += kernels::kQ6BlockBytes) {
    std::memset(out, 0, kernels::kQ6BlockBytes);
    // Values 32t + l are 128n + 32pair + l (PlaceOf); their scales are sub-blocks 2t, 2t + 1.
    const int n = t / 4;
    const int pair = t % 4;
    for (int half = 0; half < 2; ++half) {  // int8, stored as its two's complement byte
      const int scale = q3 ? ScaleQ3K(block + q3k::kScales, 2 * t + half)
                           : static_cast<int8_t>(block[q6k::kScales + 2 * t + half]);
      out[half] = static_cast<uint8_t>(scale);
    }
    std::memcpy(out + 2, block + (q3 ? q3k::kD : q6k::kD), 2);
    for (int l = 0; l < 32; ++l) {
      // Q3_K's quant, low2 - (high bit clear ? 4 : 0), is 6-bit q - 32 at q = 28 + low2 + 4 high.
      const int q =
          q3 ? 28 + ((block[q3k::kQuants + 32 * n + l] >> (2 * pair)) & 3) +
                   4 * ((block[q3k::kHighMask + l] >> (4 * n + pair)) & 1)
             : ((block[q6k::kLow + 64 * n + 32 * (pair & 1) + l] >> (4 * (pair / 2))) & 0x0F) |
                   ((block[q6k::kHigh + 32 * n + l] >> (2 * pair)) & 3) << 4;
      out[4 + l % 16] |= static_cast<uint8_t>((q & 0x0F) << (l < 16 ? 0 : 4));
      out[20 + l / 4] |= static_cast<uint8_t>((q >> 4) << (2 * (l % 4)));
    }
  }
}

void PackKBlock(Packing packing, const float* values, uint8_t* block) {
  std::memset(block, 0, static_cast<size_t>(BlockBytes(packing)));
  switch (packing) {
    case Packing::kQ2_K:
      return PackQ2K(values, block);
    case Packing::kQ3_K:
      return PackQ3K(values, block);
    case Packing::kQ4_K:
    case Packing::kQ5_K:
      return PackQ45K(packing == Packing::kQ5_K, values, block);
    case Packing::kQ6_K:
      return PackQ6K(values, block);
    default:
      RS_CHECK(false && "not a K-quant");
  }
}

}  // namespace ringserve::model
