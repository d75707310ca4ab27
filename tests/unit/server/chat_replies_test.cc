// Chat requests to a model that thinks first: the generation prompt closes the thought when
// the request switches it off or constrains the reply, and the streamed thought leaves the
// text for GenerateResponse.reasoning.
#include "worker/server/chat_replies.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "tests/unit/tokenizer/chat_vocabulary.h"
#include "worker/server/request_conversion.h"

namespace ringserve::server {
namespace {

namespace pb = ringserve::v1;
using tokenizer::ChatFormat;

std::unique_ptr<tokenizer::Tokenizer> Qwen3LikeTokenizer() {
  return tokenizer::testing::ChatTokenizer(
      true, "<|im_start|> {% if enable_thinking is false %}<think>{% endif %}");
}

pb::GenerateRequest Hi() {
  pb::GenerateRequest request;
  pb::ChatMessage* m = request.mutable_chat()->add_messages();
  m->set_role("user");
  m->set_content("Hi");
  return request;
}

TEST(ChatRepliesTest, TheThoughtIsClosedWhenSwitchedOffOrTheReplyIsConstrained) {
  const auto tok = Qwen3LikeTokenizer();
  const ModelLimits limits{
      .vocab_size = tok->vocab_size(), .context_length = 512, .chat_format = ChatFormat::kChatMl};
  const auto prompt = [&](const pb::GenerateRequest& request) {
    auto job = ToJobRequest(request, tok.get(), limits);
    EXPECT_TRUE(job.ok()) << job.status();
    return job.ok() ? tok->Decode(job->tokens) : std::string();
  };
  const std::string thinks = prompt(Hi());
  EXPECT_TRUE(thinks.ends_with("assistant\n")) << thinks;
  pb::GenerateRequest off = Hi();
  off.mutable_chat()->set_enable_thinking(false);
  EXPECT_EQ(prompt(off), thinks + "<think>\n\n</think>\n\n");
  pb::GenerateRequest on = Hi();
  on.mutable_chat()->set_enable_thinking(true);
  EXPECT_EQ(prompt(on), thinks);
  pb::GenerateRequest json = Hi();
  json.mutable_response_format()->mutable_json_object();
  EXPECT_EQ(prompt(json), thinks + "<think>\n\n</think>\n\n");
  EXPECT_TRUE(ReplyMayThink(Hi()));
  EXPECT_FALSE(ReplyMayThink(json));
}

// A call the reply begins is bound only after the thought: one written inside it is prose.
TEST(ChatRepliesTest, AutoToolCallsAreWatchedForAfterTheThought) {
  const auto tok = Qwen3LikeTokenizer();
  const ModelLimits limits{
      .vocab_size = tok->vocab_size(), .context_length = 4096, .chat_format = ChatFormat::kChatMl};
  pb::GenerateRequest request = Hi();
  request.mutable_chat()->add_tools()->set_name("now");
  auto job = ToJobRequest(request, tok.get(), limits);
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_TRUE(job->format_trigger.has_value());
  EXPECT_EQ(job->format_trigger->after, "</think>");
  request.mutable_chat()->set_enable_thinking(false);
  job = ToJobRequest(request, tok.get(), limits);
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_TRUE(job->format_trigger.has_value());
  EXPECT_EQ(job->format_trigger->after, "");
}

TEST(ChatRepliesTest, TheThoughtLeavesTheTextForReasoning) {
  const auto tok = Qwen3LikeTokenizer();
  EXPECT_FALSE(ReplyThoughts(pb::GenerateRequest(), tok.get(), ChatFormat::kChatMl));
  EXPECT_FALSE(ReplyThoughts(Hi(), tok.get(), ChatFormat::kLlama3));
  EXPECT_FALSE(ReplyThoughts(Hi(), nullptr, ChatFormat::kChatMl));
  auto splitter = ReplyThoughts(Hi(), tok.get(), ChatFormat::kChatMl);
  ASSERT_TRUE(splitter.has_value());
  pb::GenerateResponse first;
  first.set_text("<think>\nHm, a greeting.");
  SplitThought(*splitter, false, &first);
  EXPECT_EQ(first.reasoning(), "Hm, a greeting.");
  EXPECT_EQ(first.text(), "");
  pb::GenerateResponse last;
  last.set_text("\n</think>\n\nHello!");
  SplitThought(*splitter, true, &last);
  EXPECT_EQ(last.reasoning(), "");
  EXPECT_EQ(last.text(), "Hello!");
}

}  // namespace
}  // namespace ringserve::server
