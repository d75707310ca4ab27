// The random-weight generator is counter-based so the device can compute each element on
// its own; it must still give exactly the sequential splitmix64 stream that benchmark models
// have always been made of, and Backend::RandomWeight must stack its parts as documented.
#include "kernels/random_weights.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
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

TEST(RandomWeightsTest, CpuBackendStacksThePartsInOrder) {
  auto backend = CreateBackend("cpu");
  ASSERT_TRUE(backend.ok());
  constexpr int64_t kCols = 7;
  const RandomPart parts[] = {{11, 3}, {12, 1}, {13, 2}};
  auto got = (*backend)->RandomWeight(parts, kCols, 0.25F);
  ASSERT_TRUE(got.ok()) << got.status();
  std::vector<float> values;
  for (const RandomPart& p : parts) {
    const std::vector<float> part = SequentialStream(p.state, 0.25F, p.rows * kCols);
    values.insert(values.end(), part.begin(), part.end());
  }
  auto want = (*backend)->UploadWeight(DType::kF32, 6, kCols, values.data());
  ASSERT_TRUE(want.ok());
  EXPECT_EQ(got->rows, 6);
  EXPECT_EQ(got->cols, kCols);
  ASSERT_EQ(got->buffer.bytes(), want->buffer.bytes());
  EXPECT_EQ(std::memcmp(got->buffer.data(), want->buffer.data(), got->buffer.bytes()), 0);
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
