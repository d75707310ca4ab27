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

// Values are compared after conversion to f32, which is exact and one-to-one for f16/bf16.

TEST_P(BatchInvarianceTest, MatMulRowsAloneAndInEveryBatchSize) {
  if (GetParam().find("-tc") != std::string::npos) {
    GTEST_SKIP() << "the tensor-core option changes the attention only";
  }
  Backend& b = *backend_;
  std::mt19937_64 rng(7);
  const int64_t n = 64, m = 100, k = 600;  // k > one k block, m leaves a partial panel
  const std::vector<float> w_host = RandomFloats(rng, m * k), x = RandomFloats(rng, n * k);
  auto w = b.UploadWeight(DType::kF32, m, k, w_host.data());
  ASSERT_TRUE(w.ok()) << w.status();
  ActivationArray xd(b, x), yd(b, std::vector<float>(n * m));
  b.MatMul(xd.AsTensor(n, k), *w, yd.AsTensor(n, m));
  const std::vector<float> full = yd.Download();
  // The CPU emulation is slow; its MatMul is the simple kernel, invariant by construction.
  const bool emulated = GetParam().starts_with("cuda-emu");
  for (int64_t size = 1; size <= n; size += emulated ? 21 : 1) {
    // Every row once, in consecutive batches of `size` rows (the last one shorter).
    for (int64_t start = 0; start < n; start += size) {
      const int64_t rows = std::min(size, n - start);
      ActivationArray part(b, std::vector<float>(rows * m));
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
  ActivationArray qkv_d(b, qkv),
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

// Sequence `prefill` of `seqs` is a whole-prompt prefill, run with its batch-mates, alone,
// and in `chunks`; sequence `decode` is a decode token, run with its batch-mates and alone.
void CheckAttentionInvariance(Backend& b, const std::vector<SeqSpec>& seqs, int prefill,
                              const std::vector<int>& chunks, int decode, int num_blocks,
                              DType kv_dtype, int window = 0) {
  std::mt19937_64 rng(11);
  const int hq = 8, hkv = 2, hd = 64, block_size = 16;
  const int width = (hq + 2 * hkv) * hd;
  const PagedBatchHost all = BuildBatch(seqs, block_size, num_blocks, rng);
  const std::vector<float> qkv = RandomFloats(rng, all.num_tokens * width);
  std::vector<float> inv_freq(hd / 2);
  for (int i = 0; i < hd / 2; ++i)
    inv_freq[i] = static_cast<float>(std::pow(10000.0, -2.0 * i / hd));
  const size_t kv_count = static_cast<size_t>(num_blocks) * block_size * hkv * hd;
  // Random KV everywhere: positions before a decode token's own are "already cached".
  ActivationArray k(b, RandomFloats(rng, kv_count), kv_dtype),
      v(b, RandomFloats(rng, kv_count), kv_dtype);
  DeviceArray<float> freq(b, inv_freq);
  const AttentionShape shape{hq, hkv, hd, 0.125F, window};
  const RopeParams rope{freq.data(), hd, RopeLayout::kHalves};
  const KvLayerView kv{k.data(), v.data(), kv_dtype, num_blocks, block_size, hkv, hd};
  const int out_width = hq * hd;

  const std::vector<float> together = Attend(b, all, qkv, width, shape, rope, kv);
  const int start = all.query_start[prefill];
  const int length = seqs[prefill].query_len;
  // The prefill alone, in one chunk, then in uneven chunks (K/V written chunk by chunk).
  const std::vector<float> alone = Attend(b, SliceBatch(all, prefill, 0, length),
                                          Rows(qkv, width, start, length), width, shape, rope, kv);
  EXPECT_EQ(alone, Rows(together, out_width, start, length)) << "alone vs with batch-mates";
  int first = 0;
  for (int chunk : chunks) {
    const std::vector<float> part =
        Attend(b, SliceBatch(all, prefill, first, chunk), Rows(qkv, width, start + first, chunk),
               width, shape, rope, kv);
    EXPECT_EQ(part, Rows(together, out_width, start + first, chunk)) << "chunk at " << first;
    first += chunk;
  }
  ASSERT_EQ(first, length);
  // A decode token alone vs in the batch.
  const std::vector<float> alone_decode =
      Attend(b, SliceBatch(all, decode, 0, 1), Rows(qkv, width, all.query_start[decode], 1), width,
             shape, rope, kv);
  EXPECT_EQ(alone_decode, Rows(together, out_width, all.query_start[decode], 1)) << "decode token";
}

TEST_P(BatchInvarianceTest, AttentionAloneWithOthersAndChunked) {
  CheckAttentionInvariance(*backend_, {{40, 1}, {150, 150}, {7, 7}, {300, 1}}, 1,
                           {1, 16, 33, 57, 43}, 3, 64, backend_->activation_dtype());
}

// The same with every cache narrower than the activations the backend keeps: the CPU's f16,
// bf16 and fp8, CUDA's fp8.
TEST_P(BatchInvarianceTest, AttentionOverA16BitCacheAloneWithOthersAndChunked) {
  int kept = 0;
  for (const DType kv : {DType::kF16, DType::kBF16, DType::kF8E4M3}) {
    if (kv == backend_->activation_dtype() || !backend_->SupportsKvDtype(kv)) continue;
    ++kept;
    SCOPED_TRACE(DTypeName(kv));
    CheckAttentionInvariance(*backend_, {{40, 1}, {150, 150}, {7, 7}, {300, 1}}, 1,
                             {1, 16, 33, 57, 43}, 3, 64, kv);
  }
  if (kept == 0) GTEST_SKIP() << "no narrower KV cache on this backend";
}

// Contexts past one GPU attention split (256 keys): chunks that cross the split boundary,
// and a long decode token (split-parallel when alone).
TEST_P(BatchInvarianceTest, AttentionPastOneSplitChunked) {
  CheckAttentionInvariance(*backend_, {{700, 1}, {420, 420}, {5, 5}, {1200, 1}}, 1,
                           {100, 156, 1, 63, 100}, 3, 160, backend_->activation_dtype());
}

// Sliding windows (Mistral 7B v0.1) that start mid-block, mid-tile and mid-split, chunks
// whose tokens' windows start in different splits, and a long decode token.
TEST_P(BatchInvarianceTest, SlidingWindowAttentionAloneWithOthersAndChunked) {
  for (const int window : {37, 300}) {
    SCOPED_TRACE(window);
    CheckAttentionInvariance(*backend_, {{700, 1}, {420, 420}, {5, 5}, {1200, 1}}, 1,
                             {100, 156, 1, 63, 100}, 3, 160, backend_->activation_dtype(), window);
  }
}

// `batch` padded as a replayed decode graph pads it (kernels::AttentionBatch): token rows
// up to `tokens` that write no KV and belong to no sequence, sequences up to `seqs` without
// tokens, and launches sized for `max_context`.
PagedBatchHost Pad(PagedBatchHost batch, int tokens, int seqs, int max_context) {
  for (int t = batch.num_tokens; t < tokens; ++t) {
    batch.positions.push_back(0);
    batch.slots.push_back(-1);
    batch.token_seq.push_back(-1);
  }
  for (int s = batch.num_seqs; s < seqs; ++s) {
    batch.query_start.push_back(batch.num_tokens);
    batch.context_lens.push_back(0);
    batch.block_tables.insert(batch.block_tables.end(), batch.max_blocks_per_seq, 0);
  }
  batch.num_tokens = tokens;
  batch.num_seqs = seqs;
  batch.max_context_len = max_context;
  return batch;
}

// Padding changes no real row and writes no KV. The launch is sized for far longer contexts
// than the batch has, as a graph's is; contexts cross split and tile boundaries.
TEST_P(BatchInvarianceTest, PaddedDecodeBatchGivesTheSameRowsAndKv) {
  Backend& b = *backend_;
  std::mt19937_64 rng(5);
  const int hq = 4, hkv = 2, hd = 32, block_size = 16, num_blocks = 64;
  const int width = (hq + 2 * hkv) * hd;
  const PagedBatchHost batch =
      BuildBatch({{257, 1}, {33, 1}, {1, 1}, {512, 1}}, block_size, num_blocks, rng);
  const PagedBatchHost padded = Pad(batch, 6, 6, 4096);
  const std::vector<float> qkv = RandomFloats(rng, padded.num_tokens * width);
  const std::vector<float> inv_freq(hd / 2, 0.01F);
  DeviceArray<float> freq(b, inv_freq);
  const AttentionShape shape{hq, hkv, hd, 0.125F};
  const RopeParams rope{freq.data(), hd, RopeLayout::kHalves};
  const size_t kv_count = static_cast<size_t>(num_blocks) * block_size * hkv * hd;
  const std::vector<float> k_host = RandomFloats(rng, kv_count),
                           v_host = RandomFloats(rng, kv_count);
  std::vector<std::vector<float>> outs, kvs;
  for (const PagedBatchHost* run : {&batch, &padded}) {
    ActivationArray k(b, k_host), v(b, v_host);
    const KvLayerView kv{k.data(), v.data(), b.activation_dtype(), num_blocks, block_size, hkv, hd};
    const std::vector<float> out =
        Attend(b, *run, Rows(qkv, width, 0, run->num_tokens), width, shape, rope, kv);
    outs.push_back(Rows(out, hq * hd, 0, batch.num_tokens));
    kvs.push_back(k.Download());
    kvs.push_back(v.Download());
  }
  EXPECT_EQ(outs[0], outs[1]) << "real rows changed by padding";
  EXPECT_EQ(kvs[0], kvs[2]) << "padding wrote K";
  EXPECT_EQ(kvs[1], kvs[3]) << "padding wrote V";
}

INSTANTIATE_TEST_SUITE_P(Backends, BatchInvarianceTest,
                         ::testing::ValuesIn(InvariantBackendVariants()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name = info.param;
                           for (char& c : name) {
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return name;
                         });

}  // namespace
}  // namespace ringserve::kernels::testing
