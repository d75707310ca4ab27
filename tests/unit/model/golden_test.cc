// Greedy generation against reference outputs of independent implementations (llama2.c's
// run.c, checked against llama.cpp): /work/shared/vectors/stories260K-greedy.json. Every
// case, every model file, every available backend, prompts run one at a time and all
// together in one batch.
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/unit/model/test_backends.h"
#include "worker/engine/offline_batch.h"
#include "worker/model/checkpoint.h"
#include "worker/model/llama_model.h"
#include "worker/tokenizer/stream_decoder.h"
#include "worker/tokenizer/tokenizer.h"

namespace ringserve::model {
namespace {

namespace fs = std::filesystem;

struct GoldenCase {
  std::string prompt;
  std::vector<int32_t> prompt_ids;
  std::vector<int32_t> generated_ids;
  std::string text;
};

std::vector<GoldenCase> LoadCases() {
  std::ifstream in(fs::path(RINGSERVE_SHARED_DIR) / "vectors/stories260K-greedy.json");
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

class GoldenTest : public ::testing::TestWithParam<std::tuple<ModelFile, std::string>> {
 protected:
  void SetUp() override {
    const auto& [file, device] = GetParam();
    if (!fs::exists(file.path)) GTEST_SKIP() << file.path << " not present";
    cases_ = LoadCases();
    ASSERT_FALSE(cases_.empty());
    auto backend = kernels::CreateBackend(device);
    if (!backend.ok()) GTEST_SKIP() << device << ": " << backend.status();
    backend_ = *std::move(backend);
    auto checkpoint = OpenCheckpoint(file.path, file.tokenizer);
    ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
    checkpoint_ = *std::move(checkpoint);
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

  std::unique_ptr<LlamaModel> MakeModel(const std::vector<engine::OfflineRequest>& requests) {
    ModelOptions options;
    options.num_kv_blocks = static_cast<int>(engine::OfflineKvBlocks(requests, 16));
    options.max_seqs = static_cast<int>(requests.size());
    options.max_batch_tokens = 64;  // forces chunked prefill of the longer prompts
    auto model = LlamaModel::Create(*checkpoint_, backend_.get(), options);
    EXPECT_TRUE(model.ok()) << model.status();
    return model.ok() ? *std::move(model) : nullptr;
  }

  std::vector<GoldenCase> cases_;
  std::unique_ptr<kernels::Backend> backend_;
  std::unique_ptr<Checkpoint> checkpoint_;
  std::unique_ptr<tokenizer::Tokenizer> tokenizer_;
};

TEST_P(GoldenTest, PromptIdsMatch) {
  for (const GoldenCase& c : cases_) {
    EXPECT_EQ(tokenizer_->Encode(c.prompt, {}), c.prompt_ids) << "prompt: " << c.prompt;
  }
}

TEST_P(GoldenTest, GreedyTokensMatchOneAtATime) {
  const auto requests = Requests();
  auto model = MakeModel(requests);
  ASSERT_NE(model, nullptr);
  for (size_t i = 0; i < requests.size(); ++i) {
    auto result = engine::RunOfflineBatch(*model, std::span(&requests[i], 1));
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ((*result)[0].generated_ids, cases_[i].generated_ids) << "prompt: " << cases_[i].prompt;
  }
}

TEST_P(GoldenTest, GreedyTokensAndTextMatchAllInOneBatch) {
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

const ModelFile kFiles[] = {
    {"llama2c", std::string(RINGSERVE_SHARED_DIR) + "/models/stories260K.bin",
     std::string(RINGSERVE_SHARED_DIR) + "/models/tok512.bin"},
    {"gguf", std::string(RINGSERVE_SHARED_DIR) + "/models/stories260K-f32.gguf", ""},
};

INSTANTIATE_TEST_SUITE_P(
    SharedVectors, GoldenTest,
    ::testing::Combine(::testing::ValuesIn(kFiles), ::testing::ValuesIn(TestBackendNames())),
    [](const auto& info) {
      std::string name = std::get<0>(info.param).name + "_" + std::get<1>(info.param);
      std::replace(name.begin(), name.end(), ':', '_');
      return name;
    });

}  // namespace
}  // namespace ringserve::model
