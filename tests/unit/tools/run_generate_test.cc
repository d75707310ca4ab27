// ringserve-run's generate command as a process on the shared stories260K checkpoint: the
// prompts go through the generator, so batching them (at any --max-seqs), running them one
// at a time, and verifying drafts with --speculate all give the same greedy tokens, and
// --stop cuts the text where the string first appears, and --json-schema keeps every reply a
// value of its schema. Skips without ../shared.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/unit/shared_dir.h"
#include "tests/unit/tools/run_tool.h"

namespace ringserve::tools::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class RunGenerateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const fs::path models = fs::path(SharedDataDir()) / "models";
    if (!fs::exists(models / "stories260K.bin") || !fs::exists(models / "tok512.bin")) {
      GTEST_SKIP() << "no stories260K checkpoint under " << models;
    }
    model_args_ = "--model " + (models / "stories260K.bin").string() + " --tokenizer " +
                  (models / "tok512.bin").string() + " --threads 1 --json ";
  }

  // One JSON object per prompt, in prompt order.
  std::vector<json> Run(const std::string& args) {
    const ToolRun run = RunTool("ringserve-run", model_args_ + kPrompts + args);
    EXPECT_EQ(run.exit_code, 0) << run.err;
    EXPECT_THAT(run.err, ::testing::HasSubstr("3 prompts:"));
    std::vector<json> lines;
    std::istringstream out(run.out);
    for (std::string line; std::getline(out, line);) lines.push_back(json::parse(line));
    return lines;
  }

  static std::vector<std::vector<int>> Ids(const std::vector<json>& lines) {
    std::vector<std::vector<int>> ids;
    ids.reserve(lines.size());
    for (const json& j : lines) ids.push_back(j["generated_ids"].get<std::vector<int>>());
    return ids;
  }

  static constexpr const char* kPrompts =
      "--prompt 'Once upon a time' --prompt 'Lily wanted to' --prompt 'The little dog' "
      "--max-tokens 48 --ignore-eos ";
  std::string model_args_;
};

TEST_F(RunGenerateTest, BatchedSequentialAndSpeculativeRunsGiveTheSameTokens) {
  const std::vector<json> batched = Run("");
  ASSERT_EQ(batched.size(), 3u);
  for (const json& j : batched) {
    EXPECT_EQ(j["generated_ids"].size(), 48u);
    EXPECT_EQ(j["finish_reason"], "max_tokens");
    EXPECT_FALSE(j["text"].get<std::string>().empty());
  }
  EXPECT_EQ(batched[1]["prompt"], "Lily wanted to");
  const auto expected = Ids(batched);
  EXPECT_EQ(Ids(Run("--sequential")), expected);
  EXPECT_EQ(Ids(Run("--max-seqs 2")), expected);  // the third waits for a slot
  EXPECT_EQ(Ids(Run("--speculate 4")), expected);

  const std::vector<json> with_logprobs = Run("--logprobs 2");
  EXPECT_EQ(Ids(with_logprobs), expected);
  for (const json& j : with_logprobs) {
    EXPECT_EQ(j["usage"]["completion_tokens"], 48);
    EXPECT_EQ(j["usage"]["prompt_tokens"], j["prompt_ids"].size());
    ASSERT_EQ(j["logprobs"].size(), 48u);
    for (size_t i = 0; i < 48; ++i) {
      const json& token = j["logprobs"][i];
      EXPECT_EQ(token["id"], j["generated_ids"][i]);
      EXPECT_LE(token["logprob"].get<double>(), 0.0);
      ASSERT_EQ(token["top"].size(), 2u);
      // Greedy: the token is the most likely one.
      EXPECT_EQ(token["top"][0][0], token["id"]);
    }
  }
}

// --embed: a unit vector of the model's width per prompt, the same batched or one at a time;
// --dimensions cuts it (then scales the cut), --raw leaves it unscaled.
TEST_F(RunGenerateTest, EmbeddingsAreUnitVectorsBatchedOrNot) {
  const auto norm = [](const json& values) {
    double sum = 0;
    for (const json& v : values) sum += v.get<double>() * v.get<double>();
    return std::sqrt(sum);
  };
  const std::vector<json> batched = Run("--embed");
  ASSERT_EQ(batched.size(), 3u);
  for (const json& j : batched) {
    EXPECT_EQ(j["embedding"].size(), 64u);  // stories260K's width
    EXPECT_NEAR(norm(j["embedding"]), 1.0, 1e-5);
    EXPECT_EQ(j["usage"]["prompt_tokens"], j["prompt_ids"].size());
  }
  EXPECT_NE(batched[0]["embedding"], batched[1]["embedding"]);
  const std::vector<json> sequential = Run("--embed --sequential");
  for (size_t i = 0; i < batched.size(); ++i) {
    EXPECT_EQ(sequential[i]["embedding"], batched[i]["embedding"]) << i;
  }
  const std::vector<json> raw = Run("--embed --raw");
  const std::vector<json> cut = Run("--embed --dimensions 8");
  const double raw_norm = norm(raw[0]["embedding"]);
  EXPECT_GT(std::fabs(raw_norm - 1.0), 1e-3);
  ASSERT_EQ(cut[0]["embedding"].size(), 8u);
  json head = json::array();
  for (size_t d = 0; d < 8; ++d) head.push_back(raw[0]["embedding"][d]);
  for (size_t d = 0; d < 8; ++d) {
    EXPECT_NEAR(cut[0]["embedding"][d].get<double>(),
                raw[0]["embedding"][d].get<double>() / norm(head), 1e-6);
    EXPECT_NEAR(batched[0]["embedding"][d].get<double>(),
                raw[0]["embedding"][d].get<double>() / raw_norm, 1e-6);
  }
  const ToolRun refused = RunTool("ringserve-run", model_args_ + kPrompts + "--embed --chat");
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_THAT(refused.err, ::testing::HasSubstr("--embed"));
}

TEST_F(RunGenerateTest, StopStringsCutTheTextWhereTheyFirstAppear) {
  const std::vector<json> full = Run("");
  ASSERT_EQ(full.size(), 3u);
  const std::string text = full[0]["text"];
  ASSERT_GE(text.size(), 24u) << text;
  // A few characters in (wherever they first appear), none that the shell would read.
  size_t at = 16;
  while (at + 3 < text.size() && text.substr(at, 3).find_first_of("'\\") != std::string::npos) {
    ++at;
  }
  const std::string stop = text.substr(at, 3);
  const std::vector<json> cut = Run("--stop '" + stop + "'");
  ASSERT_EQ(cut.size(), 3u);
  EXPECT_EQ(cut[0]["text"], text.substr(0, text.find(stop)));
  EXPECT_EQ(cut[0]["finish_reason"], "stop_string");
}

// --choice: every reply, greedy or sampled, is one of the strings, taken literally; an empty
// one is refused naming the flag.
TEST_F(RunGenerateTest, ChoiceRepliesAreOneOfTheChoices) {
  for (const std::string sampling : {"", "--temperature 1 --seed 5 "}) {
    const std::vector<json> replies =
        Run(sampling + "--choice 'yes (+)' --choice no --choice '[maybe]'");
    ASSERT_EQ(replies.size(), 3u);
    for (const json& j : replies) {
      EXPECT_EQ(j["finish_reason"], "response_complete") << j;
      EXPECT_THAT(j["text"].get<std::string>(), ::testing::AnyOf("yes (+)", "no", "[maybe]")) << j;
    }
  }
  const ToolRun empty = RunTool("ringserve-run", model_args_ + kPrompts + "--choice ''");
  EXPECT_NE(empty.exit_code, 0);
  EXPECT_THAT(empty.err, ::testing::HasSubstr("--choice: choice 0 has 0 bytes"));
}

// Structured output from the command line: a schema whose values are few ends every reply
// with one of them, and a bad schema is refused before the model loads.
TEST_F(RunGenerateTest, JsonSchemaRepliesAreValuesOfTheSchema) {
  const fs::path schema = fs::path(::testing::TempDir()) / "run_generate_schema.json";
  {
    std::ofstream out(schema);
    out << R"({"type": "object", "properties": {"pet": {"enum": ["cat", "dog", "bird"]}},)"
        << R"( "required": ["pet"]})";
  }
  for (const std::string sampling : {"", "--temperature 0.9 --seed 3 "}) {
    const std::vector<json> replies = Run(sampling + "--json-schema " + schema.string());
    ASSERT_EQ(replies.size(), 3u);
    for (const json& j : replies) {
      EXPECT_EQ(j["finish_reason"], "response_complete") << j;
      const json value = json::parse(j["text"].get<std::string>(), nullptr, false);
      ASSERT_TRUE(value.is_object()) << j;
      EXPECT_EQ(value.size(), 1u) << j;
      EXPECT_THAT(value["pet"].get<std::string>(), ::testing::AnyOf("cat", "dog", "bird")) << j;
    }
  }
  const ToolRun bad = RunTool("ringserve-run", model_args_ + kPrompts + "--json-object " +
                                                   "--json-schema " + schema.string());
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_THAT(bad.err, ::testing::HasSubstr("give one of them"));
  {
    std::ofstream out(schema);
    out << R"({"type": "array", "uniqueItems": true})";
  }
  const ToolRun unsupported =
      RunTool("ringserve-run", model_args_ + kPrompts + "--json-schema " + schema.string());
  EXPECT_NE(unsupported.exit_code, 0);
  EXPECT_THAT(unsupported.err, ::testing::HasSubstr("uniqueItems"));
}

}  // namespace
}  // namespace ringserve::tools::testing
