// Decode passes replayed as graphs (decode_graphs.h) against the same passes run op by op,
// bit for bit: on the CUDA backend's sources on the CPU emulation ("emu", every build), on
// cuda:0 (skipped without a GPU), and on the CPU, which has no graphs and must not pad.
#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/unit/kernels/cuda_emu/cuda_emu_backend.h"
#include "worker/model/llama_model.h"
#include "worker/model/tiny_model.h"

namespace ringserve::model {
namespace {

using kernels::DType;

// The tiny model's layers, two of them, with contexts long enough to cross a 256-key
// attention split while the test runs.
ModelConfig SmallConfig() {
  ModelConfig c = TinyModelConfig();
  c.num_layers = 2;
  c.max_seq_len = 320;
  c.rope_layout = kernels::RopeLayout::kHalves;
  return c;
}

constexpr int kSeqs = 6;
constexpr int kBlockSize = 16;
constexpr int kBlocksPerSeq = 20;  // max_seq_len / kBlockSize
constexpr int kPromptLens[kSeqs] = {250, 29, 3, 100, 40, 1};

class DecodeGraphTest : public ::testing::TestWithParam<std::tuple<std::string, DType>> {
 protected:
  void SetUp() override {
    const auto& [device, dtype] = GetParam();
    if (device == "emu") {
      backend_ = kernels::testing::MakeEmulatedCudaBackend(dtype);
    } else {
      kernels::BackendOptions options;
      options.cuda_activation_dtype = dtype;
      auto backend = kernels::CreateBackend(device, options);
      if (backend.ok()) backend_ = *std::move(backend);
    }
    if (backend_ == nullptr) GTEST_SKIP() << device << " is not available";
    for (const bool graphs : {false, true}) {
      ModelOptions options;
      options.block_size = kBlockSize;
      options.num_kv_blocks = kSeqs * kBlocksPerSeq;
      options.max_seqs = 8;  // buckets 1, 2, 4, 8
      options.max_batch_tokens = 640;
      options.decode_graphs = graphs;
      auto model = LlamaModel::CreateWithRandomWeights(SmallConfig(), 11, backend_.get(), options);
      ASSERT_TRUE(model.ok()) << model.status();
      models_.push_back(*std::move(model));
    }
    for (int s = 0; s < kSeqs; ++s) {
      tables_.emplace_back(kBlocksPerSeq);
      for (int i = 0; i < kBlocksPerSeq; ++i) tables_[s][i] = s * kBlocksPerSeq + i;
      prompts_.emplace_back(kPromptLens[s]);
      for (int i = 0; i < kPromptLens[s]; ++i) prompts_[s][i] = (7 * i + s) % 96;
      positions_.push_back(kPromptLens[s]);
    }
  }

  // Runs `chunks` through both models; the logits must match bit for bit.
  void RunBoth(const std::vector<SequenceChunk>& chunks, const std::string& what) {
    std::vector<float> eager, graphed;
    ASSERT_TRUE(models_[0]->Forward(chunks, &eager).ok()) << what;
    ASSERT_TRUE(models_[1]->Forward(chunks, &graphed).ok()) << what;
    const auto sampled = std::count_if(chunks.begin(), chunks.end(),
                                       [](const SequenceChunk& c) { return c.sample; });
    ASSERT_EQ(eager.size(), static_cast<size_t>(sampled) * SmallConfig().vocab_size) << what;
    ASSERT_EQ(graphed.size(), eager.size()) << what;
    if (eager.empty()) return;  // a pass that samples nothing (memcmp takes no null pointer)
    EXPECT_EQ(std::memcmp(eager.data(), graphed.data(), eager.size() * sizeof(float)), 0) << what;
  }

  // One decode step of sequences `seqs` (the token depends on the step and the sequence);
  // `silent` sequences produce no logits.
  void DecodeStep(const std::vector<int>& seqs, int step, const std::vector<int>& silent = {}) {
    std::vector<SequenceChunk> chunks;
    tokens_.assign(seqs.size(), 0);
    for (size_t i = 0; i < seqs.size(); ++i) {
      const int s = seqs[i];
      tokens_[i] = (13 * step + 5 * s) % 96;
      const bool sample = std::find(silent.begin(), silent.end(), s) == silent.end();
      chunks.push_back({std::span(&tokens_[i], 1), positions_[s]++, tables_[s], sample});
    }
    RunBoth(chunks, absl::StrCat("step ", step, " of ", seqs.size(), " sequences"));
  }

  std::unique_ptr<kernels::Backend> backend_;
  std::vector<std::unique_ptr<LlamaModel>> models_;  // [0] op by op, [1] with graphs
  std::vector<std::vector<int32_t>> tables_, prompts_;
  std::vector<int32_t> positions_, tokens_;
};

TEST_P(DecodeGraphTest, ReplayedStepsMatchOpByOpStepsBitForBit) {
  std::vector<SequenceChunk> prefill;
  for (int s = 0; s < kSeqs; ++s) prefill.push_back({prompts_[s], 0, tables_[s], true});
  RunBoth(prefill, "prefill");
  const bool graphs = backend_->can_capture_graphs();
  const int64_t allocations = backend_->num_allocations();

  // Batch sizes 1..6 in buckets 1, 2, 4 and 8 (padding 0 to 3 rows); bucket 8 first appears
  // after the smaller ones have graphs. Sequence 0 crosses 256 keys (a new split),
  // sequence 1 crosses 32 (a new tile).
  const std::vector<std::vector<int>> steps = {{0},          {0, 1},
                                               {0, 1, 2},    {3},
                                               {0, 1, 2, 3}, {3, 4, 5},
                                               {0, 1, 3},    {0, 1, 2, 3, 4},
                                               {5},          {1, 0},
                                               {0, 1, 2, 3}, {4, 3, 1, 0},
                                               {0},          {5, 4, 3, 2, 1, 0}};
  for (size_t i = 0; i < steps.size(); ++i) DecodeStep(steps[i], static_cast<int>(i));
  DecodeStep({0, 1, 2}, 100, /*silent=*/{1});  // logits of the sampled rows only, in order
  DecodeStep({2}, 101, /*silent=*/{2});        // no logits at all

  // A mixed pass runs op by op; the graphs then see the KV it wrote.
  std::vector<SequenceChunk> mixed = {
      {std::span(prompts_[2]).first(2), positions_[2], tables_[2], true},
      {std::span(prompts_[4]).first(1), positions_[4], tables_[4], true}};
  const DecodeGraphStats before_mixed = models_[1]->decode_graph_stats();
  RunBoth(mixed, "mixed pass");
  EXPECT_EQ(models_[1]->decode_graph_stats().replays, before_mixed.replays);
  positions_[2] += 2;
  positions_[4] += 1;
  for (int i = 0; i < 4; ++i) DecodeStep({4, 2, 0}, 200 + i);

  const DecodeGraphStats used = models_[1]->decode_graph_stats();
  EXPECT_EQ(models_[0]->decode_graph_stats().replays, 0);
  if (!graphs) {
    EXPECT_EQ(used.captured, 0);
    EXPECT_EQ(used.replays, 0);
    return;
  }
  EXPECT_EQ(used.captured, 4) << "buckets 1, 2, 4 and 8";
  EXPECT_EQ(used.capture_failures, 0);
  // Every decode step but each bucket's first ran by replay.
  EXPECT_EQ(used.replays, static_cast<int64_t>(steps.size()) + 2 + 4 - 4);
  EXPECT_EQ(backend_->num_allocations(), allocations) << "capturing or replaying allocated";
}

// A switch of the attention kernel between generations (ringserve-run bench --step-attention
// does it) must not replay graphs captured with the other kernel. In bf16, where the
// tensor-core kernel gives other bits than the SIMT one.
class DecodeGraphKernelSwitchTest : public DecodeGraphTest {};

TEST_P(DecodeGraphKernelSwitchTest, GraphsAreCapturedAgainAfterASwitch) {
  if (!backend_->can_capture_graphs()) GTEST_SKIP() << "no graphs";
  RunBoth({{prompts_[3], 0, tables_[3], true}, {prompts_[4], 0, tables_[4], true}}, "prefill");
  DecodeStep({3, 4}, 0);  // runs eagerly, then captures bucket 2
  DecodeStep({3, 4}, 1);  // replays the SIMT graph
  ASSERT_TRUE(backend_->SetAttentionKernel(kernels::AttentionKernel::kTensorCore).ok());
  DecodeStep({3, 4}, 2);  // must not replay the SIMT graph: eager, then captures again
  DecodeStep({3, 4}, 3);  // replays the tensor-core graph
  const DecodeGraphStats used = models_[1]->decode_graph_stats();
  EXPECT_EQ(used.captured, 2) << "bucket 2, once per kernel";
  EXPECT_EQ(used.replays, 2);
}

// The same for cuBLASLt's algorithm row count (cuda:0 only: the emulation has no cuBLASLt).
TEST_P(DecodeGraphKernelSwitchTest, GraphsAreCapturedAgainAfterAMatMulAlgoRowsSwitch) {
  if (!backend_->can_capture_graphs()) GTEST_SKIP() << "no graphs";
  if (backend_->matmul_algo_rows() == 0) GTEST_SKIP() << "MatMul has one kernel here";
  RunBoth({{prompts_[3], 0, tables_[3], true}, {prompts_[4], 0, tables_[4], true}}, "prefill");
  DecodeStep({3, 4}, 0);  // runs eagerly, then captures bucket 2
  DecodeStep({3, 4}, 1);  // replays it
  ASSERT_TRUE(backend_->SetMatMulAlgoRows(16).ok());
  DecodeStep({3, 4}, 2);  // must not replay the 128-row algorithms: eager, then captures again
  DecodeStep({3, 4}, 3);  // replays the 16-row graph
  const DecodeGraphStats used = models_[1]->decode_graph_stats();
  EXPECT_EQ(used.captured, 2) << "bucket 2, once per algorithm row count";
  EXPECT_EQ(used.replays, 2);
}

INSTANTIATE_TEST_SUITE_P(Devices, DecodeGraphKernelSwitchTest,
                         ::testing::Values(std::make_tuple("emu", DType::kBF16),
                                           std::make_tuple("cuda:0", DType::kBF16)),
                         [](const auto& info) {
                           return std::get<0>(info.param) == "emu" ? "emu_bf16" : "cuda_0_bf16";
                         });

INSTANTIATE_TEST_SUITE_P(
    Devices, DecodeGraphTest,
    ::testing::Values(std::make_tuple("emu", DType::kF32), std::make_tuple("cuda:0", DType::kBF16),
                      std::make_tuple("cuda:0", DType::kF32), std::make_tuple("cpu", DType::kF32)),
    [](const auto& info) {
      std::string name =
          std::get<0>(info.param) + "_" + std::string(kernels::DTypeName(std::get<1>(info.param)));
      for (char& c : name) {
        if (c == ':') c = '_';
      }
      return name;
    });

}  // namespace
}  // namespace ringserve::model
