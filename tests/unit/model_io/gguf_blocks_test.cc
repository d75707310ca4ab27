// Q4_0 and Q5_0 GGUF tensors: read as supported, served as Q8_0 blocks holding exactly the
// values ggml's block layout defines (d * (q - 8), d * (q - 16)), checked here against a
// reference written from that definition.
#include "worker/model/gguf_blocks.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/dtype.h"
#include "worker/model/gguf_reader.h"
#include "worker/model/gguf_writer.h"

namespace ringserve::model {
namespace {

// Random blocks of `packing`: every quant value appears, scales of both signs.
std::vector<uint8_t> RandomBlocks(Packing packing, int64_t count, std::mt19937& rng) {
  const int64_t bytes = PackedBytes(packing, count);
  std::vector<uint8_t> out(static_cast<size_t>(bytes));
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> scale(-0.1F, 0.1F);
  const int block = BlockBytes(packing);
  for (int64_t b = 0; b < count / 32; ++b) {
    uint8_t* p = out.data() + b * block;
    const uint16_t d = kernels::FloatToHalf(scale(rng));
    std::memcpy(p, &d, 2);
    for (int i = 2; i < block; ++i) p[i] = static_cast<uint8_t>(byte(rng));
  }
  return out;
}

// ggml's definition: value j < 16 from the low nibble of byte j, value j + 16 from its high
// nibble; Q5_0's fifth bit of value i is bit i of the little-endian 32-bit qh.
std::vector<float> Reference(Packing packing, const std::vector<uint8_t>& blocks, int64_t count) {
  std::vector<float> out(static_cast<size_t>(count));
  const int block = BlockBytes(packing);
  for (int64_t b = 0; b < count / 32; ++b) {
    const uint8_t* p = blocks.data() + b * block;
    uint16_t d_bits = 0;
    std::memcpy(&d_bits, p, 2);
    const float d = kernels::HalfToFloat(d_bits);
    uint32_t qh = 0;
    if (packing == Packing::kQ5_0) std::memcpy(&qh, p + 2, 4);
    const uint8_t* qs = p + (packing == Packing::kQ4_0 ? 2 : 6);
    for (int j = 0; j < 16; ++j) {
      int lo = qs[j] & 0x0F;
      int hi = qs[j] >> 4;
      if (packing == Packing::kQ5_0) {
        lo = (lo | static_cast<int>((qh >> j) & 1U) << 4) - 16;
        hi = (hi | static_cast<int>((qh >> (j + 16)) & 1U) << 4) - 16;
      } else {
        lo -= 8;
        hi -= 8;
      }
      out[b * 32 + j] = static_cast<float>(lo) * d;
      out[b * 32 + j + 16] = static_cast<float>(hi) * d;
    }
  }
  return out;
}

TEST(GgufBlocksTest, WideningToQ8_0KeepsEveryValue) {
  std::mt19937 rng(8);
  for (const Packing packing : {Packing::kQ4_0, Packing::kQ5_0}) {
    const int64_t count = int64_t{32} * 257;
    const std::vector<uint8_t> blocks = RandomBlocks(packing, count, rng);
    std::vector<uint8_t> q8(kernels::DTypeBytes(kernels::DType::kQ8_0, count));
    WidenToQ8_0(packing, blocks.data(), count, q8.data());
    std::vector<float> got(static_cast<size_t>(count));
    kernels::ConvertToFloat(kernels::DType::kQ8_0, q8.data(), count, got.data());
    const std::vector<float> want = Reference(packing, blocks, count);
    for (int64_t i = 0; i < count; ++i) {
      ASSERT_EQ(got[i], want[i]) << "value " << i
                                 << (packing == Packing::kQ4_0 ? " q4_0" : " q5_0");
    }
  }
}

TEST(GgufBlocksTest, Q4_0AndQ5_0TensorsReadAsQ8_0) {
  std::mt19937 rng(9);
  GgufWriter w;
  w.AddRawTensor("a", kGgmlTypeQ4_0, {64, 3}, RandomBlocks(Packing::kQ4_0, 192, rng));
  w.AddRawTensor("b", kGgmlTypeQ5_0, {64, 3}, RandomBlocks(Packing::kQ5_0, 192, rng));
  w.AddRawTensor("c", 3 /* Q4_1 */, {32}, std::vector<uint8_t>(20));
  const std::vector<uint8_t> bytes = w.Build();
  auto file = GgufFile::Parse(bytes, "mem.gguf");
  ASSERT_TRUE(file.ok()) << file.status();
  const std::vector<GgufTensorInfo>& t = (*file)->tensors();
  ASSERT_EQ(t.size(), 3U);
  for (int i : {0, 1}) {
    EXPECT_TRUE(t[i].supported) << t[i].name;
    EXPECT_EQ(t[i].dtype, kernels::DType::kQ8_0) << t[i].name;
    EXPECT_EQ(t[i].packing, i == 0 ? Packing::kQ4_0 : Packing::kQ5_0);
    EXPECT_EQ(t[i].bytes, static_cast<uint64_t>(PackedBytes(t[i].packing, 192)));
  }
  EXPECT_FALSE(t[2].supported);  // Q4_1's offset has no Q8_0 form
}

// Pack quantizes as ggml's reference does: d = the block's largest magnitude / -8 (or -16),
// rounded to f16, so that value is quant 0; every value lies within half a step of its
// quant, except those past the top quant (7 or 15 steps the other way), clamped to it.
TEST(GgufBlocksTest, PackedValuesAreWithinHalfAStep) {
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

}  // namespace
}  // namespace ringserve::model
