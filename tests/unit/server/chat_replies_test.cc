// Chat requests to a model that thinks first: the generation prompt closes the thought when
// the request switches it off or constrains the reply, and the streamed thought leaves the
// text for GenerateResponse.reasoning.
#include "worker/server/chat_replies.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "tests/unit/tokenizer/chat_vocabulary.h"
#include "worker/grammar/matcher.h"
#include "worker/server/request_conversion.h"
#include "worker/server/tool_requests.h"

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

// Asked for explicitly, a thinking model thinks before a JSON format's value: the prompt
// opens the thought, and the format binds once "</think>" is written.
TEST(ChatRepliesTest, AnExplicitThoughtComesBeforeAJsonFormat) {
  const auto tok = Qwen3LikeTokenizer();
  const ModelLimits limits{
      .vocab_size = tok->vocab_size(), .context_length = 512, .chat_format = ChatFormat::kChatMl};
  pb::GenerateRequest request = Hi();
  request.mutable_response_format()->mutable_json_schema()->set_schema(
      R"({"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]})");
  request.mutable_chat()->set_enable_thinking(true);
  EXPECT_TRUE(ReplyMayThink(request));
  auto job = ToJobRequest(request, tok.get(), limits);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_TRUE(tok->Decode(job->tokens).ends_with("assistant\n<think>\n"))
      << tok->Decode(job->tokens);
  ASSERT_TRUE(job->format_trigger.has_value());
  EXPECT_EQ(job->format_trigger->text, "</think>");
  EXPECT_TRUE(job->format_trigger->once);
  // The bound text: the thought's close, a little whitespace, then the value.
  grammar::Matcher value(job->response_format);
  EXPECT_TRUE(value.Advance(std::string_view("</think>\n\n{\"n\": 4}")));
  EXPECT_TRUE(value.IsFinished());
  grammar::Matcher prose(job->response_format);
  EXPECT_FALSE(prose.Advance(std::string_view("</think>\n\nThe answer")));
  // The reply's thought is split from the value that follows it.
  auto splitter = ReplyThoughts(request, tok.get(), ChatFormat::kChatMl);
  ASSERT_TRUE(splitter.has_value());
  tokenizer::ThoughtSplitter::Output out = splitter->Feed("Count.\n</think>\n\n{\"n\": 4}");
  EXPECT_EQ(out.thought, "Count.");
  EXPECT_EQ(out.answer, "{\"n\": 4}");

  // A regex or grammar format cannot follow a thought; unasked, the thought stays closed.
  pb::GenerateRequest regex = request;
  regex.mutable_response_format()->set_regex("[0-9]+");
  auto refused = ToJobRequest(regex, tok.get(), limits);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.status().message()),
              ::testing::HasSubstr("chat.enable_thinking"));
  pb::GenerateRequest unasked = request;
  unasked.mutable_chat()->clear_enable_thinking();
  job = ToJobRequest(unasked, tok.get(), limits);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_FALSE(job->format_trigger.has_value());
  EXPECT_TRUE(tok->Decode(job->tokens).ends_with("<think>\n\n</think>\n\n"));
}

// Asked for explicitly, the thought also comes before the calls MODE_REQUIRED holds the reply
// to.
TEST(ChatRepliesTest, AnExplicitThoughtComesBeforeRequiredCalls) {
  const auto tok = Qwen3LikeTokenizer();
  const ModelLimits limits{
      .vocab_size = tok->vocab_size(), .context_length = 4096, .chat_format = ChatFormat::kChatMl};
  pb::GenerateRequest request = Hi();
  request.mutable_chat()->add_tools()->set_name("now");
  request.mutable_chat()->mutable_tool_choice()->set_mode(pb::ToolChoice::MODE_REQUIRED);
  auto closed = ToJobRequest(request, tok.get(), limits);
  ASSERT_TRUE(closed.ok()) << closed.status();
  EXPECT_FALSE(closed->format_trigger.has_value());
  EXPECT_TRUE(tok->Decode(closed->tokens).ends_with("<think>\n\n</think>\n\n"));
  request.mutable_chat()->set_enable_thinking(true);
  auto job = ToJobRequest(request, tok.get(), limits);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_TRUE(tok->Decode(job->tokens).ends_with("assistant\n<think>\n"));
  ASSERT_TRUE(job->format_trigger.has_value());
  EXPECT_EQ(job->format_trigger->text, "</think>");
  grammar::Matcher calls(job->response_format);
  EXPECT_TRUE(calls.Advance(std::string_view(
      "</think>\n\n<tool_call>\n{\"name\": \"now\", \"arguments\": {}}\n</tool_call>")));
  EXPECT_TRUE(calls.IsComplete());
  grammar::Matcher prose(job->response_format);
  EXPECT_FALSE(prose.Advance(std::string_view("</think>\n\nIt is noon.")));
  // A response format beside required calls is refused, thought or not.
  request.mutable_response_format()->mutable_json_object();
  EXPECT_THAT(std::string(ToJobRequest(request, tok.get(), limits).status().message()),
              ::testing::HasSubstr("a reply that must call tools has the calls' format"));
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

// A continued reply: the prompt ends with the client's start, nothing may constrain or parse
// what follows it as a reply of its own, and its thought picks up where the start stands.
TEST(ChatRepliesTest, AContinuedReplyEndsThePromptAndOnlyItsContinuationIsSplit) {
  const auto tok = Qwen3LikeTokenizer();
  const ModelLimits limits{
      .vocab_size = tok->vocab_size(), .context_length = 4096, .chat_format = ChatFormat::kChatMl};
  pb::GenerateRequest request = Hi();
  pb::ChatMessage* start = request.mutable_chat()->add_messages();
  start->set_role("assistant");
  start->set_content("<think>\nGreet");
  request.mutable_chat()->set_continue_final_message(true);
  request.mutable_chat()->add_tools()->set_name("now");
  auto job = ToJobRequest(request, tok.get(), limits);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_TRUE(tok->Decode(job->tokens).ends_with("assistant\n<think>\nGreet"))
      << tok->Decode(job->tokens);
  // Tools are offered, but the continuation is text: no call trigger, no parser.
  EXPECT_EQ(job->response_format, nullptr);
  EXPECT_FALSE(job->format_trigger.has_value());
  EXPECT_FALSE(ReplyParser(request, tok.get(), ChatFormat::kChatMl).has_value());
  auto splitter = ReplyThoughts(request, tok.get(), ChatFormat::kChatMl);
  ASSERT_TRUE(splitter.has_value());
  tokenizer::ThoughtSplitter::Output out = splitter->Feed(" back.</think>\n\nHello");
  EXPECT_EQ(out.thought, " back.");
  EXPECT_EQ(out.answer, "Hello");

  // Constraints that bind from the reply's first token are refused.
  pb::GenerateRequest json = request;
  json.mutable_chat()->clear_tools();
  json.mutable_response_format()->mutable_json_object();
  auto refused = ToJobRequest(json, tok.get(), limits);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.status().message()),
              ::testing::HasSubstr("chat.continue_final_message: a continued reply cannot be "
                                   "held to a response_format"));
  pb::GenerateRequest required = request;
  required.mutable_chat()->mutable_tool_choice()->set_mode(pb::ToolChoice::MODE_REQUIRED);
  refused = ToJobRequest(required, tok.get(), limits);
  EXPECT_THAT(std::string(refused.status().message()),
              ::testing::HasSubstr("tool_choice MODE_REQUIRED"));
  // The last message must be the assistant's.
  pb::GenerateRequest user_last = Hi();
  user_last.mutable_chat()->set_continue_final_message(true);
  refused = ToJobRequest(user_last, tok.get(), limits);
  EXPECT_THAT(std::string(refused.status().message()),
              ::testing::HasSubstr("chat.messages[0]: continue_final_message needs"));
}

// Magistral (Mistral tokenizer v13) opens its own thought with the [THINK] control token: the
// reply's text spells both tags, and the thought leaves it as with <think>; a call after the
// thought is still a call.
TEST(ChatRepliesTest, MagistralsThoughtTagsAreSpelledAndSplitOut) {
  using tokenizer::testing::kArgs;
  using tokenizer::testing::kThinkEndTag;
  using tokenizer::testing::kThinkTag;
  using tokenizer::testing::kToolCalls;
  const auto tok = tokenizer::testing::MagistralTokenizer();
  const ModelLimits limits{
      .vocab_size = tok->vocab_size(), .context_length = 512, .chat_format = ChatFormat::kMistral};
  EXPECT_EQ(tokenizer::ThinkingOf(*tok, ChatFormat::kMistral), tokenizer::Thinking::kNone);
  auto job = ToJobRequest(Hi(), tok.get(), limits);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_THAT(job->spelled_control_ids, ::testing::ElementsAre(kThinkTag, kThinkEndTag));
  pb::GenerateRequest with_tool = Hi();
  with_tool.mutable_chat()->add_tools()->set_name("now");
  auto tool_job = ToJobRequest(with_tool, tok.get(), limits);
  ASSERT_TRUE(tool_job.ok()) << tool_job.status();
  EXPECT_THAT(tool_job->spelled_control_ids,
              ::testing::ElementsAre(kToolCalls, kArgs, kThinkTag, kThinkEndTag));
  EXPECT_FALSE(
      ReplyThoughts(Hi(), tokenizer::testing::MistralTokenizer(true).get(), ChatFormat::kMistral)
          .has_value());

  auto thoughts = ReplyThoughts(with_tool, tok.get(), ChatFormat::kMistral);
  auto calls = ReplyParser(with_tool, tok.get(), ChatFormat::kMistral);
  ASSERT_TRUE(thoughts.has_value());
  ASSERT_TRUE(calls.has_value());
  std::string text;
  std::string reasoning;
  int num_calls = 0;
  const std::string reply = "[THINK]The time, then.[/THINK]Sure.[TOOL_CALLS]now[ARGS]{}";
  for (size_t i = 0; i < reply.size(); i += 5) {
    pb::GenerateResponse message;
    message.set_text(reply.substr(i, 5));
    const bool last = i + 5 >= reply.size();
    if (last) message.mutable_final()->set_finish_reason(pb::FINISH_REASON_EOS);
    SplitThought(*thoughts, last, &message);
    ParseToolCalls(*calls, last, &message);
    text += message.text();
    reasoning += message.reasoning();
    num_calls += message.tool_calls_size();
    if (last) {
      EXPECT_EQ(message.final().finish_reason(), pb::FINISH_REASON_TOOL_CALLS);
    }
  }
  EXPECT_EQ(reasoning, "The time, then.");
  EXPECT_EQ(text, "Sure.");
  EXPECT_EQ(num_calls, 1);
}

}  // namespace
}  // namespace ringserve::server
