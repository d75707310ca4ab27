// The random-weight generator is counter-based so the device can compute each element on
// its own; it must still give exactly the sequential splitmix64 stream that benchmark models
// have always been made of, and Backend::RandomWeight must stack its parts as documented.
#include "kernels/random_weights.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <span>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/backend.h"

namespace ringserve::kernels {
namespace {

// The sequential form: the state steps by the golden gamma before each element.
std::vector<float> SequentialStream(uint64_t state, float scale, int64_t count) {
  std::vector<float> out(count);
  for (float& v : out) {
    state += 0x9E3779B97F4A7C15ULL;
    uint64_t z = state;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    const float unit = static_cast<float>(z >> 40) * (1.0F / 16777216.0F);
    v = (2.0F * unit - 1.0F) * scale;
  }
  return out;
}

bool SameBits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(RandomWeightsTest, EveryElementIsTheSequentialStreamsValue) {
  for (const uint64_t state : {uint64_t{0}, uint64_t{42}, ~uint64_t{0} - 3}) {
    const float scale = 1.0F / std::sqrt(288.0F);
    const std::vector<float> want = SequentialStream(state, scale, 5000);
    std::vector<float> got(want.size());
    FillRandomUniform(state, scale, got.data(), static_cast<int64_t>(got.size()));
    EXPECT_TRUE(SameBits(got, want)) << "state " << state;
    EXPECT_EQ(RandomUniform(state, 4321, scale), want[4321]);
  }
}

TEST(RandomWeightsTest, ValuesSpanTheRangeAndStreamsDiffer) {
  std::vector<float> a(4096), b(4096);
  FillRandomUniform(1, 0.5F, a.data(), 4096);
  FillRandomUniform(2, 0.5F, b.data(), 4096);
  EXPECT_FALSE(SameBits(a, b));
  float lo = 1, hi = -1;
  for (const float v : a) {
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  EXPECT_GE(lo, -0.5F);
  EXPECT_LT(hi, 0.5F);
  EXPECT_LT(lo, -0.49F);
  EXPECT_GT(hi, 0.49F);
}

// The parts' sequential streams one after another: the stacked weight, row-major.
std::vector<float> SequentialParts(std::span<const RandomPart> parts, int64_t cols, float scale) {
  std::vector<float> values;
  for (const RandomPart& p : parts) {
    const std::vector<float> part = SequentialStream(p.state, scale, p.rows * cols);
    values.insert(values.end(), part.begin(), part.end());
  }
  return values;
}

// Every row of a weight read back through EmbeddingGather, row-major f32: what the weight
// holds, whatever the layout it is packed in.
std::vector<float> RowsOf(Backend& backend, const Weight& w) {
  std::vector<int32_t> ids(w.rows);
  std::iota(ids.begin(), ids.end(), 0);
  auto ids_device = backend.Allocate(ids.size() * sizeof(int32_t));
  auto out_device = backend.Allocate(ids.size() * w.cols * sizeof(float));
  if (!ids_device.ok() || !out_device.ok()) return {};
  backend.CopyToDevice(ids_device->data(), ids.data(), ids.size() * sizeof(int32_t));
  backend.EmbeddingGather(w, ids_device->as<const int32_t>(),
                          Tensor::Of(out_device->data(), DType::kF32, w.rows, w.cols));
  std::vector<float> rows(ids.size() * w.cols);
  backend.CopyToHost(rows.data(), out_device->data(), rows.size() * sizeof(float));
  return rows;
}

// RandomWeight holds the sequential streams' values and is stored byte for byte as
// UploadWeight stores them.
void ExpectSequentialValuesUploaded(Backend& backend, std::span<const RandomPart> parts,
                                    int64_t cols, float scale) {
  const std::vector<float> values = SequentialParts(parts, cols, scale);
  const auto rows = static_cast<int64_t>(values.size()) / cols;
  auto got = backend.RandomWeight(parts, cols, scale);
  auto want = backend.UploadWeight(DType::kF32, rows, cols, values.data());
  ASSERT_TRUE(got.ok() && want.ok()) << got.status() << want.status();
  EXPECT_EQ(got->rows, rows);
  EXPECT_EQ(got->cols, cols);
  EXPECT_TRUE(SameBits(RowsOf(backend, *got), values));
  ASSERT_EQ(got->buffer.bytes(), want->buffer.bytes());
  EXPECT_EQ(std::memcmp(got->buffer.data(), want->buffer.data(), got->buffer.bytes()), 0);
}

TEST(RandomWeightsTest, AnyWindowOfRowsIsThoseRowsOfTheWhole) {
  constexpr int64_t kCols = 5;
  const RandomPart parts[] = {{31, 4}, {32, 1}, {33, 6}};
  const std::vector<float> whole = SequentialParts(parts, kCols, 0.5F);
  for (int64_t begin = 0; begin < 11; ++begin) {
    for (int64_t end = begin + 1; end <= 11; ++end) {
      std::vector<float> got((end - begin) * kCols);
      FillRandomRows(parts, kCols, 0.5F, begin, end, got.data());
      const std::vector<float> want(whole.begin() + begin * kCols, whole.begin() + end * kCols);
      EXPECT_TRUE(SameBits(got, want)) << "rows [" << begin << ", " << end << ")";
    }
  }
}

TEST(RandomWeightsTest, CpuBackendStacksThePartsInOrder) {
  auto backend = CreateBackend("cpu");
  ASSERT_TRUE(backend.ok());
  const RandomPart parts[] = {{11, 3}, {12, 1}, {13, 2}};
  ExpectSequentialValuesUploaded(**backend, parts, 7, 0.25F);
}

// The CPU backend makes its panels (16 rows) on every thread of its pool: 71 rows are 5
// panels, split 1/1/1/2 across 4 threads and 1/2/2 across 3, with part boundaries inside
// panels and a last panel of 7 rows. A chunk that numbered its elements from its own first
// row, or a panel that took another's rows, would hold other values than the sequential
// streams. Both layouts: packed panels, and W^T with --blas.
TEST(RandomWeightsTest, CpuBackendThreadsGiveTheSequentialValues) {
  const RandomPart parts[] = {{21, 5}, {22, 40}, {23, 26}};
  for (const int threads : {1, 3, 4}) {
    for (const bool blas : {false, true}) {
      SCOPED_TRACE(::testing::Message() << threads << " threads, blas " << blas);
      BackendOptions options;
      options.num_threads = threads;
      options.cpu_use_blas = blas;
      auto backend = CreateBackend("cpu", options);
      ASSERT_TRUE(backend.ok());
      ExpectSequentialValuesUploaded(**backend, parts, 37, 1.0F / std::sqrt(37.0F));
    }
  }
}

TEST(RandomWeightsTest, EmptyShapesAreErrors) {
  auto backend = CreateBackend("cpu");
  ASSERT_TRUE(backend.ok());
  const RandomPart empty_part[] = {{1, 2}, {2, 0}};
  EXPECT_EQ((*backend)->RandomWeight(empty_part, 4, 1.0F).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*backend)->RandomWeight({}, 4, 1.0F).status().code(),
            absl::StatusCode::kInvalidArgument);
  const RandomPart one[] = {{1, 2}};
  EXPECT_EQ((*backend)->RandomWeight(one, 0, 1.0F).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace ringserve::kernels
