// Greedy generation against reference outputs of independent implementations (llama2.c's
// run.c, checked against llama.cpp): /work/shared/vectors/stories260K-greedy.json. Every
// case, both model files: the tokens on every f32 test device (test_devices.h), prompts run
// one at a time and all together in one batch; the first step's logits on the GPU and the
// emulation, f32 and bf16, against the CPU's.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <numeric>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/unit/model/test_devices.h"
#include "tests/unit/shared_dir.h"
#include "worker/engine/offline_batch.h"
#include "worker/model/checkpoint.h"
#include "worker/model/llama_model.h"
#include "worker/tokenizer/stream_decoder.h"
#include "worker/tokenizer/tokenizer.h"

namespace ringserve::model {
namespace {

namespace fs = std::filesystem;
using ringserve::testing::TestDevice;

struct GoldenCase {
  std::string prompt;
  std::vector<int32_t> prompt_ids;
  std::vector<int32_t> generated_ids;
  std::string text;
};

std::vector<GoldenCase> LoadCases() {
  std::ifstream in(fs::path(SharedDataDir()) / "vectors/stories260K-greedy.json");
  const auto doc = nlohmann::json::parse(in, nullptr, false);
  std::vector<GoldenCase> cases;
  if (doc.is_discarded()) return cases;
  for (const auto& c : doc["cases"]) {
    cases.push_back({c["prompt"], c["prompt_ids"], c["generated_ids"], c["text"]});
  }
  return cases;
}

struct ModelFile {
  std::string name;
  std::string path;
  std::string tokenizer;
};
void PrintTo(const ModelFile& file, std::ostream* os) { *os << file.name; }

const ModelFile kFiles[] = {
    {"llama2c", SharedDataDir() + "/models/stories260K.bin",
     SharedDataDir() + "/models/tok512.bin"},
    {"gguf", SharedDataDir() + "/models/stories260K-f32.gguf", ""},
};

absl::StatusOr<std::unique_ptr<Checkpoint>> Open(const ModelFile& file) {
  if (!fs::exists(file.path)) return absl::NotFoundError(file.path + " not present");
  return OpenCheckpoint(file.path, file.tokenizer);
}

class GoldenPromptTest : public ::testing::TestWithParam<ModelFile> {};

TEST_P(GoldenPromptTest, PromptIdsMatch) {
  auto checkpoint = Open(GetParam());
  if (absl::IsNotFound(checkpoint.status())) GTEST_SKIP() << checkpoint.status();
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  ASSERT_TRUE((*checkpoint)->vocabulary.has_value());
  auto tokenizer = tokenizer::Tokenizer::Create(*(*checkpoint)->vocabulary);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  const std::vector<GoldenCase> cases = LoadCases();
  ASSERT_FALSE(cases.empty());
  for (const GoldenCase& c : cases) {
    EXPECT_EQ((*tokenizer)->Encode(c.prompt, {}), c.prompt_ids) << "prompt: " << c.prompt;
  }
}

INSTANTIATE_TEST_SUITE_P(SharedVectors, GoldenPromptTest, ::testing::ValuesIn(kFiles),
                         [](const auto& info) { return info.param.name; });

class GoldenTest : public ::testing::TestWithParam<std::tuple<ModelFile, TestDevice>> {
 protected:
  void SetUp() override {
    const auto& [file, device] = GetParam();
    auto checkpoint = Open(file);
    if (absl::IsNotFound(checkpoint.status())) GTEST_SKIP() << checkpoint.status();
    ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
    checkpoint_ = *std::move(checkpoint);
    cases_ = LoadCases();
    ASSERT_FALSE(cases_.empty());
    auto backend = device.create();
    if (!backend.ok()) GTEST_SKIP() << device.name << ": " << backend.status();
    backend_ = *std::move(backend);
    ASSERT_TRUE(checkpoint_->vocabulary.has_value());
    auto tok = tokenizer::Tokenizer::Create(*checkpoint_->vocabulary);
    ASSERT_TRUE(tok.ok()) << tok.status();
    tokenizer_ = *std::move(tok);
  }

  std::vector<engine::OfflineRequest> Requests() const {
    std::vector<engine::OfflineRequest> requests;
    for (const GoldenCase& c : cases_) {
      engine::OfflineRequest r;
      r.prompt_ids = c.prompt_ids;
      r.max_tokens = static_cast<int>(c.generated_ids.size());
      r.sampling.temperature = 0;
      requests.push_back(r);
    }
    return requests;
  }

  // 64 tokens a pass force chunked prefill of the longer prompts.
  static std::unique_ptr<LlamaModel> MakeModel(const Checkpoint& checkpoint,
                                               kernels::Backend& backend,
                                               const std::vector<engine::OfflineRequest>& requests,
                                               int max_batch_tokens = 64) {
    ModelOptions options;
    options.num_kv_blocks = static_cast<int>(engine::OfflineKvBlocks(requests, 16));
    options.max_seqs = static_cast<int>(requests.size());
    options.max_batch_tokens = max_batch_tokens;
    auto model = LlamaModel::Create(checkpoint, &backend, options);
    EXPECT_TRUE(model.ok()) << model.status();
    return model.ok() ? *std::move(model) : nullptr;
  }
  std::unique_ptr<LlamaModel> MakeModel(const std::vector<engine::OfflineRequest>& requests) {
    return MakeModel(*checkpoint_, *backend_, requests);
  }

  std::vector<GoldenCase> cases_;
  std::unique_ptr<kernels::Backend> backend_;
  std::unique_ptr<Checkpoint> checkpoint_;
  std::unique_ptr<tokenizer::Tokenizer> tokenizer_;
};

// Every (file, device) pair for which keep(file, device) holds.
std::vector<GoldenTest::ParamType> Pairs(
    const std::function<bool(const ModelFile&, const TestDevice&)>& keep) {
  std::vector<GoldenTest::ParamType> pairs;
  for (const ModelFile& file : kFiles) {
    for (const TestDevice& device : ringserve::testing::TestDevices()) {
      if (keep(file, device)) pairs.emplace_back(file, device);
    }
  }
  return pairs;
}

std::string DeviceCaseName(const ::testing::TestParamInfo<GoldenTest::ParamType>& info) {
  return std::get<0>(info.param).name + "_" + std::get<1>(info.param).name;
}

// The references' tokens come from f32 implementations; an f32 device must give exactly them.
// The emulation (35 ms a step) runs the batch of all prompts on one file only: the files hold
// the same f32 weights, and the loaders do not depend on the device.
class GoldenTokensTest : public GoldenTest {};
class GoldenTokensOneAtATimeTest : public GoldenTest {};

TEST_P(GoldenTokensOneAtATimeTest, GreedyTokensMatchOneAtATime) {
  const auto requests = Requests();
  auto model = MakeModel(requests);
  ASSERT_NE(model, nullptr);
  for (size_t i = 0; i < requests.size(); ++i) {
    auto result = engine::RunOfflineBatch(*model, std::span(&requests[i], 1));
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ((*result)[0].generated_ids, cases_[i].generated_ids)
        << "prompt: " << cases_[i].prompt;
  }
}

TEST_P(GoldenTokensTest, GreedyTokensAndTextMatchAllInOneBatch) {
  const auto requests = Requests();
  auto model = MakeModel(requests);
  ASSERT_NE(model, nullptr);
  auto results = engine::RunOfflineBatch(*model, requests);
  ASSERT_TRUE(results.ok()) << results.status();
  for (size_t i = 0; i < requests.size(); ++i) {
    EXPECT_EQ((*results)[i].generated_ids, cases_[i].generated_ids)
        << "prompt: " << cases_[i].prompt;
    tokenizer::StreamDecoder decoder(*tokenizer_, requests[i].prompt_ids.back());
    std::string text;
    for (int32_t id : (*results)[i].generated_ids) text += decoder.Push(id);
    text += decoder.Flush();
    EXPECT_EQ(text, cases_[i].text) << "prompt: " << cases_[i].prompt;
  }
}

INSTANTIATE_TEST_SUITE_P(SharedVectors, GoldenTokensOneAtATimeTest,
                         ::testing::ValuesIn(Pairs([](const ModelFile&, const TestDevice& d) {
                           return d.exact_tokens() && !d.emulated;
                         })),
                         DeviceCaseName);
INSTANTIATE_TEST_SUITE_P(SharedVectors, GoldenTokensTest,
                         ::testing::ValuesIn(Pairs([](const ModelFile& f, const TestDevice& d) {
                           return d.exact_tokens() && (!d.emulated || f.name == "llama2c");
                         })),
                         DeviceCaseName);

// The GPU acceptance criterion: the logits after each vector's prompt (all prompts prefilled
// in one pass) within the device's tolerance of the CPU's f32 logits, as LogitsError
// measures: 2e-2 of the largest logit in bf16.
class GoldenFirstStepTest : public GoldenTest {
 protected:
  std::vector<float> FirstStepLogits(kernels::Backend& backend) {
    const auto requests = Requests();
    auto model = MakeModel(*checkpoint_, backend, requests, /*max_batch_tokens=*/256);
    if (model == nullptr) return {};
    const int block_size = model->options().block_size;
    std::vector<std::vector<int32_t>> tables;
    std::vector<model::SequenceChunk> chunks;
    int32_t next_block = 0;
    for (const GoldenCase& c : cases_) {
      const auto blocks = static_cast<int32_t>((c.prompt_ids.size() + block_size - 1) / block_size);
      tables.emplace_back(blocks);
      std::iota(tables.back().begin(), tables.back().end(), next_block);
      next_block += blocks;
    }
    for (size_t i = 0; i < cases_.size(); ++i) {
      chunks.push_back({cases_[i].prompt_ids, 0, tables[i], /*sample=*/true});
    }
    std::vector<float> logits;
    const absl::Status status = model->Forward(chunks, &logits);
    EXPECT_TRUE(status.ok()) << status;
    return logits;
  }
};

TEST_P(GoldenFirstStepTest, LogitsAfterEachPromptMatchTheCpuInF32) {
  const TestDevice& device = std::get<1>(GetParam());
  auto cpu = kernels::CreateBackend("cpu");
  ASSERT_TRUE(cpu.ok()) << cpu.status();
  const std::vector<float> want = FirstStepLogits(**cpu);
  const std::vector<float> got = FirstStepLogits(*backend_);
  const size_t vocab = checkpoint_->config.vocab_size;
  ASSERT_EQ(want.size(), cases_.size() * vocab);
  ASSERT_EQ(got.size(), want.size());
  double worst = 0;
  for (size_t i = 0; i < cases_.size(); ++i) {
    const double error = ringserve::testing::LogitsError(std::span(got).subspan(i * vocab, vocab),
                                                         std::span(want).subspan(i * vocab, vocab));
    EXPECT_LE(error, device.logits_tolerance) << "prompt: " << cases_[i].prompt;
    worst = std::max(worst, error);
  }
  std::cout << device.name << ": worst first-step logits error " << worst << "\n";
}

INSTANTIATE_TEST_SUITE_P(SharedVectors, GoldenFirstStepTest,
                         ::testing::ValuesIn(Pairs([](const ModelFile&, const TestDevice& d) {
                           return d.name != "cpu_f32";
                         })),
                         DeviceCaseName);

}  // namespace
}  // namespace ringserve::model
