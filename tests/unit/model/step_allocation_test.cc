// LlamaModel's step path allocates no device memory: once Create has returned, forward passes
// of every shape the options allow (prefill chunks that fill max_batch_tokens, decodes of up
// to max_seqs sequences, both in one pass, contexts up to max_seq_len, passes that sample
// nothing) and copy-on-write of KV blocks leave Backend::num_allocations() where Create left
// it, from the very first pass. Runs on the devices that count their allocations (the GPU and
// the CUDA sources on the CPU emulation; the CPU backend's buffers are host memory).
#include <cmath>
#include <memory>
#include <numeric>
#include <random>
#include <span>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/unit/model/test_devices.h"
#include "worker/model/llama_model.h"
#include "worker/model/tiny_model.h"

namespace ringserve::model {
namespace {

using ringserve::testing::TestDevice;

constexpr int kBlockSize = 16;
constexpr int kMaxBatchTokens = 64;
constexpr int kMaxSeqs = 8;
constexpr int kContext = 640;
constexpr int kLongBlocks = kContext / kBlockSize;

// The built-in tiny model's width, trimmed for the emulation's speed (fewer KV heads mean
// fewer attention blocks), with a context of three attention splits.
ModelConfig Config() {
  ModelConfig c = TinyModelConfig();
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 16;
  c.max_seq_len = kContext;
  return c;
}

class StepAllocationTest : public ::testing::TestWithParam<TestDevice> {
 protected:
  void SetUp() override {
    auto backend = GetParam().create();
    if (!backend.ok()) GTEST_SKIP() << GetParam().name << ": " << backend.status();
    backend_ = *std::move(backend);
    ModelOptions options;
    options.block_size = kBlockSize;
    options.max_batch_tokens = kMaxBatchTokens;
    options.max_seqs = kMaxSeqs;
    options.num_kv_blocks = kLongBlocks + kMaxSeqs;  // one long sequence + one block each
    auto model = LlamaModel::CreateWithRandomWeights(Config(), 3, backend_.get(), options);
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = *std::move(model);
    allocations_ = backend_->num_allocations();
    std::mt19937 rng(11);
    tokens_.resize(kContext);
    for (int32_t& t : tokens_) t = static_cast<int32_t>(rng() % model_->config().vocab_size);
    long_table_.resize(kLongBlocks);
    std::iota(long_table_.begin(), long_table_.end(), 0);
  }

  // A chunk of the long sequence: positions [start, start + count).
  SequenceChunk Long(int start, int count, bool sample) const {
    return {std::span(tokens_).subspan(start, count), start, long_table_, sample};
  }

  // Sequence `i` (1..kMaxSeqs-1) decoding at `position`, a multiple of the block size: the
  // long sequence's blocks hold its earlier keys (shared, as after a fork) and block
  // kLongBlocks + i takes the new one.
  SequenceChunk Forked(int i, int position) {
    std::vector<int32_t>& table = forked_tables_[i];
    table.assign(long_table_.begin(), long_table_.begin() + position / kBlockSize);
    table.push_back(kLongBlocks + i);
    return {std::span(tokens_).subspan(position, 1), position, table, true};
  }

  void Run(const std::vector<SequenceChunk>& chunks, const std::string& pass) {
    std::vector<float> logits;
    const absl::Status status = model_->Forward(chunks, &logits);
    ASSERT_TRUE(status.ok()) << pass << ": " << status;
    EXPECT_EQ(backend_->num_allocations(), allocations_) << "allocated in " << pass;
    for (float l : logits) ASSERT_TRUE(std::isfinite(l)) << pass;
  }

  std::unique_ptr<kernels::Backend> backend_;
  std::unique_ptr<LlamaModel> model_;
  int64_t allocations_ = 0;
  std::vector<int32_t> tokens_;
  std::vector<int32_t> long_table_;
  std::vector<int32_t> forked_tables_[kMaxSeqs];
};

TEST_P(StepAllocationTest, ForwardPassesOfEveryShapeAllocateNothingAfterCreate) {
  ASSERT_GT(allocations_, 0) << "this device does not count its allocations";
  // The long sequence prefills its whole context: a first chunk that fills the token
  // budget, then chunks beside a growing number of decoding sequences, sampling every other
  // pass (a pass may sample nothing).
  Run({Long(0, kMaxBatchTokens, false)}, "prefill of max_batch_tokens");
  int position = kMaxBatchTokens;
  for (int pass = 1; position < kContext - 1; ++pass) {
    std::vector<SequenceChunk> chunks;
    const int decoders = std::min(pass % kMaxSeqs, position / kBlockSize - 1);
    for (int i = 1; i <= decoders; ++i) chunks.push_back(Forked(i, i * kBlockSize));
    const int count = std::min(kMaxBatchTokens - decoders, kContext - 1 - position);
    chunks.push_back(Long(position, count, pass % 2 == 0));
    Run(chunks, absl::StrCat("prefill to ", position + count, " beside ", decoders, " decodes"));
    position += count;
  }
  // Decodes at the longest context, alone and with every other sequence at its own length.
  Run({Long(kContext - 1, 1, true)}, "decode at the last position");
  for (const int seqs : {3, kMaxSeqs}) {
    std::vector<SequenceChunk> chunks = {Long(kContext - 1, 1, true)};
    for (int i = 1; i < seqs; ++i) chunks.push_back(Forked(i, kContext - i * 3 * kBlockSize));
    Run(chunks, absl::StrCat("decode of ", seqs, " sequences"));
  }
  model_->kv_storage().CopyBlock(kLongBlocks - 1, kLongBlocks + 1);  // copy-on-write
  backend_->Synchronize();
  EXPECT_EQ(backend_->num_allocations(), allocations_) << "allocated in a KV block copy";
}

// Builds without CUDA (sanitizer builds) have no device here besides the CPU.
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(StepAllocationTest);
INSTANTIATE_TEST_SUITE_P(Devices, StepAllocationTest,
                         ::testing::ValuesIn(ringserve::testing::TestDevicesWhere(
                             [](const TestDevice& d) { return d.name != "cpu_f32"; })),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace ringserve::model
