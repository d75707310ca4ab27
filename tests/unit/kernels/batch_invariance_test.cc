// Batch invariance, bit for bit: a row's MatMul output must not depend on how many rows
// share the call or where the row sits; a token's attention must not depend on the other
// sequences in the batch or on how its sequence's prefill was chunked. The generator's
// determinism guarantee rests on these. cpu-blas is exempt by design (it trades this for
// sgemm speed) and is not run here.
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/unit/kernels/kernel_test_util.h"

namespace ringserve::kernels::testing {
namespace {

class BatchInvarianceTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    backend_ = MakeBackend(GetParam());
    if (backend_ == nullptr) GTEST_SKIP() << GetParam() << " is not available";
  }
  std::unique_ptr<Backend> backend_;
};

bool BitEqual(const float* a, const float* b, size_t count) {
  return std::memcmp(a, b, count * sizeof(float)) == 0;
}

TEST_P(BatchInvarianceTest, MatMulRowsAloneAndInEveryBatchSize) {
  Backend& b = *backend_;
  std::mt19937_64 rng(7);
  const int64_t n = 64, m = 100, k = 600;  // k > one k block, m leaves a partial panel
  const std::vector<float> w_host = RandomFloats(rng, m * k), x = RandomFloats(rng, n * k);
  auto w = b.UploadWeight(DType::kF32, m, k, w_host.data());
  ASSERT_TRUE(w.ok()) << w.status();
  DeviceArray<float> xd(b, x), yd(b, std::vector<float>(n * m));
  b.MatMul(xd.AsTensor(n, k), *w, yd.AsTensor(n, m));
  const std::vector<float> full = yd.Download();
  for (int64_t size = 1; size <= n; ++size) {
    // Every row once, in consecutive batches of `size` rows (the last one shorter).
    for (int64_t start = 0; start < n; start += size) {
      const int64_t rows = std::min(size, n - start);
      DeviceArray<float> part(b, std::vector<float>(rows * m));
      b.MatMul(xd.AsTensor(n, k).Rows(start, rows), *w, part.AsTensor(rows, m));
      const std::vector<float> got = part.Download();
      ASSERT_TRUE(BitEqual(got.data(), &full[start * m], rows * m))
          << "batch size " << size << " start " << start;
    }
  }
}

// Runs RopeAndWriteKv + PagedAttention of `batch` over shared KV storage, returns out.
std::vector<float> Attend(Backend& b, const PagedBatchHost& batch, const std::vector<float>& qkv,
                          int width, const AttentionShape& shape, const RopeParams& rope,
                          const KvLayerView& kv) {
  DeviceArray<float> qkv_d(b, qkv),
      out(b, std::vector<float>(batch.num_tokens * shape.num_q_heads * shape.head_dim));
  DeviceBatch batch_d(b, batch);
  b.RopeAndWriteKv(qkv_d.AsTensor(batch.num_tokens, width), shape, rope, batch_d.view(), kv);
  b.PagedAttention(qkv_d.AsTensor(batch.num_tokens, width), shape, batch_d.view(), kv,
                   out.AsTensor(batch.num_tokens, shape.num_q_heads * shape.head_dim));
  return out.Download();
}

std::vector<float> Rows(const std::vector<float>& v, int width, int first, int count) {
  return {v.begin() + first * width, v.begin() + (first + count) * width};
}

TEST_P(BatchInvarianceTest, AttentionAloneWithOthersAndChunked) {
  Backend& b = *backend_;
  std::mt19937_64 rng(11);
  const int hq = 8, hkv = 2, hd = 64, block_size = 16, num_blocks = 64;
  const int width = (hq + 2 * hkv) * hd;
  // Sequence 1 is a 150-token prefill; the others are its batch-mates.
  const PagedBatchHost all =
      BuildBatch({{40, 1}, {150, 150}, {7, 7}, {300, 1}}, block_size, num_blocks, rng);
  const std::vector<float> qkv = RandomFloats(rng, all.num_tokens * width);
  std::vector<float> inv_freq(hd / 2);
  for (int i = 0; i < hd / 2; ++i)
    inv_freq[i] = static_cast<float>(std::pow(10000.0, -2.0 * i / hd));
  const size_t kv_count = static_cast<size_t>(num_blocks) * block_size * hkv * hd;
  // Random KV everywhere: positions before a decode token's own are "already cached".
  DeviceArray<float> k(b, RandomFloats(rng, kv_count)), v(b, RandomFloats(rng, kv_count)),
      freq(b, inv_freq);
  const AttentionShape shape{hq, hkv, hd, 0.125F};
  const RopeParams rope{freq.data(), hd, RopeLayout::kHalves};
  const KvLayerView kv{k.data(), v.data(), DType::kF32, num_blocks, block_size, hkv, hd};
  const int out_width = hq * hd;

  const std::vector<float> together = Attend(b, all, qkv, width, shape, rope, kv);
  const int start = all.query_start[1];
  // The prefill alone, in one chunk, then in uneven chunks (K/V written chunk by chunk).
  const std::vector<float> alone =
      Attend(b, SliceBatch(all, 1, 0, 150), Rows(qkv, width, start, 150), width, shape, rope, kv);
  EXPECT_EQ(alone, Rows(together, out_width, start, 150)) << "alone vs with batch-mates";
  int first = 0;
  for (int chunk : {1, 16, 33, 57, 43}) {
    const std::vector<float> part =
        Attend(b, SliceBatch(all, 1, first, chunk), Rows(qkv, width, start + first, chunk), width,
               shape, rope, kv);
    EXPECT_EQ(part, Rows(together, out_width, start + first, chunk)) << "chunk at " << first;
    first += chunk;
  }
  ASSERT_EQ(first, 150);
  // A decode token alone vs in the batch.
  const std::vector<float> decode = Attend(
      b, SliceBatch(all, 3, 0, 1), Rows(qkv, width, all.query_start[3], 1), width, shape, rope, kv);
  EXPECT_EQ(decode, Rows(together, out_width, all.query_start[3], 1)) << "decode token";
}

INSTANTIATE_TEST_SUITE_P(Backends, BatchInvarianceTest, ::testing::Values("cpu", "cuda:0"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param == "cpu" ? std::string("cpu") : std::string("cuda0");
                         });

}  // namespace
}  // namespace ringserve::kernels::testing
