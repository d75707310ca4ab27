// LlamaModel reserves the backend's attention scratch for its options at creation
// (Backend::ReserveAttention): a pass at the option limits runs without allocating, and a
// long decode batch keeps its split-parallel attention, on the CUDA backend's sources on the
// CPU emulation. Both models need more scratch than the backend holds before any reserve
// (kMinAttentionItems, kMinAttentionPartialFloats in cuda_backend.cc), so without the reserve
// the first pass would stop the process and the second would run fewer split slots. And the
// reserve comes before a KV pool sized from free memory.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <span>
#include <vector>

#include "gtest/gtest.h"
#include "tests/unit/kernels/cuda_emu/cuda_emu_backend.h"
#include "worker/model/llama_model.h"
#include "worker/model/tiny_model.h"

namespace ringserve::model {
namespace {

using kernels::DType;
using kernels::testing::EmulatedAttention;

constexpr int kBlockSize = 16;

// The tiny model's embedding and vocabulary with one layer of `num_heads` query heads.
ModelConfig OneLayer(int num_heads, int num_kv_heads, int head_dim, int max_seq_len) {
  ModelConfig c = TinyModelConfig();
  c.num_layers = 1;
  c.hidden_dim = 64;
  c.num_heads = num_heads;
  c.num_kv_heads = num_kv_heads;
  c.head_dim = head_dim;
  c.rotary_dim = 0;  // = head_dim
  c.max_seq_len = max_seq_len;
  return c;
}

std::unique_ptr<kernels::Backend> EmulatedF32() {
  return kernels::testing::MakeEmulatedCudaBackend(DType::kF32);
}

bool AllFinite(const std::vector<float>& values) {
  return std::ranges::all_of(values, [](float v) { return std::isfinite(v); });
}

// 1100 sequences of one token each fill both max_seqs and max_batch_tokens: up to 1100 work
// items (one a sequence), past the backend's 1024 before the reserve. The second pass
// replays it as a decode graph.
TEST(AttentionLimitsTest, PassesAtTheBatchLimitsRunWithoutAllocating) {
  constexpr int kSeqs = 1100;
  const auto backend = EmulatedF32();
  if (backend == nullptr) GTEST_SKIP() << "the CUDA emulation does not run here";
  const int64_t items_before = EmulatedAttention(*backend).item_capacity;
  ModelOptions options;
  options.block_size = kBlockSize;
  options.max_batch_tokens = kSeqs;
  options.max_seqs = kSeqs;
  options.num_kv_blocks = kSeqs;
  auto created =
      LlamaModel::CreateWithRandomWeights(OneLayer(2, 2, 16, 64), 5, backend.get(), options);
  ASSERT_TRUE(created.ok()) << created.status();
  LlamaModel& model = **created;
  EXPECT_EQ(model.max_context_len(), 64) << "max_seq_len, under the pool and the block tables";
  ASSERT_GT(EmulatedAttention(*backend).item_capacity, items_before) << "no reserve needed";
  const int64_t allocations = backend->num_allocations();

  std::vector<int32_t> tokens(kSeqs);
  std::vector<int32_t> tables(kSeqs);
  std::vector<SequenceChunk> chunks(kSeqs);
  for (int position = 0; position < 2; ++position) {
    for (int s = 0; s < kSeqs; ++s) {
      tokens[s] = (s * 7 + position) % model.config().vocab_size;
      tables[s] = s;
      chunks[s] = {std::span(&tokens[s], 1), position, std::span(&tables[s], 1), true};
    }
    std::vector<float> logits;
    ASSERT_TRUE(model.Forward(chunks, &logits).ok()) << "position " << position;
    EXPECT_EQ(logits.size(), static_cast<size_t>(kSeqs) * model.config().vocab_size);
    EXPECT_TRUE(AllFinite(logits)) << "position " << position;
  }
  EXPECT_EQ(model.decode_graph_stats().replays, 1);
  EXPECT_EQ(backend->num_allocations(), allocations);
}

// 32 sequences decode at context 2048 (8 splits of 256 keys) with 8 query heads of 32 dims:
// 32 x 8 x 8 x (32 + 2) floats of partials, more than the backend's 65536 before the reserve
// (7 split slots). The KV pool (159 blocks, 2544 keys) caps the longest context below
// max_seq_len; the sequences share their first 127 blocks, as after a fork. With a sliding
// `window`, the launch has slots for the splits a window spans only: `expected_slots`.
void CheckLongDecodesSplitParallel(int window, int expected_slots) {
  constexpr int kSeqs = 32;
  constexpr int kHeads = 8;
  constexpr int kHeadDim = 32;
  constexpr int kPosition = 2047;
  constexpr int kSharedBlocks = kPosition / kBlockSize;  // 127
  const auto backend = EmulatedF32();
  if (backend == nullptr) GTEST_SKIP() << "the CUDA emulation does not run here";
  ModelOptions options;
  options.block_size = kBlockSize;
  options.max_batch_tokens = kSeqs;
  options.max_seqs = kSeqs;
  options.num_kv_blocks = kSharedBlocks + kSeqs;
  options.decode_graphs = false;  // a graph keeps the split schedule of its capture
  ModelConfig config = OneLayer(kHeads, 1, kHeadDim, 4096);
  config.sliding_window = window;
  auto created = LlamaModel::CreateWithRandomWeights(config, 7, backend.get(), options);
  ASSERT_TRUE(created.ok()) << created.status();
  LlamaModel& model = **created;
  EXPECT_EQ(model.max_context_len(), (kSharedBlocks + kSeqs) * kBlockSize) << "the pool's";

  // Keys and values of the earlier positions, as if prefilled.
  const kernels::KvLayerView kv = model.kv_storage().Layer(0);
  const size_t kv_count = static_cast<size_t>(kv.num_blocks) * kBlockSize * kHeadDim;
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> uniform(-2.0F, 2.0F);
  for (void* cache : {kv.k, kv.v}) {
    std::vector<float> values(kv_count);
    for (float& v : values) v = uniform(rng);
    backend->CopyToDevice(cache, values.data(), kv_count * sizeof(float));
  }
  std::vector<std::vector<int32_t>> tables(kSeqs);
  std::vector<int32_t> tokens(kSeqs);
  std::vector<SequenceChunk> chunks;
  for (int s = 0; s < kSeqs; ++s) {
    for (int b = 0; b < kSharedBlocks; ++b) tables[s].push_back(b);
    tables[s].push_back(kSharedBlocks + s);
    tokens[s] = (3 * s + 1) % model.config().vocab_size;
    chunks.push_back({std::span(&tokens[s], 1), kPosition, tables[s], true});
  }
  const int64_t allocations = backend->num_allocations();
  std::vector<float> split;
  std::vector<float> merged;
  kernels::testing::SetEmulatedSplitMode(*backend, 2);  // always
  ASSERT_TRUE(model.Forward(chunks, &split).ok());
  EXPECT_EQ(EmulatedAttention(*backend).last_split_slots, expected_slots)
      << "a slot for every split";
  kernels::testing::SetEmulatedSplitMode(*backend, 1);  // never
  ASSERT_TRUE(model.Forward(chunks, &merged).ok());
  EXPECT_EQ(EmulatedAttention(*backend).last_split_slots, 1);
  ASSERT_EQ(split.size(), merged.size());
  EXPECT_TRUE(AllFinite(split));
  EXPECT_EQ(std::memcmp(split.data(), merged.data(), split.size() * sizeof(float)), 0)
      << "split-parallel vs merged in the block";
  EXPECT_EQ(backend->num_allocations(), allocations);
}

TEST(AttentionLimitsTest, LongDecodesStaySplitParallelWithTheSameBits) {
  CheckLongDecodesSplitParallel(0, 8);
}

// A window of 700 keys (1348..2047 at the last position: splits 5 to 7) spans at most 4
// splits anywhere.
TEST(AttentionLimitsTest, SlidingWindowDecodesSplitOverTheirWindowOnly) {
  CheckLongDecodesSplitParallel(700, 4);
}

// A pool sized from free memory comes after the reserve, so that it leaves room for the
// scratch; the reserve cannot count on that pool's cap and covers max_seq_len's 16 splits.
TEST(AttentionLimitsTest, ReservedBeforeAPoolSizedFromFreeMemory) {
  const auto backend = EmulatedF32();
  if (backend == nullptr) GTEST_SKIP() << "the CUDA emulation does not run here";
  ModelOptions options;
  options.block_size = kBlockSize;
  options.max_batch_tokens = 32;
  options.max_seqs = 32;
  int64_t partials_when_sized = 0;
  options.size_kv_pool = [&](size_t /*bytes_per_block*/) -> absl::StatusOr<int> {
    partials_when_sized = EmulatedAttention(*backend).partial_floats;
    return 16;
  };
  auto created =
      LlamaModel::CreateWithRandomWeights(OneLayer(8, 1, 32, 4096), 7, backend.get(), options);
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ((*created)->max_context_len(), 16 * kBlockSize);
  EXPECT_EQ(partials_when_sized, int64_t{32} * 8 * 16 * (32 + 2));
}

}  // namespace
}  // namespace ringserve::model
