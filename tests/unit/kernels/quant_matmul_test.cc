// The CPU's products on quantized weights (kernels/cpu/quant_matmul.h) against a scalar model
// of the arithmetic that header defines, written here from the checkpoint's blocks (not the
// panels): bit for bit, alone and in batches, on any thread count, at shapes with partial
// panels and with k blocked; quantized x's special blocks (zero, tiny, infinite, NaN); and
// the distance to the exact product, which x's quantization bounds.
#include "kernels/cpu/quant_matmul.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/cpu_matmul.h"
#include "kernels/cpu/thread_pool.h"
#include "kernels/dtype.h"
#include "tests/unit/kernels/kernel_test_util.h"

namespace ringserve::kernels::testing {
namespace {

constexpr int kBlock = 32;

// One weight block's quants and parameters, read from the checkpoint's bytes: its scale d,
// the integer weight of each 16-value half's sum (kQ6's int8 scales, 1 for the others), and
// an affine type's offset.
struct WeightBlock {
  int q[kBlock];
  float d = 0;
  int s[2] = {1, 1};
  float m = 0;
};

WeightBlock ReadBlock(DType dtype, const uint8_t* block) {
  WeightBlock out;
  if (dtype == DType::kQ8_0) {
    uint16_t half = 0;
    std::memcpy(&half, block, 2);
    out.d = HalfToFloat(half);
    for (int i = 0; i < kBlock; ++i) {
      out.q[i] = block[2 + i] < 128 ? block[2 + i] : block[2 + i] - 256;  // int8
    }
  } else if (dtype == DType::kIQ4) {
    std::memcpy(&out.d, block, 4);
    for (int i = 0; i < kBlock; ++i) out.q[i] = kIq4Levels[Q4AffineQuant(block + 4, i)];
  } else if (dtype == DType::kQ6) {
    // s0 and s1 are int8, d the f16 after them.
    uint16_t half = 0;
    std::memcpy(&half, block + 2, 2);
    out.d = HalfToFloat(half);
    for (int h = 0; h < 2; ++h) out.s[h] = static_cast<int8_t>(block[h]);
    for (int i = 0; i < kBlock; ++i) {
      const int low = i < 16 ? block[4 + i] & 0x0F : block[4 + i - 16] >> 4;
      out.q[i] = (low | ((block[20 + i / 4] >> (2 * (i % 4))) & 3) << 4) - 32;
    }
  } else {
    std::memcpy(&out.d, block, 4);
    std::memcpy(&out.m, block + 4, 4);
    for (int i = 0; i < kBlock; ++i) out.q[i] = AffineQuant(dtype, block, i);
  }
  return out;
}

// x's 32-value block, quantized as the header says.
struct ActivationBlock {
  int q[kBlock] = {};
  float scale = 0;
  int sum = 0;
};

ActivationBlock Quantize(const float* x) {
  ActivationBlock out;
  float largest = 0;
  bool finite = true;
  for (int i = 0; i < kBlock; ++i) {
    const float a = std::fabs(x[i]);
    finite = finite && a < std::numeric_limits<float>::infinity();
    largest = std::max(largest, a);
  }
  if (!finite) {
    out.scale = std::numeric_limits<float>::quiet_NaN();
    return out;
  }
  if (!(largest >= 1e-30F)) return out;
  const float inverse = 127.0F / largest;
  for (int i = 0; i < kBlock; ++i) {
    out.q[i] = static_cast<int>(std::nearbyint(x[i] * inverse));
    out.sum += out.q[i];
  }
  out.scale = largest / 127.0F;
  return out;
}

// y = x W^T by the header's arithmetic, from the blocks as the checkpoint stores them.
std::vector<float> ModelProduct(DType dtype, const std::vector<uint8_t>& w, int64_t m, int64_t k,
                                const std::vector<float>& x, int64_t n) {
  const int64_t blocks = k / kBlock;
  const size_t block_bytes = DTypeBytes(dtype, kBlock);
  std::vector<WeightBlock> weight_blocks(static_cast<size_t>(m * blocks));
  for (size_t b = 0; b < weight_blocks.size(); ++b) {
    weight_blocks[b] = ReadBlock(dtype, &w[b * block_bytes]);
  }
  std::vector<float> y(static_cast<size_t>(n * m));
  for (int64_t i = 0; i < n; ++i) {
    std::vector<ActivationBlock> xq(static_cast<size_t>(blocks));
    for (int64_t b = 0; b < blocks; ++b) xq[b] = Quantize(&x[i * k + b * kBlock]);
    for (int64_t j = 0; j < m; ++j) {
      float acc = 0;
      for (int64_t b = 0; b < blocks; ++b) {
        const WeightBlock& wb = weight_blocks[static_cast<size_t>(j * blocks + b)];
        int dot = 0;
        for (int c = 0; c < kBlock; ++c) dot += wb.s[c / 16] * wb.q[c] * xq[b].q[c];
        const float t = !IsAffineDType(dtype) ? wb.d * static_cast<float>(dot)
                                              : std::fma(wb.m, static_cast<float>(xq[b].sum),
                                                         wb.d * static_cast<float>(dot));
        acc = std::fma(t, xq[b].scale, acc);
      }
      y[i * m + j] = acc;
    }
  }
  return y;
}

// Every quantized dtype the products take.
const std::vector<DType> kQuantDTypes(std::begin(kBlockDTypes), std::end(kBlockDTypes));

// Random blocks: Q8_0 quants over the whole int8 range (-128 included, which no quantizer
// writes but a file may hold); affine scales and offsets that make fma(q, d, m) round, and
// quants over the whole 4- or 5-bit range; kIQ4 indices of every level; kQ6 quants over the
// whole 6-bit range under int8 scales of either sign (-128 included) and an f16 scale.
std::vector<uint8_t> RandomBlocks(DType dtype, int64_t count, std::mt19937_64& rng) {
  std::vector<uint8_t> blocks(DTypeBytes(dtype, static_cast<size_t>(count)));
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> scale(1e-4F, 3e-2F);
  std::uniform_real_distribution<float> offset(-0.2F, 0.05F);
  const size_t block_bytes = DTypeBytes(dtype, kBlock);
  for (size_t b = 0; b < blocks.size(); b += block_bytes) {
    for (size_t i = 0; i < block_bytes; ++i) blocks[b + i] = static_cast<uint8_t>(byte(rng));
    if (dtype == DType::kQ8_0 || dtype == DType::kQ6) {
      const uint16_t d = FloatToHalf(scale(rng) / (dtype == DType::kQ6 ? 32 : 1));
      std::memcpy(&blocks[b + (dtype == DType::kQ6 ? 2 : 0)], &d, 2);
    } else {
      const float d = scale(rng);
      const float m = offset(rng);
      std::memcpy(&blocks[b], &d, 4);
      if (dtype != DType::kIQ4) std::memcpy(&blocks[b + 4], &m, 4);
    }
  }
  return blocks;
}

// A weight packed panel by panel, as the backend packs it, into memory that starts dirty.
struct Packed {
  cpu::PanelLayout layout;
  std::vector<uint8_t> quants;
  std::vector<float> params;
};

Packed Pack(DType dtype, const std::vector<uint8_t>& blocks, int64_t m, int64_t k) {
  const cpu::PanelType type = cpu::PanelTypeOf(dtype);
  Packed out{{false, m, k}, {}, {}};
  out.quants.assign(static_cast<size_t>(cpu::QuantBytes(type, m, k)), 0xA5);
  const cpu::PanelLayout params = cpu::BlockParamLayout(type, out.layout);
  out.params.assign(static_cast<size_t>(params.rows * params.cols), -7.0F);
  for (int64_t p = 0; p < out.layout.num_panels(); ++p) {
    const int64_t r0 = p * cpu::kPanelWidth;
    cpu::PackBlockRows(out.layout, type,
                       blocks.data() + DTypeBytes(dtype, static_cast<size_t>(r0 * k)), r0,
                       out.layout.width(p), out.quants.data(), out.params.data());
  }
  return out;
}

// A random [m, k] weight's blocks, and the same packed.
std::pair<std::vector<uint8_t>, Packed> RandomWeight(DType dtype, int64_t m, int64_t k,
                                                     std::mt19937_64& rng) {
  std::vector<uint8_t> blocks = RandomBlocks(dtype, m * k, rng);
  Packed packed = Pack(dtype, blocks, m, k);
  return {std::move(blocks), std::move(packed)};
}

// Rows [first, first + rows) of x through cpu::MatMul on `isa`, x and y each with rows wider
// than their values (the strides the kernels must honour), y's margin filled in advance and
// checked untouched.
std::vector<float> Product(cpu::ThreadPool& pool, DType dtype, const Packed& w,
                           const std::vector<float>& x, int64_t first, int64_t rows,
                           cpu::Isa isa = cpu::BestIsa()) {
  constexpr int64_t kPad = 3;
  constexpr float kMargin = 5.0F;
  const int64_t m = w.layout.rows;
  const int64_t k = w.layout.cols;
  std::vector<float> x_wide(static_cast<size_t>(rows * (k + kPad)), -9.0F);
  for (int64_t i = 0; i < rows; ++i) {
    std::copy_n(&x[(first + i) * k], k, &x_wide[i * (k + kPad)]);
  }
  std::vector<float> y_wide(static_cast<size_t>(rows * (m + kPad)), kMargin);
  cpu::MatMul(pool,
              {x_wide.data(), k + kPad, rows, w.quants.data(), w.layout, y_wide.data(), m + kPad,
               cpu::PanelTypeOf(dtype), w.params.data()},
              isa);
  std::vector<float> y(static_cast<size_t>(rows * m));
  for (int64_t i = 0; i < rows; ++i) {
    std::copy_n(&y_wide[i * (m + kPad)], m, &y[i * m]);
    for (int64_t j = m; j < m + kPad; ++j) {
      EXPECT_EQ(y_wide[i * (m + kPad) + j], kMargin) << "wrote past row " << i;
    }
  }
  return y;
}

struct Shape {
  int64_t m, k;
};

class QuantMatMulTest : public ::testing::TestWithParam<std::tuple<Shape, DType>> {};

TEST_P(QuantMatMulTest, GivesTheBitsOfTheArithmeticAloneAndInEveryBatch) {
  const auto [shape, dtype] = GetParam();
  const auto [m, k] = shape;
  constexpr int64_t kRows = 40;
  std::mt19937_64 rng(static_cast<uint64_t>(m * 31 + k));
  const auto [blocks, w] = RandomWeight(dtype, m, k, rng);
  std::vector<float> values(static_cast<size_t>(m * k));
  ConvertToFloat(dtype, blocks.data(), values.size(), values.data());
  std::vector<float> row(static_cast<size_t>(k));
  for (const int64_t r : {int64_t{0}, int64_t{9}, m / 2, m - 1}) {
    if (r >= m) continue;
    cpu::UnpackRow(w.layout, cpu::PanelTypeOf(dtype), w.quants.data(), r, row.data(),
                   w.params.data());
    EXPECT_EQ(std::memcmp(row.data(), values.data() + r * k, row.size() * sizeof(float)), 0)
        << "row " << r << " unpacked";
  }

  const std::vector<float> x = RandomFloats(rng, kRows * k);
  const std::vector<float> want = ModelProduct(dtype, blocks, m, k, x, kRows);
  cpu::ThreadPool one(1);
  cpu::ThreadPool two(2);
  cpu::ThreadPool three(3);
  for (const auto& [first, size] : std::vector<std::pair<int64_t, int64_t>>{{0, kRows},
                                                                            {0, 1},
                                                                            {7, 1},
                                                                            {3, 2},
                                                                            {3, 3},
                                                                            {3, 4},
                                                                            {3, 5},
                                                                            {5, 6},
                                                                            {2, 7},
                                                                            {9, 16},
                                                                            {1, 33}}) {
    for (cpu::ThreadPool* pool : {&one, &two, &three}) {
      for (const cpu::Isa isa : SupportedIsas()) {
        const std::vector<float> got = Product(*pool, dtype, w, x, first, size, isa);
        EXPECT_EQ(std::memcmp(got.data(), want.data() + first * m, got.size() * sizeof(float)), 0)
            << size << " rows at " << first << " on " << pool->num_threads() << " threads, "
            << cpu::IsaName(isa);
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, QuantMatMulTest,
                         ::testing::Combine(::testing::Values(Shape{768, 768}, Shape{100, 608},
                                                              Shape{37, 1024}, Shape{1001, 96},
                                                              Shape{5, 1120}, Shape{24, 2048},
                                                              Shape{16, 32}),
                                            ::testing::ValuesIn(kQuantDTypes)),
                         [](const auto& info) {
                           const Shape& shape = std::get<0>(info.param);
                           return std::to_string(shape.m) + "x" + std::to_string(shape.k) + "_" +
                                  std::string(DTypeName(std::get<1>(info.param)));
                         });

// A batch of more rows than one slab (MatMulQuantized quantizes and multiplies 1024 rows at a
// time): every row keeps the bits of the arithmetic, the slab edges included. The full slabs
// are too big to stream (quant_matmul_panels.inc) and block k, with a partial last k block;
// the last slab streams.
TEST(QuantMatMulSlabsTest, RowsPastASlabKeepTheirBits) {
  constexpr int64_t kM = 40;
  constexpr int64_t kK = 288;
  constexpr int64_t kRows = 2100;
  for (const DType dtype : kQuantDTypes) {
    std::mt19937_64 rng(2100);
    const auto [blocks, w] = RandomWeight(dtype, kM, kK, rng);
    const std::vector<float> x = RandomFloats(rng, kRows * kK);
    const std::vector<float> want = ModelProduct(dtype, blocks, kM, kK, x, kRows);
    cpu::ThreadPool two(2);
    for (const cpu::Isa isa : SupportedIsas()) {
      const std::vector<float> got = Product(two, dtype, w, x, 0, kRows, isa);
      for (int64_t i = 0; i < kRows; ++i) {
        ASSERT_EQ(std::memcmp(&got[i * kM], &want[i * kM], kM * sizeof(float)), 0)
            << DTypeName(dtype) << " row " << i << ", " << cpu::IsaName(isa);
      }
    }
  }
}

// A batch whose quantized x is over kQuantStreamXBytes blocks k: more than one 32-panel
// group, several full k blocks and a partial one, row tiles of every height, and thread
// shares that split a group. Every row keeps the bits of the arithmetic on every ISA, and
// so do the first rows alone, which stream.
TEST(QuantMatMulKBlockedTest, RowsOfABigBatchKeepTheirBits) {
  constexpr int64_t kM = 600;  // 38 panels
  constexpr int64_t kK = 800;  // 3 blocks of 256 and 32 more
  constexpr int64_t kRows = 399;
  constexpr int64_t kStreamedRows = 300;
  static_assert(kRows * kK > cpu::kQuantStreamXBytes &&
                kStreamedRows * kK <= cpu::kQuantStreamXBytes);
  cpu::ThreadPool one(1);
  cpu::ThreadPool three(3);
  for (const DType dtype : kQuantDTypes) {
    std::mt19937_64 rng(399);
    const auto [blocks, w] = RandomWeight(dtype, kM, kK, rng);
    const std::vector<float> x = RandomFloats(rng, kRows * kK);
    const std::vector<float> want = ModelProduct(dtype, blocks, kM, kK, x, kRows);
    for (const cpu::Isa isa : SupportedIsas()) {
      for (cpu::ThreadPool* pool : {&one, &three}) {
        for (const int64_t rows : {kRows, kStreamedRows}) {
          const std::vector<float> got = Product(*pool, dtype, w, x, 0, rows, isa);
          EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0)
              << DTypeName(dtype) << ", " << rows << " rows on " << pool->num_threads()
              << " threads, " << cpu::IsaName(isa);
        }
      }
    }
  }
}

// Blocks of x that are all zero or too small to scale contribute nothing; one holding an
// infinity or a NaN makes the outputs it reaches NaN (as an f32 product would make them
// non-finite) and leaves the other rows alone.
TEST(QuantMatMulSpecialBlocksTest, ZeroTinyAndNonFiniteBlocks) {
  const int64_t m = 20;
  const int64_t k = 128;
  for (const DType dtype : kQuantDTypes) {
    std::mt19937_64 rng(3);
    const auto [blocks, w] = RandomWeight(dtype, m, k, rng);
    std::vector<float> x = RandomFloats(rng, 6 * k);
    std::fill_n(&x[0 * k + 32], 32, 0.0F);    // row 0: a zero block
    std::fill_n(&x[1 * k + 64], 32, 1e-35F);  // row 1: a tiny block
    x[2 * k + 5] = std::numeric_limits<float>::infinity();
    x[3 * k + 100] = -std::numeric_limits<float>::infinity();
    x[4 * k + 127] = std::numeric_limits<float>::quiet_NaN();
    cpu::ThreadPool two(2);
    const std::vector<float> want = ModelProduct(dtype, blocks, m, k, x, 6);
    for (const cpu::Isa isa : SupportedIsas()) {
      const std::vector<float> got = Product(two, dtype, w, x, 0, 6, isa);
      for (int64_t i = 0; i < 6; ++i) {
        for (int64_t j = 0; j < m; ++j) {
          const float g = got[i * m + j];
          if (i >= 2 && i <= 4) {
            EXPECT_TRUE(std::isnan(g)) << DTypeName(dtype) << " row " << i << " col " << j << ", "
                                       << cpu::IsaName(isa) << ": " << g;
          } else {
            EXPECT_EQ(g, want[i * m + j])
                << DTypeName(dtype) << " row " << i << " col " << j << ", " << cpu::IsaName(isa);
            EXPECT_TRUE(std::isfinite(g));
          }
        }
      }
      // Dropping the zero and tiny blocks changes nothing.
      std::vector<float> without = x;
      std::fill_n(&without[1 * k + 64], 32, 0.0F);
      const std::vector<float> again = Product(two, dtype, w, without, 0, 2, isa);
      EXPECT_EQ(std::memcmp(again.data(), got.data(), again.size() * sizeof(float)), 0);
    }
  }
}

// The integer sums at their extremes: every quant at the end of its range against every
// activation at +-127 (a block of equal magnitudes), where a wider int16 accumulation, a
// lost sign or a wrong lift (VNNI multiplies Q8_0 quants + 128) would saturate or wrap.
TEST(QuantMatMulSpecialBlocksTest, ExtremeQuantsAndActivations) {
  const int64_t m = 16;
  const int64_t k = 64;
  cpu::ThreadPool two(2);
  for (const DType dtype : kQuantDTypes) {
    std::vector<int> extremes = {-128, 127, -127};
    if (dtype == DType::kQ5Affine) extremes = {31, 0};
    if (dtype == DType::kQ4Affine || dtype == DType::kIQ4) extremes = {15, 0};
    if (dtype == DType::kQ6) extremes = {63, 0};  // 31 and -32
    for (const int quant : extremes) {
      std::mt19937_64 rng(5);
      std::vector<uint8_t> blocks = RandomBlocks(dtype, m * k, rng);
      const size_t block_bytes = DTypeBytes(dtype, kBlock);
      for (size_t b = 0; b < blocks.size(); b += block_bytes) {
        if (dtype == DType::kQ8_0) {
          std::fill_n(&blocks[b + 2], kBlock, static_cast<uint8_t>(quant & 0xFF));
        } else if (dtype == DType::kIQ4) {  // indices 15 and 0: levels 113 and -127
          std::fill_n(&blocks[b + 4], kBlock / 2, static_cast<uint8_t>(quant | quant << 4));
        } else if (dtype == DType::kQ6) {
          const uint8_t fill = quant == 0 ? 0 : 0xFF;
          std::fill_n(&blocks[b + 4], 24, fill);
        } else {
          const int low = quant & 0x0F;
          std::fill_n(&blocks[b + 8], kBlock / 2, static_cast<uint8_t>(low | low << 4));
          if (dtype == DType::kQ5Affine) {
            std::fill_n(&blocks[b + 24], 4, static_cast<uint8_t>(quant > 0x0F ? 0xFF : 0));
          }
        }
      }
      const Packed w = Pack(dtype, blocks, m, k);
      for (const float sign : {1.0F, -1.0F}) {
        const std::vector<float> x(static_cast<size_t>(2 * k), sign * 0.75F);
        const std::vector<float> want = ModelProduct(dtype, blocks, m, k, x, 2);
        for (const cpu::Isa isa : SupportedIsas()) {
          const std::vector<float> got = Product(two, dtype, w, x, 0, 2, isa);
          EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0)
              << DTypeName(dtype) << " quants " << quant << " against x " << sign * 0.75F << ", "
              << cpu::IsaName(isa);
        }
      }
    }
  }
}

// Each calling thread quantizes x into a buffer of its own, which the pool's threads read:
// products called from another thread give the same bits, before and after this one's.
TEST(QuantMatMulThreadsTest, CallersOnOtherThreadsGetTheSameBits) {
  const int64_t m = 48;
  const int64_t k = 256;
  std::mt19937_64 rng(21);
  const Packed w = RandomWeight(DType::kQ4Affine, m, k, rng).second;
  const std::vector<float> x = RandomFloats(rng, 9 * k);
  cpu::ThreadPool two(2);
  const std::vector<float> here = Product(two, DType::kQ4Affine, w, x, 0, 9);
  std::vector<float> there;
  std::thread caller([&] { there = Product(two, DType::kQ4Affine, w, x, 0, 9); });
  caller.join();
  const std::vector<float> again = Product(two, DType::kQ4Affine, w, x, 0, 1);
  ASSERT_EQ(there.size(), here.size());
  EXPECT_EQ(std::memcmp(there.data(), here.data(), here.size() * sizeof(float)), 0);
  EXPECT_EQ(std::memcmp(again.data(), here.data(), again.size() * sizeof(float)), 0);
}

// Against the exact product of the weights' values, each output is off by at most x's
// quantization error: half a block's scale per value, times that block's |w|.
TEST(QuantMatMulErrorTest, WithinTheQuantizationBoundOfTheExactProduct) {
  const int64_t m = 64;
  const int64_t k = 512;
  const int64_t n = 8;
  for (const DType dtype : kQuantDTypes) {
    std::mt19937_64 rng(11);
    const auto [blocks, w] = RandomWeight(dtype, m, k, rng);
    std::vector<float> values(static_cast<size_t>(m * k));
    ConvertToFloat(dtype, blocks.data(), values.size(), values.data());
    const std::vector<float> x = RandomFloats(rng, n * k, -3, 3);
    cpu::ThreadPool two(2);
    const std::vector<float> got = Product(two, dtype, w, x, 0, n);
    std::vector<double> exact;
    std::vector<double> unused;
    ReferenceMatMul(x, values, n, m, k, &exact, &unused);
    const std::vector<double> bound = ActivationQuantizationBound(x, values, n, m, k);
    double worst = 0;  // the largest error as a fraction of its bound
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j < m; ++j) {
        // Of the terms the f32 steps add (q d and m apart), for their rounding.
        double magnitude = 0;
        for (int64_t b = 0; b < k / kBlock; ++b) {
          const WeightBlock wb =
              ReadBlock(dtype, &blocks[(j * (k / kBlock) + b) * DTypeBytes(dtype, kBlock)]);
          for (int64_t c = b * kBlock; c < (b + 1) * kBlock; ++c) {
            magnitude += std::fabs(double{x[i * k + c]}) *
                         (std::fabs(double{wb.d} * wb.s[c % kBlock / 16] * wb.q[c % kBlock]) +
                          std::fabs(double{wb.m}));
          }
        }
        const size_t at = static_cast<size_t>(i * m + j);
        const double error = std::fabs(got[at] - exact[at]);
        ASSERT_LE(error, bound[at] + 1e-6 * magnitude) << DTypeName(dtype) << " " << i << "," << j;
        worst = std::max(worst, error / bound[at]);
      }
    }
    // The bound is not vacuous: errors reach a good part of it.
    EXPECT_GT(worst, 0.05) << DTypeName(dtype);
  }
}

}  // namespace
}  // namespace ringserve::kernels::testing
