// MatMul batch invariance at the model's real shapes, bit for bit: a row of x must give the
// same output row alone, inside any decode-sized batch (1..64 rows) at any offset, inside a
// prefill-sized batch, on any thread count, and whether the product streams W or blocks k. The
// generator's guarantee that a sequence's tokens do not depend on its batch-mates rests on
// this; batch_invariance_test.cc checks the same through the Backend on one small shape.
#include <cstdint>
#include <cstring>
#include <ostream>
#include <random>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/cpu_isa.h"
#include "kernels/cpu/cpu_matmul.h"
#include "kernels/cpu/thread_pool.h"
#include "kernels/dtype.h"
#include "tests/unit/kernels/kernel_test_util.h"

namespace ringserve::kernels::testing {
namespace {

struct Shape {
  int64_t m, k;  // W [m, k]
};

void PrintTo(const Shape& shape, std::ostream* os) { *os << shape.m << "x" << shape.k; }

// Rows [first, first + rows) of x through cpu::MatMul on `pool`, y rows m apart.
std::vector<float> Product(cpu::ThreadPool& pool, const cpu::PanelLayout& layout,
                           const std::vector<float>& w, const std::vector<float>& x, int64_t first,
                           int64_t rows) {
  const int64_t m = layout.rows, k = layout.cols;
  std::vector<float> y(static_cast<size_t>(rows * m));
  cpu::MatMul(pool, {x.data() + first * k, k, rows, w.data(), layout, y.data(), m});
  return y;
}

bool SameRows(const std::vector<float>& got, const std::vector<float>& all, int64_t first,
              int64_t m) {
  return std::memcmp(got.data(), all.data() + first * m, got.size() * sizeof(float)) == 0;
}

class MatMulInvarianceTest : public ::testing::TestWithParam<Shape> {};

TEST_P(MatMulInvarianceTest, RowsMatchAloneInEveryBatchAndOnEveryThreadCount) {
  const auto [m, k] = GetParam();
  constexpr int64_t kPrefillRows = 160;  // not a multiple of any row tile
  std::mt19937_64 rng(static_cast<uint64_t>(m * 7919 + k));
  const std::vector<float> w_rows = RandomFloats(rng, m * k),
                           x = RandomFloats(rng, kPrefillRows * k);
  const cpu::PanelLayout layout{false, m, k};
  std::vector<float> w(w_rows.size());
  cpu::PackRows(layout, w_rows.data(), 0, m, w.data());
  cpu::ThreadPool one(1), two(2), three(3);
  const std::vector<float> all = Product(two, layout, w, x, 0, kPrefillRows);

  for (const int64_t row : {int64_t{0}, int64_t{1}, int64_t{47}, int64_t{83}, kPrefillRows - 1}) {
    EXPECT_TRUE(SameRows(Product(two, layout, w, x, row, 1), all, row, m)) << "row " << row;
  }
  std::uniform_int_distribution<int64_t> offset(0, kPrefillRows - 64);
  for (const int64_t size :
       {2, 3, 4, 5, 6, 7, 8, 9, 11, 13, 14, 16, 17, 24, 31, 32, 33, 40, 47, 48, 49, 63, 64}) {
    for (const int64_t first : {int64_t{0}, offset(rng), kPrefillRows - size}) {
      EXPECT_TRUE(SameRows(Product(two, layout, w, x, first, size), all, first, m))
          << "batch of " << size << " at " << first;
    }
  }
  for (cpu::ThreadPool* pool : {&one, &three}) {
    for (const auto& [first, size] :
         std::vector<std::pair<int64_t, int64_t>>{{0, kPrefillRows}, {5, 1}, {9, 16}, {30, 32}}) {
      EXPECT_TRUE(SameRows(Product(*pool, layout, w, x, first, size), all, first, m))
          << size << " rows at " << first << " on " << pool->num_threads() << " threads";
    }
  }
}

// A product whose x exceeds what the AVX-512 path streams (32 MiB) takes the k-blocked path;
// its rows must match the streamed products of the same rows.
TEST(MatMulInvarianceTest, KBlockedRowsMatchStreamedRows) {
  const int64_t m = 100, k = 2100, n = 4100;  // x is 34 MB; k is not a multiple of 512
  std::mt19937_64 rng(5);
  const std::vector<float> w_rows = RandomFloats(rng, m * k), x = RandomFloats(rng, n * k);
  const cpu::PanelLayout layout{false, m, k};
  std::vector<float> w(w_rows.size());
  cpu::PackRows(layout, w_rows.data(), 0, m, w.data());
  cpu::ThreadPool two(2);
  const std::vector<float> all = Product(two, layout, w, x, 0, n);
  for (const auto& [first, size] : std::vector<std::pair<int64_t, int64_t>>{
           {0, 1}, {n - 1, 1}, {1234, 16}, {77, 160}, {n - 600, 600}}) {
    EXPECT_TRUE(SameRows(Product(two, layout, w, x, first, size), all, first, m))
        << size << " rows at " << first;
  }
}

// Panels kept in a checkpoint's bf16 or f16 give the bits of f32 panels holding the same
// values, on every ISA, alone and in batches, on any thread count: the half type changes
// the bytes read, never the products.
class HalfPanelTest : public ::testing::TestWithParam<std::tuple<Shape, cpu::PanelType>> {};

TEST_P(HalfPanelTest, GiveTheBitsOfF32PanelsWithTheSameValues) {
  const auto [shape, type] = GetParam();
  const auto [m, k] = shape;
  constexpr int64_t kRows = 40;
  std::mt19937_64 rng(static_cast<uint64_t>(m * 31 + k));
  std::vector<float> w_rows = RandomFloats(rng, m * k);
  for (float& v : w_rows) {  // values the half type holds exactly
    v = type == cpu::PanelType::kBF16 ? BFloat16ToFloat(FloatToBFloat16(v))
                                      : HalfToFloat(FloatToHalf(v));
  }
  const std::vector<float> x = RandomFloats(rng, kRows * k);
  const cpu::PanelLayout layout{false, m, k};
  std::vector<float> w32(static_cast<size_t>(m * k));
  cpu::PackRows(layout, w_rows.data(), 0, m, w32.data());
  std::vector<uint16_t> w16(static_cast<size_t>(m * k));
  cpu::PackRows(layout, type, w_rows.data(), 0, m, w16.data());
  std::vector<float> row(static_cast<size_t>(k));
  for (const int64_t r : {int64_t{0}, m / 2, m - 1}) {
    cpu::UnpackRow(layout, type, w16.data(), r, row.data());
    EXPECT_EQ(std::memcmp(row.data(), w_rows.data() + r * k, row.size() * sizeof(float)), 0)
        << "row " << r << " unpacked";
  }
  cpu::ThreadPool one(1), two(2), three(3);
  for (const cpu::Isa isa : SupportedIsas()) {
    for (const auto& [first, size] : std::vector<std::pair<int64_t, int64_t>>{
             {0, kRows}, {0, 1}, {7, 1}, {3, 5}, {9, 16}, {1, 33}}) {
      for (cpu::ThreadPool* pool : {&one, &two, &three}) {
        std::vector<float> want(static_cast<size_t>(size * m)), got(want.size());
        cpu::MatMul(*pool, {x.data() + first * k, k, size, w32.data(), layout, want.data(), m},
                    isa);
        cpu::MatMul(*pool, {x.data() + first * k, k, size, w16.data(), layout, got.data(), m, type},
                    isa);
        EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0)
            << size << " rows at " << first << " on " << pool->num_threads() << " threads, "
            << cpu::IsaName(isa);
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, HalfPanelTest,
    ::testing::Combine(::testing::Values(Shape{768, 768}, Shape{2304, 768}, Shape{100, 600},
                                         Shape{37, 1000}, Shape{1001, 77}, Shape{5, 1100}),
                       ::testing::Values(cpu::PanelType::kBF16, cpu::PanelType::kF16)),
    [](const auto& info) {
      const Shape& shape = std::get<0>(info.param);
      return std::to_string(shape.m) + "x" + std::to_string(shape.k) +
             (std::get<1>(info.param) == cpu::PanelType::kBF16 ? "_bf16" : "_f16");
    });

// The same on the AVX-512 path's k-blocked tiles, which only an x over 32 MiB reaches.
TEST(HalfPanelKBlockedTest, GiveTheBitsOfF32PanelsWithTheSameValues) {
  const int64_t m = 20, k = 2100, n = 4100;
  std::mt19937_64 rng(6);
  const std::vector<float> x = RandomFloats(rng, n * k);
  const cpu::PanelLayout layout{false, m, k};
  cpu::ThreadPool two(2);
  for (const cpu::PanelType type : {cpu::PanelType::kBF16, cpu::PanelType::kF16}) {
    std::vector<float> w_rows = RandomFloats(rng, m * k);
    for (float& v : w_rows) {
      v = type == cpu::PanelType::kBF16 ? BFloat16ToFloat(FloatToBFloat16(v))
                                        : HalfToFloat(FloatToHalf(v));
    }
    std::vector<float> w32(static_cast<size_t>(m * k));
    cpu::PackRows(layout, w_rows.data(), 0, m, w32.data());
    std::vector<uint16_t> w16(static_cast<size_t>(m * k));
    cpu::PackRows(layout, type, w_rows.data(), 0, m, w16.data());
    for (const cpu::Isa isa : SupportedIsas()) {
      std::vector<float> want(static_cast<size_t>(n * m)), got(want.size());
      cpu::MatMul(two, {x.data(), k, n, w32.data(), layout, want.data(), m}, isa);
      cpu::MatMul(two, {x.data(), k, n, w16.data(), layout, got.data(), m, type}, isa);
      EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0)
          << (type == cpu::PanelType::kBF16 ? "bf16" : "f16") << " on " << cpu::IsaName(isa);
    }
  }
}

// The 110M model's products (QKV, wo, gate/up, down, output head) and awkward sizes:
// partial panels, k below a vector, k not a multiple of the prefill k block.
INSTANTIATE_TEST_SUITE_P(Shapes, MatMulInvarianceTest,
                         ::testing::Values(Shape{768, 768}, Shape{2304, 768}, Shape{2048, 768},
                                           Shape{768, 2048}, Shape{32000, 768}, Shape{100, 600},
                                           Shape{37, 1000}, Shape{1001, 77}, Shape{16, 1},
                                           Shape{5, 1100}),
                         [](const ::testing::TestParamInfo<Shape>& info) {
                           std::string name = std::to_string(info.param.m);
                           name += "x";
                           name += std::to_string(info.param.k);
                           return name;
                         });

}  // namespace
}  // namespace ringserve::kernels::testing
