// LoRA adapters in the forward pass, on every test device: a row that names an adapter
// computes the model whose weights are merged with it (W + scale * B A), a row that names
// none computes the base model bit for bit, and a row's logits do not depend on the other
// rows' adapters. An adapter read for a checkpoint that rotates adjacent pairs (Q and K rows
// permuted at conversion) computes what it computes on the Hugging Face original.
#include <algorithm>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/support/peft_adapter.h"
#include "tests/support/scoped_temp_dir.h"
#include "tests/unit/model/random_checkpoint.h"
#include "tests/unit/model/test_devices.h"
#include "worker/model/llama_model.h"
#include "worker/model/lora_adapter.h"

namespace ringserve::model {
namespace {

using ringserve::testing::TestDevice;

ModelConfig SmallConfig(kernels::RopeLayout layout) {
  ModelConfig c;
  c.dim = 64;
  c.hidden_dim = 96;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 16;
  c.vocab_size = 97;
  c.max_seq_len = 128;
  c.rope_theta = 500.0F;
  c.rope_layout = layout;
  c.attention_bias = true;  // the adapter's delta adds before the biases
  c.qk_norm = true;         // and before Qwen3's Q/K norms
  return c;
}

// The canonical tensor a target's adapter changes.
std::string TensorOf(int layer, LoraTarget target) {
  static constexpr const char* kNames[] = {"attn_q",   "attn_k", "attn_v",  "attn_output",
                                           "ffn_gate", "ffn_up", "ffn_down"};
  return absl::StrCat("blk.", layer, ".", kNames[static_cast<int>(target)], ".weight");
}

// `base` with `adapter` merged into its weights: W += B A (B holds the scale).
std::unique_ptr<Checkpoint> Merge(const Checkpoint& base, const LoraAdapter& adapter) {
  auto merged = std::make_unique<Checkpoint>();
  merged->config = base.config;
  merged->format = base.format;
  for (const HostTensor& t : base.tensors()) CopyTensor(base, t.name, merged.get());
  for (int layer = 0; layer < base.config.num_layers; ++layer) {
    for (int i = 0; i < kNumLoraTargets; ++i) {
      const LoraMatrices& m = adapter.layers[layer][i];
      if (m.rank == 0) continue;
      const auto [out, in] = LoraTargetShape(base.config, static_cast<LoraTarget>(i));
      float* w = CopyTensor(base, TensorOf(layer, static_cast<LoraTarget>(i)), merged.get());
      for (int64_t o = 0; o < out; ++o) {
        for (int64_t k = 0; k < in; ++k) {
          double sum = 0;
          for (int r = 0; r < m.rank; ++r) sum += double{m.b_t[r * out + o]} * m.a[r * in + k];
          w[o * in + k] += static_cast<float>(sum);
        }
      }
    }
  }
  return merged;
}

// Prompts of three sequences; each chunk samples its last row.
struct Batch {
  std::vector<std::vector<int32_t>> tokens;
  std::vector<std::vector<int32_t>> tables;
};

Batch MakeBatch(int block_size) {
  Batch b;
  const std::vector<int> lengths = {9, 23, 5};
  int next_block = 0;
  for (size_t s = 0; s < lengths.size(); ++s) {
    std::vector<int32_t> t(lengths[s]);
    for (int i = 0; i < lengths[s]; ++i) t[i] = static_cast<int32_t>((s * 31 + i * 7 + 3) % 97);
    b.tokens.push_back(t);
    // Room for one more token: a decode step.
    std::vector<int32_t> table((lengths[s] + block_size) / block_size);
    std::iota(table.begin(), table.end(), next_block);
    next_block += static_cast<int>(table.size());
    b.tables.push_back(table);
  }
  return b;
}

// The logits of `seqs` of `batch` run together in one pass, sequence i with adapter
// adapters[i]; one vocabulary row per sequence. With `decode`, each sequence's pass is one
// more token after its prompt (a decode step: a graph where the backend has them).
std::vector<std::vector<float>> RunPass(LlamaModel& model, const Batch& batch,
                                        const std::vector<int>& seqs,
                                        const std::vector<int32_t>& adapters, bool decode = false) {
  static constexpr int32_t kNextToken[] = {11};
  std::vector<SequenceChunk> chunks;
  for (size_t i = 0; i < seqs.size(); ++i) {
    SequenceChunk c;
    c.tokens = batch.tokens[seqs[i]];
    if (decode) {
      c.start_position = static_cast<int32_t>(c.tokens.size());
      c.tokens = kNextToken;
    }
    c.block_table = batch.tables[seqs[i]];
    c.sample = true;
    c.adapter = adapters[i];
    chunks.push_back(c);
  }
  std::vector<float> logits;
  const absl::Status status = model.Forward(chunks, &logits);
  EXPECT_TRUE(status.ok()) << status;
  const int vocab = model.config().vocab_size;
  std::vector<std::vector<float>> rows;
  for (size_t i = 0; i < seqs.size() && status.ok(); ++i) {
    rows.emplace_back(logits.begin() + i * vocab, logits.begin() + (i + 1) * vocab);
  }
  return rows;
}

// An adapter written in PEFT's layout by `spec`, read back for `config`.
std::shared_ptr<const LoraAdapter> ReadAdapter(const ModelConfig& config,
                                               const ringserve::testing::PeftAdapterSpec& spec,
                                               const std::string& name) {
  ringserve::testing::ScopedTempDir dir;
  ringserve::testing::WritePeftAdapter(dir.path(), config, spec);
  auto read = LoadLoraAdapter(name, dir.path(), config);
  EXPECT_TRUE(read.ok()) << read.status();
  return std::make_shared<const LoraAdapter>(read.ok() ? *std::move(read) : LoraAdapter());
}

ModelOptions Options(std::vector<std::shared_ptr<const LoraAdapter>> adapters) {
  ModelOptions o;
  o.block_size = 8;
  o.num_kv_blocks = 16;
  o.max_batch_tokens = 64;
  o.max_seqs = 4;
  o.lora_adapters = std::move(adapters);
  return o;
}

class LoraForwardTest : public ::testing::TestWithParam<TestDevice> {};

TEST_P(LoraForwardTest, AdapterRowsComputeTheMergedModelAndOthersTheBase) {
  const TestDevice& device = GetParam();
  auto backend = device.create();
  if (!backend.ok()) GTEST_SKIP() << device.name << ": " << backend.status();
  const ModelConfig config = SmallConfig(kernels::RopeLayout::kHalves);
  const std::unique_ptr<Checkpoint> base = MakeCheckpoint(config);
  ringserve::testing::ScopedTempDir dir_all, dir_qv;
  ringserve::testing::PeftAdapterSpec all;  // every projection, rank 4
  all.seed = 7;
  ringserve::testing::PeftAdapterSpec qv;  // q and v only, rank 8: slots of different ranks
  qv.rank = 8;
  qv.alpha = 4;
  qv.targets = {"q_proj", "v_proj"};
  qv.seed = 8;
  ringserve::testing::WritePeftAdapter(dir_all.path(), config, all);
  ringserve::testing::WritePeftAdapter(dir_qv.path(), config, qv);
  auto adapter_all = LoadLoraAdapter("all", dir_all.path(), config);
  auto adapter_qv = LoadLoraAdapter("qv", dir_qv.path(), config);
  ASSERT_TRUE(adapter_all.ok() && adapter_qv.ok());
  const std::vector<std::shared_ptr<const LoraAdapter>> adapters = {
      std::make_shared<LoraAdapter>(*adapter_all), std::make_shared<LoraAdapter>(*adapter_qv)};

  auto with_adapters = LlamaModel::Create(*base, backend->get(), Options(adapters));
  ASSERT_TRUE(with_adapters.ok()) << with_adapters.status();
  const Batch batch = MakeBatch(8);
  // Mixed: sequence 0 on "qv", 1 on the base weights, 2 on "all"; a prefill, then a decode
  // step.
  const auto mixed = RunPass(**with_adapters, batch, {0, 1, 2}, {1, -1, 0});
  const auto mixed_decode = RunPass(**with_adapters, batch, {0, 1, 2}, {1, -1, 0}, true);

  auto plain_backend = device.create();
  auto plain = LlamaModel::Create(*base, plain_backend->get(), Options({}));
  ASSERT_TRUE(plain.ok()) << plain.status();
  const auto base_rows = RunPass(**plain, batch, {0, 1, 2}, {-1, -1, -1});
  const auto base_decode = RunPass(**plain, batch, {0, 1, 2}, {-1, -1, -1}, true);
  EXPECT_EQ(mixed[1], base_rows[1]) << "a row without an adapter must compute the base model";
  EXPECT_EQ(mixed_decode[1], base_decode[1]);

  for (const auto& [seq, slot] : {std::pair{0, 1}, std::pair{2, 0}}) {
    const LoraAdapter& adapter = *adapters[slot];
    SCOPED_TRACE(adapter.name);
    auto merged_backend = device.create();
    const std::unique_ptr<Checkpoint> merged = Merge(*base, adapter);
    auto merged_model = LlamaModel::Create(*merged, merged_backend->get(), Options({}));
    ASSERT_TRUE(merged_model.ok()) << merged_model.status();
    const auto want = RunPass(**merged_model, batch, {seq}, {-1});
    const auto want_decode = RunPass(**merged_model, batch, {seq}, {-1}, true);
    EXPECT_LE(ringserve::testing::LogitsError(mixed_decode[seq], want_decode[0]),
              device.logits_tolerance);
    const double error = ringserve::testing::LogitsError(mixed[seq], want[0]);
    const double moved = ringserve::testing::LogitsError(base_rows[seq], want[0]);
    std::cout << device.name << " " << adapter.name << ": logits error against the merged model "
              << error << ", the adapter moves them " << moved << "\n";
    EXPECT_LE(error, device.logits_tolerance);
    // Far beyond the rounding: the adapter is what moved the logits.
    EXPECT_GT(moved, 5 * std::max(error, 1e-3)) << "the adapter must change the logits";
    // Alone, the same bits as beside the other rows.
    const auto alone = RunPass(**with_adapters, batch, {seq}, {slot});
    EXPECT_EQ(alone[0], mixed[seq]);
    EXPECT_EQ(RunPass(**with_adapters, batch, {seq}, {slot}, true)[0], mixed_decode[seq]);
  }
  if ((*backend)->can_capture_graphs()) {
    EXPECT_GT((*with_adapters)->decode_graph_stats().replays, 0) << "decode steps ran as graphs";
  }
}

// The same adapter on a checkpoint whose Q and K rows were permuted to rotate adjacent pairs
// (as converting a Hugging Face checkpoint to GGUF "llama" does) computes the same logits.
TEST_P(LoraForwardTest, AdapterFollowsAConvertedCheckpointsQueryKeyPermutation) {
  const TestDevice& device = GetParam();
  if (device.emulated) GTEST_SKIP() << "layout only: the CPU covers it";
  auto backend = device.create();
  if (!backend.ok()) GTEST_SKIP() << device.name << ": " << backend.status();
  const ModelConfig hf_config = SmallConfig(kernels::RopeLayout::kHalves);
  ModelConfig gguf_config = hf_config;
  gguf_config.rope_layout = kernels::RopeLayout::kAdjacentPairs;
  const std::unique_ptr<Checkpoint> hf = MakeCheckpoint(hf_config);
  auto gguf = std::make_unique<Checkpoint>();
  gguf->config = gguf_config;
  for (const HostTensor& t : hf->tensors()) CopyTensor(*hf, t.name, gguf.get());
  const int d = hf_config.head_dim;
  for (int layer = 0; layer < hf_config.num_layers; ++layer) {
    for (const char* name : {"attn_q", "attn_k"}) {
      // Rows of weights, biases and (per head) norms: row 2i + j <- HF row j * d/2 + i.
      for (const char* suffix : {".weight", ".bias"}) {
        const std::string tensor = absl::StrCat("blk.", layer, ".", name, suffix);
        const HostTensor& t = **hf->Find(tensor);
        const int64_t rows = t.shape[0];
        const int64_t cols = t.shape.size() > 1 ? t.shape[1] : 1;
        const auto* from = static_cast<const float*>(t.data);
        float* to = CopyTensor(*hf, tensor, gguf.get());
        for (int64_t row = 0; row < rows; ++row) {
          const int64_t src = row / d * d + row % 2 * (d / 2) + row % d / 2;
          std::copy_n(from + src * cols, cols, to + row * cols);
        }
      }
      const std::string norm = absl::StrCat("blk.", layer, ".", name, "_norm.weight");
      const auto* from = static_cast<const float*>((*hf->Find(norm))->data);
      float* to = CopyTensor(*hf, norm, gguf.get());
      for (int row = 0; row < d; ++row) to[row] = from[row % 2 * (d / 2) + row / 2];
    }
  }
  ringserve::testing::ScopedTempDir dir;
  ringserve::testing::WritePeftAdapter(dir.path(), hf_config, {});
  auto for_hf = LoadLoraAdapter("a", dir.path(), hf_config);
  auto for_gguf = LoadLoraAdapter("a", dir.path(), gguf_config);
  ASSERT_TRUE(for_hf.ok() && for_gguf.ok());
  auto hf_model =
      LlamaModel::Create(*hf, backend->get(), Options({std::make_shared<LoraAdapter>(*for_hf)}));
  auto other_backend = device.create();
  auto gguf_model = LlamaModel::Create(*gguf, other_backend->get(),
                                       Options({std::make_shared<LoraAdapter>(*for_gguf)}));
  ASSERT_TRUE(hf_model.ok() && gguf_model.ok());
  const Batch batch = MakeBatch(8);
  const auto want = RunPass(**hf_model, batch, {0, 1, 2}, {0, 0, 0});
  const auto got = RunPass(**gguf_model, batch, {0, 1, 2}, {0, 0, 0});
  const auto base = RunPass(**hf_model, batch, {0, 1, 2}, {-1, -1, -1});
  for (int s = 0; s < 3; ++s) {
    EXPECT_LE(ringserve::testing::LogitsError(got[s], want[s]), 1e-5) << "sequence " << s;
    EXPECT_GT(ringserve::testing::LogitsError(base[s], want[s]), 1e-2) << "sequence " << s;
  }
}

// Slots with room (ModelOptions::max_loras, max_lora_rank) take adapters after creation:
// the same bits as an adapter given at creation (also over a larger adapter's rows), none
// again once cleared, and a refusal for an adapter past the room. On the emulation too: the
// prepared rows are in the activation dtype there.
TEST_P(LoraForwardTest, AdaptersLoadIntoSlotsBetweenPasses) {
  const TestDevice& device = GetParam();
  auto backend = device.create();
  if (!backend.ok()) GTEST_SKIP() << device.name << ": " << backend.status();
  const ModelConfig config = SmallConfig(kernels::RopeLayout::kHalves);
  const std::unique_ptr<Checkpoint> base = MakeCheckpoint(config);
  const auto adapter = ReadAdapter(config, {}, "all");  // rank 4, every projection

  auto at_start_backend = device.create();
  auto at_start = LlamaModel::Create(*base, at_start_backend->get(), Options({adapter}));
  ModelOptions room = Options({});
  room.max_loras = 2;
  room.max_lora_rank = 8;
  auto later = LlamaModel::Create(*base, backend->get(), room);
  ASSERT_TRUE(at_start.ok() && later.ok());
  EXPECT_EQ((*later)->lora_slots().size(), 2U);
  const Batch batch = MakeBatch(8);
  const auto base_rows = RunPass(**later, batch, {0, 1}, {1, -1});  // an empty slot adds nothing
  auto prepared = (*later)->PrepareLoraAdapter(*adapter);
  ASSERT_TRUE(prepared.ok()) << prepared.status();
  // A rank-8 adapter first: the rank-4 one written over it zeros the rows past its rank.
  ringserve::testing::PeftAdapterSpec eight;
  eight.rank = 8;
  auto eight_prepared = (*later)->PrepareLoraAdapter(*ReadAdapter(config, eight, "eight"));
  ASSERT_TRUE(eight_prepared.ok()) << eight_prepared.status();
  ASSERT_TRUE((*later)->SetLoraAdapter(1, *eight_prepared).ok());
  EXPECT_NE(RunPass(**later, batch, {0}, {1})[0], base_rows[0]);
  ASSERT_TRUE((*later)->SetLoraAdapter(1, *prepared).ok());
  const auto want = RunPass(**at_start, batch, {0, 1}, {0, -1});
  const auto got = RunPass(**later, batch, {0, 1}, {1, -1});
  EXPECT_EQ(got, want) << "rank 4 in a rank-8 slot: the same bits as at creation";
  EXPECT_NE(got[0], base_rows[0]);
  EXPECT_EQ(got[1], base_rows[1]);
  ASSERT_TRUE((*later)->SetLoraAdapter(1, nullptr).ok());
  EXPECT_EQ(RunPass(**later, batch, {0}, {1})[0], base_rows[0]);

  ringserve::testing::PeftAdapterSpec big;
  big.rank = 16;
  EXPECT_EQ((*later)->PrepareLoraAdapter(*ReadAdapter(config, big, "big")).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ((*later)->SetLoraAdapter(2, *prepared).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RunPass(**later, batch, {0}, {0})[0], base_rows[0]) << "a refusal changes nothing";
  // Created with adapters of q and v only, a model keeps no room for the other projections.
  ringserve::testing::PeftAdapterSpec qv;
  qv.targets = {"q_proj", "v_proj"};
  auto qv_backend = device.create();
  auto qv_model =
      LlamaModel::Create(*base, qv_backend->get(), Options({ReadAdapter(config, qv, "qv")}));
  ASSERT_TRUE(qv_model.ok());
  const auto qv_rows = RunPass(**qv_model, batch, {0}, {0});
  EXPECT_EQ((*qv_model)->PrepareLoraAdapter(*adapter).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ((*qv_model)->SetLoraAdapter(0, *prepared).code(), absl::StatusCode::kInvalidArgument)
      << "prepared for another model's slots";
  EXPECT_EQ(RunPass(**qv_model, batch, {0}, {0}), qv_rows) << "a refusal changes nothing";
}

TEST(LoraForwardValidationTest, UnknownSlotIsRefused) {
  auto backend = kernels::CreateBackend("cpu");
  ASSERT_TRUE(backend.ok());
  const ModelConfig config = SmallConfig(kernels::RopeLayout::kHalves);
  const std::unique_ptr<Checkpoint> base = MakeCheckpoint(config);
  auto model = LlamaModel::Create(*base, backend->get(), Options({}));
  ASSERT_TRUE(model.ok());
  const Batch batch = MakeBatch(8);
  SequenceChunk c;
  c.tokens = batch.tokens[0];
  c.block_table = batch.tables[0];
  c.sample = true;
  c.adapter = 0;
  std::vector<float> logits;
  EXPECT_EQ((*model)->Forward(std::span(&c, 1), &logits).code(),
            absl::StatusCode::kInvalidArgument);
}

INSTANTIATE_TEST_SUITE_P(Devices, LoraForwardTest,
                         ::testing::ValuesIn(ringserve::testing::TestDevices()),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace ringserve::model
