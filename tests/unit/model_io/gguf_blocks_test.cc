// GGUF packed tensors (Q4_0 ... Q6_K): read as supported and served as Q8_0 blocks. Unpack
// is checked against a reference written here a different way, value by value from ggml's
// block layouts (where each value's bits and scale sit), on random blocks; Q4_0 and Q5_0
// widen to Q8_0 exactly, the others within half a Q8_0 step; Pack round-trips within its
// format's step.
#include "worker/model/gguf_blocks.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <iostream>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/dtype.h"
#include "worker/model/gguf_reader.h"
#include "worker/model/gguf_writer.h"

namespace ringserve::model {
namespace {

constexpr Packing kAll[] = {Packing::kQ4_0, Packing::kQ5_0,   Packing::kQ4_1,  Packing::kQ5_1,
                            Packing::kQ2_K, Packing::kQ3_K,   Packing::kQ4_K,  Packing::kQ5_K,
                            Packing::kQ6_K, Packing::kIQ4_NL, Packing::kIQ4_XS};

std::string Name(Packing packing) { return std::string(InfoOf(packing).name); }

float Half(const uint8_t* p) {
  uint16_t bits = 0;
  std::memcpy(&bits, p, 2);
  return kernels::HalfToFloat(bits);
}

// Offsets of the f16 fields of each block format (ggml-common.h's structs).
std::vector<int> HalfFields(Packing packing) {
  switch (packing) {
    case Packing::kQ4_0:
    case Packing::kQ5_0:
    case Packing::kIQ4_NL:
    case Packing::kIQ4_XS:
      return {0};
    case Packing::kQ4_1:
    case Packing::kQ5_1:
    case Packing::kQ4_K:
    case Packing::kQ5_K:
      return {0, 2};
    case Packing::kQ2_K:
      return {80, 82};
    case Packing::kQ3_K:
      return {108};
    default:
      return {208};
  }
}

// Random blocks: every other byte random, so every quant, scale and min value occurs; the
// f16 fields finite, of both signs.
std::vector<uint8_t> RandomBlocks(Packing packing, int64_t count, std::mt19937& rng) {
  std::vector<uint8_t> out(static_cast<size_t>(PackedBytes(packing, count)));
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> scale(-0.1F, 0.1F);
  for (uint8_t& b : out) b = static_cast<uint8_t>(byte(rng));
  const int block = BlockBytes(packing);
  for (int64_t b = 0; b < count / BlockValues(packing); ++b) {
    for (const int at : HalfFields(packing)) {
      const uint16_t d = kernels::FloatToHalf(scale(rng));
      std::memcpy(out.data() + b * block + at, &d, 2);
    }
  }
  return out;
}

// Value e of one block, from where ggml's layouts put its bits. Legacy blocks (32 values):
// the low nibble of byte e % 16 for e < 16, else its high nibble; the fifth bit is bit e of
// the 32-bit qh. K-quants (256 values) split e as 128n + 32k + l (16-value sub-blocks) or
// 64p + 32h + l (32-value sub-blocks).
// ggml's kvalues_iq4nl, written here from ggml rather than taken from the code under test.
constexpr int kIq4Levels[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                1,    13,   25,  38,  53,  69,  89,  113};

// The scale of sub-block j (32 values) of an IQ4_NL or IQ4_XS block: d (scales_h scales_l[4])
// qs[16 per 32 values].
float Iq4Scale(Packing packing, const uint8_t* b, int j) {
  if (packing == Packing::kIQ4_NL) return Half(b);
  const int ls =
      ((b[4 + j / 2] >> (4 * (j % 2))) & 15) | (((b[2 + j / 4] >> (2 * (j % 4))) & 3) << 4);
  return Half(b) * static_cast<float>(ls - 32);
}

float ReferenceValue(Packing packing, const uint8_t* b, int e) {
  auto bit = [](const uint8_t* bytes, int i) { return (bytes[i / 8] >> (i % 8)) & 1; };
  const int n = e / 128;  // e = 128n + 32k + l
  const int k = (e % 128) / 32;
  const int l = e % 32;
  const int sub16 = e / 16;  // the 16-value sub-block
  switch (packing) {
    case Packing::kQ4_0:
    case Packing::kQ5_0:
    case Packing::kQ4_1:
    case Packing::kQ5_1: {
      const bool offset = packing == Packing::kQ4_1 || packing == Packing::kQ5_1;
      const bool five = packing == Packing::kQ5_0 || packing == Packing::kQ5_1;
      const uint8_t* qs = b + 2 + (offset ? 2 : 0) + (five ? 4 : 0);
      int q = e < 16 ? qs[e] & 15 : qs[e - 16] >> 4;
      if (five) q |= bit(b + 2 + (offset ? 2 : 0), e) << 4;
      if (offset) return static_cast<float>(q) * Half(b) + Half(b + 2);
      return static_cast<float>(q - (five ? 16 : 8)) * Half(b);
    }
    case Packing::kQ2_K: {  // scales[16] qs[64] d dmin; scale byte: low nibble scale, high min
      const int sc = b[sub16];
      const int q = (b[16 + 32 * n + l] >> (2 * k)) & 3;
      return Half(b + 80) * static_cast<float>(sc & 15) * static_cast<float>(q) -
             Half(b + 82) * static_cast<float>(sc >> 4);
    }
    case Packing::kQ3_K: {  // hmask[32] qs[64] scales[12] d
      // The scales as ggml unpacks them: four 32-bit words, masks and shifts.
      uint32_t aux[4];
      std::memcpy(aux, b + 96, 12);
      const uint32_t tmp = aux[2];
      aux[2] = ((aux[0] >> 4) & 0x0F0F0F0F) | (((tmp >> 4) & 0x03030303) << 4);
      aux[3] = ((aux[1] >> 4) & 0x0F0F0F0F) | (((tmp >> 6) & 0x03030303) << 4);
      aux[0] = (aux[0] & 0x0F0F0F0F) | (((tmp >> 0) & 0x03030303) << 4);
      aux[1] = (aux[1] & 0x0F0F0F0F) | (((tmp >> 2) & 0x03030303) << 4);
      int8_t scales[16];
      std::memcpy(scales, aux, 16);
      const int q = ((b[32 + 32 * n + l] >> (2 * k)) & 3) - (bit(b + l, 4 * n + k) != 0 ? 0 : 4);
      return Half(b + 108) * static_cast<float>(scales[sub16] - 32) * static_cast<float>(q);
    }
    case Packing::kQ4_K:
    case Packing::kQ5_K: {   // d dmin scales[12] (qh[32]) qs[128]
      const int j = e / 32;  // sub-block
      const uint8_t* s = b + 4;
      const int sc = j < 4 ? s[j] & 63 : (s[j + 4] & 15) | (s[j - 4] >> 6) << 4;
      const int m = j < 4 ? s[j + 4] & 63 : (s[j + 4] >> 4) | (s[j] >> 6) << 4;
      const bool five = packing == Packing::kQ5_K;
      const uint8_t* qs = b + (five ? 48 : 16);
      int q = (qs[32 * (j / 2) + l] >> (4 * (j % 2))) & 15;
      if (five) q += bit(b + 16 + l, j) * 16;
      return Half(b) * static_cast<float>(sc) * static_cast<float>(q) -
             Half(b + 2) * static_cast<float>(m);
    }
    case Packing::kIQ4_NL:
    case Packing::kIQ4_XS: {
      const int j = e / 32;  // sub-block
      const uint8_t* qs = b + (packing == Packing::kIQ4_XS ? 8 : 2) + 16 * j;
      const int index = l < 16 ? qs[l] & 15 : qs[l - 16] >> 4;
      return Iq4Scale(packing, b, j) * static_cast<float>(kIq4Levels[index]);
    }
    default: {  // Q6_K: ql[128] qh[64] scales[16] d
      const int low = (b[64 * n + 32 * (k % 2) + l] >> (4 * (k / 2))) & 15;
      const int high = (b[128 + 32 * n + l] >> (2 * k)) & 3;
      const auto scale = static_cast<int8_t>(b[192 + sub16]);
      return Half(b + 208) * static_cast<float>(scale) * static_cast<float>((low | high << 4) - 32);
    }
  }
}

std::vector<float> Reference(Packing packing, const std::vector<uint8_t>& blocks, int64_t count) {
  std::vector<float> out(static_cast<size_t>(count));
  const int values = BlockValues(packing);
  for (int64_t i = 0; i < count; ++i) {
    out[i] = ReferenceValue(packing, blocks.data() + i / values * BlockBytes(packing),
                            static_cast<int>(i % values));
  }
  return out;
}

TEST(GgufBlocksTest, UnpackGivesEveryValueOfTheLayout) {
  std::mt19937 rng(7);
  for (const Packing packing : kAll) {
    const int64_t count = int64_t{256} * 37;
    const std::vector<uint8_t> blocks = RandomBlocks(packing, count, rng);
    std::vector<float> got(static_cast<size_t>(count));
    Unpack(packing, blocks.data(), count, got.data());
    const std::vector<float> want = Reference(packing, blocks, count);
    for (int64_t i = 0; i < count; ++i) {
      ASSERT_EQ(got[i], want[i]) << Name(packing) << " value " << i;
    }
  }
}

TEST(GgufBlocksTest, WideningToQ8_0KeepsOrReRoundsEachValue) {
  std::mt19937 rng(8);
  for (const Packing packing : kAll) {
    const int64_t count = int64_t{256} * 33;
    const std::vector<uint8_t> blocks = RandomBlocks(packing, count, rng);
    std::vector<uint8_t> q8(kernels::DTypeBytes(kernels::DType::kQ8_0, count));
    WidenToQ8_0(packing, blocks.data(), count, q8.data());
    std::vector<float> got(static_cast<size_t>(count));
    kernels::ConvertToFloat(kernels::DType::kQ8_0, q8.data(), count, got.data());
    const std::vector<float> want = Reference(packing, blocks, count);
    for (int64_t b = 0; b < count / 32; ++b) {
      float amax = 0;
      for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(want[b * 32 + i]));
      // Half a step of amax / 127, plus 127 times the f16 rounding of that step.
      const float bound =
          InfoOf(packing).exact ? 0.0F : amax * (1.0F / 254 + 1.0F / 2048) * 1.0001F;
      for (int i = 0; i < 32; ++i) {
        const size_t at = static_cast<size_t>(b * 32 + i);
        ASSERT_LE(std::fabs(got[at] - want[at]), bound)
            << Name(packing) << " value " << at << ": " << got[at] << " for " << want[at];
      }
    }
  }
}

// Q4_0 ... Q5_K rewritten as their affine dtype, IQ4_NL and IQ4_XS as kIQ4, and Q6_K as kQ6, hold
// each value of the layout (Reference), and no other packing claims a compact form. Rewritten on to
// Q8_0 (a matrix joined with Q8_0 parts) they give WidenToQ8_0's blocks (re-rounded alike), or
// blocks holding the values exactly where they have Q4_0's, Q5_0's or IQ4_NL's form (all of those
// files' blocks; the rare K or IQ4_XS block with a scale that happens to fit it, such as an
// all-zero one). The 4-bit affine blocks rewritten as kQ5Affine (a matrix joined with 5-bit parts)
// keep their values too.
TEST(GgufBlocksTest, CompactPackingsRewriteValueForValue) {
  std::mt19937 rng(10);
  for (const Packing packing : kAll) {
    const std::string name(InfoOf(packing).name);
    const bool four_bit = name == "q4_0" || name == "q4_1" || name == "q4_k";
    const bool five_bit = name == "q5_0" || name == "q5_1" || name == "q5_k";
    const bool levels = name == "iq4_nl" || name == "iq4_xs";
    const bool six_bit = name == "q3_k" || name == "q6_k";
    const std::optional<kernels::DType> affine = CompactDTypeOf(packing);
    if (!four_bit && !five_bit && !levels && !six_bit) {
      EXPECT_FALSE(affine.has_value()) << name;
      continue;
    }
    ASSERT_EQ(affine, four_bit   ? kernels::DType::kQ4Affine
                      : five_bit ? kernels::DType::kQ5Affine
                      : six_bit  ? kernels::DType::kQ6
                                 : kernels::DType::kIQ4)
        << name;
    const int64_t count = int64_t{256} * 29;
    const std::vector<uint8_t> blocks = RandomBlocks(packing, count, rng);
    std::vector<uint8_t> rewritten(kernels::DTypeBytes(*affine, count));
    ToCompact(packing, blocks.data(), count, rewritten.data());
    const std::vector<float> want = Reference(packing, blocks, count);
    std::vector<float> got(static_cast<size_t>(count));
    kernels::ConvertToFloat(*affine, rewritten.data(), count, got.data());
    for (int64_t i = 0; i < count; ++i) ASSERT_EQ(got[i], want[i]) << name << " value " << i;
    if (four_bit) {
      std::vector<uint8_t> as_five(kernels::DTypeBytes(kernels::DType::kQ5Affine, count));
      ConvertCompact(*affine, kernels::DType::kQ5Affine, rewritten.data(), count, as_five.data());
      kernels::ConvertToFloat(kernels::DType::kQ5Affine, as_five.data(), count, got.data());
      for (int64_t i = 0; i < count; ++i) ASSERT_EQ(got[i], want[i]) << name << " as q5 " << i;
    }
    std::vector<uint8_t> via_affine(kernels::DTypeBytes(kernels::DType::kQ8_0, count));
    std::vector<uint8_t> direct(via_affine.size());
    ConvertCompact(*affine, kernels::DType::kQ8_0, rewritten.data(), count, via_affine.data());
    WidenToQ8_0(packing, blocks.data(), count, direct.data());
    std::vector<float> via_values(static_cast<size_t>(count));
    kernels::ConvertToFloat(kernels::DType::kQ8_0, via_affine.data(), count, via_values.data());
    for (int64_t b = 0; b < count / 32; ++b) {
      const size_t at = static_cast<size_t>(b) * kernels::kQ8_0BlockBytes;
      const bool widened =
          std::equal(direct.begin() + at, direct.begin() + at + kernels::kQ8_0BlockBytes,
                     via_affine.begin() + at);
      const bool exact = std::equal(want.begin() + b * 32, want.begin() + b * 32 + 32,
                                    via_values.begin() + b * 32);
      ASSERT_TRUE(widened || exact) << name << " block " << b;
      if (packing == Packing::kQ4_0 || packing == Packing::kQ5_0 || packing == Packing::kIQ4_NL) {
        ASSERT_TRUE(widened) << name << " block " << b;
      }
    }
  }
}

// ggml's quantize_row_q8_0_ref: d = amax / 127 as f16, quants roundf(x / d), ties away from
// zero (the quotients here are exact, so every tie is one).
TEST(GgufBlocksTest, Q8_0BlocksRoundAsGgmlDoes) {
  std::mt19937 rng(6);
  std::uniform_real_distribution<float> uniform(-1.0F, 1.0F);
  for (int trial = 0; trial < 200; ++trial) {
    float x[32];
    const float d = 0.25F;  // amax 31.75: exact quotients, ties at every half
    for (int i = 0; i < 32; ++i) {
      x[i] = trial % 2 == 0 ? std::round(uniform(rng) * 254) / 2 * d : uniform(rng);
    }
    if (trial % 2 == 0) x[0] = 127 * d;
    uint8_t block[34];
    QuantizeQ8_0Block(x, block);
    float amax = 0;
    for (const float v : x) amax = std::max(amax, std::fabs(v));
    const float step = amax / 127;
    EXPECT_EQ(Half(block), kernels::HalfToFloat(kernels::FloatToHalf(step)));
    for (int i = 0; i < 32; ++i) {
      ASSERT_EQ(static_cast<int8_t>(block[2 + i]), std::lround(x[i] * (1.0F / step)))
          << "trial " << trial << " value " << x[i];
    }
  }
}

TEST(GgufBlocksTest, EveryPackingReadsAsQ8_0) {
  std::mt19937 rng(9);
  GgufWriter w;
  for (const Packing packing : kAll) {
    w.AddRawTensor(Name(packing), InfoOf(packing).ggml_type, {256, 3},
                   RandomBlocks(packing, 768, rng));
  }
  w.AddRawTensor("iq2_xxs", 16, {256}, std::vector<uint8_t>(66));
  const std::vector<uint8_t> bytes = w.Build();
  auto file = GgufFile::Parse(bytes, "mem.gguf");
  ASSERT_TRUE(file.ok()) << file.status();
  const std::vector<GgufTensorInfo>& t = (*file)->tensors();
  ASSERT_EQ(t.size(), std::size(kAll) + 1);
  for (size_t i = 0; i < std::size(kAll); ++i) {
    EXPECT_TRUE(t[i].supported) << t[i].name;
    EXPECT_EQ(t[i].dtype, kernels::DType::kQ8_0) << t[i].name;
    EXPECT_EQ(t[i].packing, kAll[i]) << t[i].name;
    EXPECT_EQ(t[i].bytes, static_cast<uint64_t>(PackedBytes(kAll[i], 768))) << t[i].name;
  }
  EXPECT_FALSE(t.back().supported);  // the grid i-quants (IQ1_S ... IQ3_S) are not read
  EXPECT_EQ(PackingNamed("q6_k"), Packing::kQ6_K);
  EXPECT_EQ(PackingNamed("q8_0"), std::nullopt);  // a dtype, not a packing
  EXPECT_EQ(PackingOfGgmlType(8), std::nullopt);
}

// Q4_0 and Q5_0 quantize as ggml's reference does: d = the block's largest magnitude / -8
// (or -16), rounded to f16, so that value is quant 0; every value lies within half a step of
// its quant, except those past the top quant (7 or 15 steps the other way), clamped to it.
TEST(GgufBlocksTest, Q4_0AndQ5_0PackWithinHalfAStep) {
  std::mt19937 rng(10);
  std::normal_distribution<float> normal(0.0F, 1.0F);
  for (const Packing packing : {Packing::kQ4_0, Packing::kQ5_0}) {
    const int64_t count = int64_t{32} * 64;
    std::vector<float> values(static_cast<size_t>(count));
    for (float& v : values) v = normal(rng);
    std::fill_n(values.begin() + 64, 32, 0.0F);  // an all-zero block
    std::vector<uint8_t> blocks(static_cast<size_t>(PackedBytes(packing, count)));
    Pack(packing, values.data(), count, blocks.data());
    const std::vector<float> back = Reference(packing, blocks, count);
    const float centre = packing == Packing::kQ4_0 ? 8.0F : 16.0F;
    for (int64_t b = 0; b < count / 32; ++b) {
      float extreme = 0;
      for (int i = 0; i < 32; ++i) {
        if (std::fabs(values[b * 32 + i]) > std::fabs(extreme)) extreme = values[b * 32 + i];
      }
      const float d = kernels::HalfToFloat(kernels::FloatToHalf(extreme / -centre));
      for (int i = 0; i < 32; ++i) {
        const size_t at = static_cast<size_t>(b * 32 + i);
        const bool top = d != 0.0F && std::round(back[at] / d) == centre - 1;
        // Half a step (a whole one when clamped), plus what rounding d to f16 moves the
        // farthest quant (16 steps).
        EXPECT_LE(std::fabs(back[at] - values[at]),
                  std::fabs(d) * ((top ? 1.0F : 0.5F) + 16 * 1e-3F) + 1e-7F)
            << "block " << b << " value " << i;
      }
    }
  }
}

// The other packers: within one step of the (sub-)block's own range, plus what quantizing
// the sub-block scales and mins against the super-block's can shift it.
struct Format {
  int sub_block;
  int levels;        // quant steps across the range
  int scale_levels;  // sub-block scale steps up to the largest (0: one f16 scale per block)
  bool asymmetric;
};

Format FormatOf(Packing packing) {
  switch (packing) {
    case Packing::kQ4_1:
      return {32, 15, 0, true};
    case Packing::kQ5_1:
      return {32, 31, 0, true};
    case Packing::kQ2_K:
      return {16, 3, 15, true};
    case Packing::kQ3_K:
      return {16, 4, 32, false};
    case Packing::kQ4_K:
      return {32, 15, 63, true};
    case Packing::kQ5_K:
      return {32, 31, 63, true};
    default:
      return {16, 32, 128, false};
  }
}

TEST(GgufBlocksTest, PackedValuesRoundTripWithinAStep) {
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0F, 1.0F);
  for (const Packing packing : {Packing::kQ4_1, Packing::kQ5_1, Packing::kQ2_K, Packing::kQ3_K,
                                Packing::kQ4_K, Packing::kQ5_K, Packing::kQ6_K}) {
    const Format f = FormatOf(packing);
    const int64_t count = int64_t{256} * 16;
    std::vector<float> values(static_cast<size_t>(count));
    for (float& v : values) v = normal(rng);
    std::fill_n(values.begin() + 256, 256, 0.0F);     // an all-zero block
    std::fill_n(values.begin() + 512, 16, 1e-3F);     // a sub-block far below the others
    for (int i = 768; i < 1024; ++i) values[i] += 3;  // all positive
    std::vector<uint8_t> blocks(static_cast<size_t>(PackedBytes(packing, count)));
    Pack(packing, values.data(), count, blocks.data());
    std::vector<float> back(static_cast<size_t>(count));
    Unpack(packing, blocks.data(), count, back.data());
    double squares = 0;
    double steps = 0;
    for (int64_t sb = 0; sb < count / 256; ++sb) {
      std::vector<float> step(256 / f.sub_block);
      std::vector<float> lift(256 / f.sub_block);  // the mins
      for (size_t j = 0; j < step.size(); ++j) {
        const float* v = values.data() + sb * 256 + j * f.sub_block;
        const auto [lo, hi] = std::minmax_element(v, v + f.sub_block);
        step[j] = f.asymmetric ? (std::max(*hi, 0.0F) - std::min(*lo, 0.0F)) / f.levels
                               : std::max(std::fabs(*lo), std::fabs(*hi)) / f.levels;
        lift[j] = -std::min(*lo, 0.0F);
      }
      const float top_step = *std::max_element(step.begin(), step.end());
      const float top_lift = *std::max_element(lift.begin(), lift.end());
      for (int64_t i = sb * 256; i < (sb + 1) * 256; ++i) {
        const size_t j = static_cast<size_t>((i % 256) / f.sub_block);
        // A step (half of one, or a whole one at a clamped end), what rounding the
        // sub-block's scale and min moves the ends of its range, and f16's rounding.
        float bound = step[j] + 1e-3F * (top_step * f.levels + top_lift) + 1e-6F;
        if (f.scale_levels > 0) {
          bound += (top_step * (f.levels + 1) + top_lift) / (2.0F * f.scale_levels);
        }
        const float error = std::fabs(back[i] - values[i]);
        ASSERT_LE(error, bound) << Name(packing) << " value " << i;
        squares += double{error} * error;
        steps += double{step[j]} * step[j];
      }
    }
    // Rounding to the nearest quant: a mean square error near step^2 / 12, far from the
    // step^2 a misplaced quant would give.
    EXPECT_LT(squares / steps, 0.2) << Name(packing);
  }
}

// IQ4_NL and IQ4_XS files the tools write: each value takes the level nearest it under its
// 32 values' stored scale (ties either way), and the scales fit the values, so the error
// stays a small part of them.
TEST(GgufBlocksTest, Iq4PacksEachValueToItsNearestLevel) {
  std::mt19937 rng(12);
  std::normal_distribution<float> normal(0.0F, 1.0F);
  for (const Packing packing : {Packing::kIQ4_NL, Packing::kIQ4_XS}) {
    const int64_t count = int64_t{256} * 16;
    std::vector<float> values(static_cast<size_t>(count));
    for (float& v : values) v = normal(rng);
    std::fill_n(values.begin() + 256, 256, 0.0F);  // all-zero blocks
    std::fill_n(values.begin() + 512, 32, 1e-3F);  // 32 values far below the others
    std::vector<uint8_t> blocks(static_cast<size_t>(PackedBytes(packing, count)));
    Pack(packing, values.data(), count, blocks.data());
    std::vector<float> back(static_cast<size_t>(count));
    Unpack(packing, blocks.data(), count, back.data());
    double squares = 0;
    double total = 0;
    for (int64_t i = 0; i < count; ++i) {
      const int values_per_block = BlockValues(packing);
      const float scale =
          Iq4Scale(packing, blocks.data() + i / values_per_block * BlockBytes(packing),
                   static_cast<int>(i % values_per_block / 32));
      float nearest = std::numeric_limits<float>::infinity();
      for (const int level : kIq4Levels) {
        nearest = std::min(nearest, std::fabs(values[i] - scale * static_cast<float>(level)));
      }
      ASSERT_LE(std::fabs(values[i] - back[i]), nearest * 1.0001F + 1e-7F)
          << Name(packing) << " value " << i;
      squares += double{values[i] - back[i]} * (values[i] - back[i]);
      total += double{values[i]} * values[i];
    }
    EXPECT_LT(squares / total, 0.02) << Name(packing);
    std::cout << Name(packing) << ": relative mean square error " << squares / total << "\n";
  }
}

}  // namespace
}  // namespace ringserve::model
