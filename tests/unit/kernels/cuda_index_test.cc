// Host tests of the CUDA backend's index math and attention arithmetic (kernels/cuda/
// cuda_index.h), built with or without CUDA: the pieces of the kernels that can be wrong
// without a GPU to show it. The attention emulation runs the kernel's arithmetic on the
// host and checks the design's promises: every way the kernel may schedule a row gives the
// same bits, and the bits are within f32 error of float64.
#include "kernels/cuda/cuda_index.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "tests/unit/kernels/attention_emulation.h"
#include "tests/unit/kernels/kernel_test_util.h"

namespace ringserve::kernels::testing {
namespace {

using cuda::Exp;

TEST(CudaExpTest, WithinThreeUlpOfExp) {
  double worst = 0;
  for (float x = -87.3F; x < 88.0F; x += 0.00137F) {
    const double want = std::exp(static_cast<double>(x));
    const double rel = std::fabs(Exp(x) - want) / want;
    worst = std::max(worst, rel);
  }
  EXPECT_LT(worst, 3.0 * std::ldexp(1.0, -23)) << "worst relative error " << worst;
}

TEST(CudaExpTest, SpecialValues) {
  EXPECT_EQ(Exp(0.0F), 1.0F);
  EXPECT_EQ(Exp(-std::numeric_limits<float>::infinity()), 0.0F);
  EXPECT_EQ(Exp(-100.0F), 0.0F);
  EXPECT_TRUE(std::isnan(Exp(std::numeric_limits<float>::quiet_NaN())));
  EXPECT_EQ(Exp(100.0F), std::numeric_limits<float>::infinity());
  EXPECT_GT(Exp(-87.0F), 0.0F);
}

TEST(CudaSoftmaxTest, RescaleIsExactlyOneWhenTheMaxStays) {
  EXPECT_EQ(cuda::RescaleFactor(1.5F, 1.5F), 1.0F);
  EXPECT_EQ(cuda::RescaleFactor(cuda::kNegInf, 2.0F), 0.0F);
  EXPECT_FLOAT_EQ(cuda::RescaleFactor(1.0F, 2.0F), std::exp(-1.0F));
  EXPECT_EQ(cuda::MergeValue(3.0F, 1.0F, 5.0F, 0.0F), 3.0F);
}

TEST(CudaIndexTest, KvOffsetFollowsTheBlockTable) {
  const int32_t table[] = {5, 2, 9};
  // Block size 4: position 6 is slot 2 of block table[1] = 2, i.e. slot 10.
  EXPECT_EQ(cuda::KvOffset(table, 4, 6, 3, 8, 0), (10 * 3 + 0) * 8);
  EXPECT_EQ(cuda::KvOffset(table, 4, 6, 3, 8, 2), (10 * 3 + 2) * 8);
  EXPECT_EQ(cuda::KvOffset(table, 4, 0, 1, 64, 0), 5 * 4 * 64);
  EXPECT_EQ(cuda::KvOffset(table, 4, 11, 2, 128, 1), ((9 * 4 + 3) * 2 + 1) * 128);
  // Large pools: the slot arithmetic is 64-bit.
  const int32_t big[] = {3'000'000};
  EXPECT_EQ(cuda::KvOffset(big, 16, 1, 8, 128, 0), (int64_t{3'000'000} * 16 + 1) * 8 * 128);
}

TEST(CudaIndexTest, RopePairsMatchBothLayouts) {
  const cuda::RopePair adjacent = cuda::RopePairOffsets(false, 3, 64);
  EXPECT_EQ(adjacent.a, 6);
  EXPECT_EQ(adjacent.b, 7);
  const cuda::RopePair halves = cuda::RopePairOffsets(true, 3, 64);
  EXPECT_EQ(halves.a, 3);
  EXPECT_EQ(halves.b, 35);
  // rotary_dim < head_dim: only the leading rotary_dim values pair up.
  const cuda::RopePair partial = cuda::RopePairOffsets(true, 15, 32);
  EXPECT_EQ(partial.a, 15);
  EXPECT_EQ(partial.b, 31);
}

TEST(CudaIndexTest, SplitsAndItems) {
  EXPECT_EQ(cuda::NumSplits(1), 1);
  EXPECT_EQ(cuda::NumSplits(cuda::kAttentionSplitKeys), 1);
  EXPECT_EQ(cuda::NumSplits(cuda::kAttentionSplitKeys + 1), 2);
  EXPECT_EQ(cuda::ItemsOfSequence(1, 4), 1);
  EXPECT_EQ(cuda::ItemsOfSequence(4, 4), 1);
  EXPECT_EQ(cuda::ItemsOfSequence(5, 4), 2);
  // Decode only, and only with room for every split in the launch.
  EXPECT_FALSE(cuda::SplitParallel(1, 100, 0, 8));  // one split
  EXPECT_TRUE(cuda::SplitParallel(1, 300, 0, 2));   // two splits, two slots
  EXPECT_FALSE(cuda::SplitParallel(1, 600, 0, 2));  // three splits, two slots
  EXPECT_FALSE(cuda::SplitParallel(2, 300, 0, 8));  // a prefill chunk
  EXPECT_FALSE(cuda::SplitParallel(1, 300, 0, 1));  // launch without split slots
  // A window of 300 keys at position 2000 (keys 1701..2000) spans splits 6 and 7 only.
  EXPECT_TRUE(cuda::SplitParallel(1, 2000, 300, 2));
  EXPECT_FALSE(cuda::SplitParallel(1, 2000, 0, 2));
  EXPECT_FALSE(cuda::SplitParallel(1, 2000, 1, 8));  // one key, one split
}

// Every row under a window has at most MaxRowSplits splits, and some row reaches it; its
// splits hold all of its keys and no split outside holds one.
TEST(CudaIndexTest, WindowedRowsStayWithinMaxRowSplits) {
  const int s = cuda::kAttentionSplitKeys;
  for (const int window : {1, 2, s - 1, s, s + 1, 2 * s, 4096}) {
    int most = 0;
    for (int position = 0; position < 3 * window + 2 * s; ++position) {
      const int first = cuda::FirstKey(position, window);
      EXPECT_EQ(position - first + 1, std::min(position + 1, window));
      EXPECT_EQ(cuda::FirstSplit(position, window), first / s);
      const int splits = cuda::RowSplits(position, window);
      EXPECT_EQ(cuda::FirstSplit(position, window) + splits, position / s + 1);
      EXPECT_LE(splits, cuda::MaxRowSplits(position + 1, window)) << window << " " << position;
      most = std::max(most, splits);
    }
    EXPECT_EQ(most, cuda::MaxRowSplits(1 << 20, window)) << window;
  }
  EXPECT_EQ(cuda::MaxRowSplits(1000, 0), cuda::NumSplits(1000));
  EXPECT_EQ(cuda::FirstKey(5000, 0), 0);
}

TEST(CudaIndexTest, MaxItemsBoundsEveryBatch) {
  std::mt19937_64 rng(3);
  for (int trial = 0; trial < 1000; ++trial) {
    const int num_seqs = 1 + static_cast<int>(rng() % 40);
    const int per_item = 1 + static_cast<int>(rng() % 16);
    int tokens = 0, items = 0;
    for (int s = 0; s < num_seqs; ++s) {
      const int len = 1 + static_cast<int>(rng() % (rng() % 2 ? 3 : 300));
      tokens += len;
      items += cuda::ItemsOfSequence(len, per_item);
    }
    ASSERT_LE(items, cuda::MaxAttentionItems(tokens, num_seqs, per_item));
  }
}

// Random K/V for `context` keys and a query; the emulated row at `position`.
struct RowFixture {
  int hd;
  std::vector<float> q, k, v;
  RowFixture(int head_dim, int context, std::mt19937_64& rng) : hd(head_dim) {
    q = RandomFloats(rng, hd, -3, 3);
    k = RandomFloats(rng, static_cast<size_t>(context) * hd);
    v = RandomFloats(rng, static_cast<size_t>(context) * hd);
  }
  EmulatedRow Row(int position) const {
    EmulatedRow row;
    row.q = q.data();
    row.head_dim = hd;
    row.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)));
    row.position = position;
    row.k = [this](int key) { return &k[static_cast<size_t>(key) * hd]; };
    row.v = [this](int key) { return &v[static_cast<size_t>(key) * hd]; };
    return row;
  }
  std::vector<double> Reference(int position) const {
    const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
    std::vector<double> score(position + 1);
    double max = -INFINITY, sum = 0;
    for (int j = 0; j <= position; ++j) {
      double dot = 0;
      for (int d = 0; d < hd; ++d) dot += static_cast<double>(q[d]) * k[j * hd + d];
      score[j] = dot * scale;
      max = std::max(max, score[j]);
    }
    for (double& s : score) sum += (s = std::exp(s - max));
    std::vector<double> out(hd, 0.0);
    for (int j = 0; j <= position; ++j) {
      for (int d = 0; d < hd; ++d) out[d] += score[j] / sum * v[j * hd + d];
    }
    return out;
  }
};

bool SameBits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(CudaAttentionEmulationTest, EveryScheduleGivesTheSameBitsAndMatchesFloat64) {
  std::mt19937_64 rng(17);
  for (const int hd : {8, 12, 64, 128}) {
    for (const int position : {0, 1, 30, 31, 32, 33, 255, 256, 257, 511, 600, 1499}) {
      const RowFixture fixture(hd, position + 300, rng);
      const EmulatedRow row = fixture.Row(position);
      const std::vector<float> base = EmulateAttentionRow(row, {position + 1, false});
      const std::vector<double> want = fixture.Reference(position);
      for (int d = 0; d < hd; ++d) {
        ASSERT_NEAR(base[d], want[d], 2e-5 * (1 + std::fabs(want[d])))
            << "hd " << hd << " position " << position << " d " << d;
      }
      // A prefill item loads keys up to its last token: 1, 17, a split further, ...
      for (const int extra : {1, 17, 31, 32, 256, 299}) {
        EXPECT_TRUE(SameBits(EmulateAttentionRow(row, {position + 1 + extra, false}), base))
            << "hd " << hd << " position " << position << " item loads " << extra << " more";
      }
      EXPECT_TRUE(SameBits(EmulateAttentionRow(row, {position + 1, true}), base))
          << "split-parallel, hd " << hd << " position " << position;
    }
  }
}

}  // namespace
}  // namespace ringserve::kernels::testing
