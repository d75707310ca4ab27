// ringserve-run's prompts as generator jobs: chat prompts rendered as user messages that stop
// at the end of their turn, the command line's settings on every job, refusals before the
// model loads, and a KV pool just large enough for the jobs that run at once.
#include "tools/ringserve-run/run_requests.h"

#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/tokenizer/chat_vocabulary.h"

namespace ringserve::tools {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using tokenizer::ChatFormat;
using tokenizer::testing::kEndOfText;
using tokenizer::testing::kImEnd;

std::unique_ptr<tokenizer::Tokenizer> ChatTokenizer() {
  auto tok = tokenizer::Tokenizer::Create(tokenizer::testing::ChatVocabulary());
  EXPECT_TRUE(tok.ok()) << tok.status();
  return tok.ok() ? *std::move(tok) : nullptr;
}

std::vector<int32_t> Chat(const tokenizer::Tokenizer& tok,
                          const std::vector<tokenizer::ChatMessage>& messages,
                          std::string_view default_system = {}) {
  auto ids = tokenizer::EncodeChat(tok, ChatFormat::kChatMl, messages,
                                   {.start = true, .default_system = default_system});
  EXPECT_TRUE(ids.ok()) << ids.status();
  return ids.value_or(std::vector<int32_t>{});
}

TEST(RunRequestsTest, ChatPromptsAreUserMessagesThatStopAtTheEndOfTheirTurn) {
  const auto tok = ChatTokenizer();
  ASSERT_NE(tok, nullptr);
  ASSERT_TRUE(tok->IsEndOfGeneration(kEndOfText));
  RunSettings settings;
  settings.chat = true;
  settings.chat_format = ChatFormat::kChatMl;
  settings.default_system = "You are helpful.";
  const std::vector<std::string> texts = {"Hi", "Bye"};

  auto jobs = BuildJobRequests(texts, {}, settings, tok.get(), 4096);
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  ASSERT_EQ(jobs->size(), 2u);
  EXPECT_EQ((*jobs)[0].tokens, Chat(*tok, {{"user", "Hi"}}, "You are helpful."));
  EXPECT_EQ((*jobs)[1].tokens, Chat(*tok, {{"user", "Bye"}}, "You are helpful."));
  // <|im_end|> is not this vocabulary's EOS, so the reply needs it as a stop token.
  EXPECT_THAT((*jobs)[0].stop_token_ids, ElementsAre(kImEnd));

  settings.system = "Be brief.";  // replaces the default
  jobs = BuildJobRequests(texts, {}, settings, tok.get(), 4096);
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  EXPECT_EQ((*jobs)[0].tokens, Chat(*tok, {{"system", "Be brief."}, {"user", "Hi"}}));

  settings.ignore_eos = true;  // generates past every end, the turn's too
  jobs = BuildJobRequests(texts, {}, settings, tok.get(), 4096);
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  EXPECT_TRUE((*jobs)[0].stop_token_ids.empty());
  EXPECT_TRUE((*jobs)[0].ignore_eos);
}

TEST(RunRequestsTest, TextThenIdsEachWithTheCommandLinesSettings) {
  const auto tok = ChatTokenizer();
  ASSERT_NE(tok, nullptr);
  RunSettings settings;
  settings.max_tokens = 7;
  settings.stop_strings = {"\n\n"};
  settings.sampling.temperature = 0.5F;
  settings.sampling.seed = 11;
  const std::vector<std::string> texts = {"ab"};
  const std::vector<std::vector<int32_t>> ids = {{5, 6, 7}};

  auto jobs = BuildJobRequests(texts, ids, settings, tok.get(), 4096);
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  ASSERT_EQ(jobs->size(), 2u);
  EXPECT_EQ((*jobs)[0].tokens, tok->Encode("ab", {}));
  EXPECT_THAT((*jobs)[1].tokens, ElementsAre(5, 6, 7));
  for (const engine::JobRequest& job : *jobs) {
    EXPECT_EQ(job.max_tokens, 7);
    EXPECT_THAT(job.stop_strings, ElementsAre("\n\n"));
    EXPECT_EQ(job.sampling.temperature, 0.5F);
    EXPECT_EQ(job.sampling.seed, 11u);
    EXPECT_TRUE(job.stop_token_ids.empty());  // only chat adds one
    EXPECT_TRUE(job.session_id.empty());
  }
}

TEST(RunRequestsTest, RefusesWhatCannotRunBeforeTheModelLoads) {
  const auto tok = ChatTokenizer();
  ASSERT_NE(tok, nullptr);
  const std::vector<std::string> texts = {"Hi"};
  RunSettings settings;
  settings.chat = true;  // and no format
  EXPECT_EQ(BuildJobRequests(texts, {}, settings, tok.get(), 4096).status().code(),
            absl::StatusCode::kFailedPrecondition);
  settings.chat = false;
  EXPECT_EQ(BuildJobRequests(texts, {}, settings, nullptr, 4096).status().code(),
            absl::StatusCode::kFailedPrecondition);

  settings.max_tokens = 8;
  const std::vector<std::vector<int32_t>> ids = {{1, 2}, {1, 2, 3}};
  EXPECT_TRUE(BuildJobRequests({}, ids, settings, nullptr, 11).ok());  // 3 + 8 fits exactly
  const absl::Status beyond = BuildJobRequests({}, ids, settings, nullptr, 10).status();
  EXPECT_EQ(beyond.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(beyond.message(), HasSubstr("prompt 2 has 3 tokens + 8 to generate"));
  EXPECT_THAT(beyond.message(), HasSubstr("beyond the model's context of 10 tokens"));
}

TEST(RunRequestsTest, KvPoolHoldsTheLargestJobsThatRunAtOnce) {
  std::vector<engine::JobRequest> jobs(3);
  jobs[0].tokens.assign(10, 1);
  jobs[1].tokens.assign(40, 1);
  jobs[2].tokens.assign(20, 1);
  for (engine::JobRequest& job : jobs) job.max_tokens = 6;
  // Blocks of 16 tokens: 16 -> 1, 46 -> 3, 26 -> 2.
  EXPECT_EQ(RunKvBlocks(jobs, 1, 16, 0), 3);
  EXPECT_EQ(RunKvBlocks(jobs, 2, 16, 0), 5);
  EXPECT_EQ(RunKvBlocks(jobs, 64, 16, 0), 6);
  // Seven draft tokens more each: 23 -> 2, 53 -> 4, 33 -> 3.
  EXPECT_EQ(RunKvBlocks(jobs, 2, 16, 7), 7);
}

}  // namespace
}  // namespace ringserve::tools
