// Anthropic's Messages API without a server: request bodies into a chat GenerateRequest, and
// Generate streams into the message object and its events.
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "common/openai/messages_renderer.h"
#include "common/openai/messages_request.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/unit/router/typed_events.h"

namespace ringserve::openai {
namespace {

namespace pb = ringserve::v1;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Json = nlohmann::json;
using testing::TypedEvents;
using testing::TypesOf;

TEST(MessagesRequestTest, TheSystemPromptBlocksAndToolsBecomeTheChat) {
  auto call = ParseMessagesRequest(R"({
      "model": "m", "max_tokens": 64, "system": [{"type": "text", "text": "Be brief."}],
      "messages": [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": [
          {"type": "thinking", "thinking": "hm", "signature": "s"},
          {"type": "text", "text": "Checking."},
          {"type": "tool_use", "id": "t1", "name": "get", "input": {"city": "Oslo"}}]},
        {"role": "user", "content": [
          {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "9C"}]},
          {"type": "tool_result", "tool_use_id": "t2", "content": "down", "is_error": true},
          {"type": "text", "text": "Thanks"}]}],
      "tools": [{"name": "get", "description": "d", "input_schema": {"type": "object"}}],
      "tool_choice": {"type": "tool", "name": "get", "disable_parallel_tool_use": true},
      "stop_sequences": ["END"], "temperature": 0.5, "top_k": 4, "stream": true,
      "thinking": {"type": "enabled", "budget_tokens": 1024}, "metadata": {"user_id": "u"}})");
  ASSERT_TRUE(call.ok()) << call.status();
  EXPECT_EQ(call->model, "m");
  EXPECT_TRUE(call->stream);
  const pb::GenerateRequest& r = call->request;
  EXPECT_EQ(r.stop().max_tokens(), 64);
  EXPECT_THAT(r.stop().stop(), ElementsAre("END"));
  EXPECT_FLOAT_EQ(r.sampling().temperature(), 0.5F);
  EXPECT_EQ(r.sampling().top_k(), 4);
  const pb::Chat& chat = r.chat();
  ASSERT_EQ(chat.messages_size(), 6);
  EXPECT_EQ(chat.messages(0).role(), "system");
  EXPECT_EQ(chat.messages(0).content(), "Be brief.");
  EXPECT_EQ(chat.messages(1).content(), "Weather?");
  // The thought is left out; the text and the call are one assistant message.
  EXPECT_EQ(chat.messages(2).role(), "assistant");
  EXPECT_EQ(chat.messages(2).content(), "Checking.");
  ASSERT_EQ(chat.messages(2).tool_calls_size(), 1);
  EXPECT_EQ(chat.messages(2).tool_calls(0).id(), "t1");
  EXPECT_EQ(Json::parse(chat.messages(2).tool_calls(0).arguments()),
            Json::parse(R"({"city": "Oslo"})"));
  // Results first, as tool messages, then the user's text.
  EXPECT_EQ(chat.messages(3).role(), "tool");
  EXPECT_EQ(chat.messages(3).tool_call_id(), "t1");
  EXPECT_EQ(chat.messages(3).content(), "9C");
  EXPECT_EQ(chat.messages(4).content(), "Error: down");
  EXPECT_EQ(chat.messages(5).role(), "user");
  EXPECT_EQ(chat.messages(5).content(), "Thanks");
  ASSERT_EQ(chat.tools_size(), 1);
  EXPECT_EQ(Json::parse(chat.tools(0).parameters()), Json::parse(R"({"type": "object"})"));
  EXPECT_EQ(chat.tool_choice().mode(), pb::ToolChoice::MODE_REQUIRED);
  EXPECT_EQ(chat.tool_choice().name(), "get");
  EXPECT_FALSE(chat.parallel_tool_calls());
  EXPECT_TRUE(chat.enable_thinking());
  EXPECT_TRUE(chat.stream_tool_calls());

  auto count = ParseCountTokensRequest(
      R"({"model": "m", "system": "s", "messages": [{"role": "user", "content": "hi"}]})");
  ASSERT_TRUE(count.ok()) << count.status();
  EXPECT_EQ(count->request.chat().messages_size(), 2);
}

TEST(MessagesRequestTest, WhatCannotBeHonouredIsRefusedByName) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({})", "messages"},
      {R"({"messages": [{"role": "system", "content": "x"}]})", "messages[0].role"},
      {R"({"messages": [{"role": "user", "content": 3}]})", "messages[0].content"},
      {R"({"messages": [{"role": "user", "content": [{"type": "image"}]}]})",
       "messages[0].content[0].type"},
      {R"({"messages": [{"role": "user", "content": [{"type": "tool_use", "id": "x"}]}]})",
       "messages[0].content[0].type"},
      {R"({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "bash_20250124",
           "name": "bash"}]})",
       "tools[0].type"},
      {R"({"messages": [{"role": "user", "content": "x"}], "tool_choice": {"type": "some"}})",
       "tool_choice.type"},
      {R"({"messages": [{"role": "user", "content": "x"}], "thinking": {"type": "on"}})",
       "thinking.type"},
      {R"({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0})", "max_tokens"},
  };
  for (const auto& [body, field] : cases) {
    auto call = ParseMessagesRequest(body);
    ASSERT_FALSE(call.ok()) << body;
    EXPECT_EQ(call.status().code(), absl::StatusCode::kInvalidArgument) << body;
    EXPECT_THAT(call.status().message(), HasSubstr(field)) << body;
  }
}

pb::GenerateResponse Final(pb::FinishReason reason, const std::string& stop_match = "") {
  pb::GenerateResponse m;
  m.mutable_final()->set_finish_reason(reason);
  m.mutable_final()->set_stop_match(stop_match);
  m.mutable_final()->mutable_usage()->set_prompt_tokens(10);
  m.mutable_final()->mutable_usage()->set_cached_tokens(4);
  m.mutable_final()->mutable_usage()->set_completion_tokens(3);
  return m;
}

MessagesMeta Meta() { return MessagesMeta{.id = std::string("msg_1"), .model = std::string("m")}; }

TEST(MessagesRendererTest, AWholeMessageHoldsItsBlocksStopReasonAndUsage) {
  MessagesRenderer renderer(Meta());
  pb::GenerateResponse thought;
  thought.set_reasoning("hm");
  renderer.Accumulate(0, thought);
  pb::GenerateResponse text;
  text.set_text("Hi");
  renderer.Accumulate(0, text);
  pb::GenerateResponse call;
  pb::ToolCall* whole = call.add_tool_calls();
  whole->set_id("toolu_1");
  whole->set_name("get");
  whole->set_arguments(R"({"city": "Oslo"})");
  renderer.Accumulate(0, call);
  renderer.Accumulate(0, Final(pb::FINISH_REASON_TOOL_CALLS));
  const Json body = Json::parse(renderer.Body());
  EXPECT_EQ(body["id"], "msg_1");
  EXPECT_EQ(body["type"], "message");
  EXPECT_EQ(body["role"], "assistant");
  ASSERT_EQ(body["content"].size(), 3U);
  EXPECT_EQ(body["content"][0], Json::parse(R"({"type": "thinking", "thinking": "hm",
                                                 "signature": ""})"));
  EXPECT_EQ(body["content"][1], Json::parse(R"({"type": "text", "text": "Hi"})"));
  EXPECT_EQ(body["content"][2]["type"], "tool_use");
  EXPECT_EQ(body["content"][2]["id"], "toolu_1");
  EXPECT_EQ(body["content"][2]["input"]["city"], "Oslo");
  EXPECT_EQ(body["stop_reason"], "tool_use");
  EXPECT_TRUE(body["stop_sequence"].is_null());
  // Cached input is counted apart from what was computed.
  EXPECT_EQ(body["usage"]["input_tokens"], 6);
  EXPECT_EQ(body["usage"]["cache_read_input_tokens"], 4);
  EXPECT_EQ(body["usage"]["output_tokens"], 3);

  MessagesRenderer stopped(Meta());
  stopped.Accumulate(0, Final(pb::FINISH_REASON_STOP_STRING, "END"));
  const Json at_stop = Json::parse(stopped.Body());
  EXPECT_EQ(at_stop["stop_reason"], "stop_sequence");
  EXPECT_EQ(at_stop["stop_sequence"], "END");
  EXPECT_EQ(at_stop["content"][0]["text"], "");
}

TEST(MessagesRendererTest, AStreamIsBlocksOfDeltasBetweenStartAndStop) {
  MessagesRenderer renderer(Meta());
  pb::GenerateResponse text;
  text.set_text("Hi");
  std::string stream = renderer.StreamEvents(0, text);
  pb::GenerateResponse opening;
  pb::ToolCallDelta* d = opening.add_tool_call_deltas();
  d->set_index(0);
  d->set_id("toolu_1");
  d->set_name("get");
  d->set_arguments(R"({"city": )");
  stream += renderer.StreamEvents(0, opening);
  pb::GenerateResponse rest;
  rest.add_tool_call_deltas()->set_arguments(R"("Oslo"})");
  pb::ToolCall* whole = rest.add_tool_calls();
  whole->set_id("toolu_1");
  whole->set_name("get");
  whole->set_arguments(R"({"city": "Oslo"})");
  stream += renderer.StreamEvents(0, rest);
  stream += renderer.StreamEvents(0, Final(pb::FINISH_REASON_TOOL_CALLS));
  stream += renderer.StreamEnd(absl::OkStatus());
  const auto events = TypedEvents(stream);
  EXPECT_THAT(
      TypesOf(events),
      ElementsAre("message_start", "content_block_start", "content_block_delta",
                  "content_block_stop", "content_block_start", "content_block_delta",
                  "content_block_delta", "content_block_stop", "message_delta", "message_stop"));
  EXPECT_TRUE(events[0].second["message"]["content"].empty());
  EXPECT_TRUE(events[0].second["message"]["stop_reason"].is_null());
  EXPECT_EQ(events[2].second["delta"], Json::parse(R"({"type": "text_delta", "text": "Hi"})"));
  EXPECT_EQ(events[4].second["index"], 1);
  EXPECT_EQ(events[4].second["content_block"]["input"], Json::object());
  EXPECT_EQ(events[5].second["delta"]["type"], "input_json_delta");
  EXPECT_EQ(Json::parse(events[5].second["delta"]["partial_json"].get<std::string>() +
                        events[6].second["delta"]["partial_json"].get<std::string>()),
            Json::parse(R"({"city": "Oslo"})"));
  EXPECT_EQ(events[8].second["delta"]["stop_reason"], "tool_use");
  EXPECT_EQ(events[8].second["usage"]["output_tokens"], 3);

  MessagesRenderer failed(Meta());
  const auto error = TypedEvents(failed.StreamEnd(absl::UnavailableError("no worker")));
  ASSERT_EQ(error.size(), 2U);
  EXPECT_EQ(error[1].first, "error");
  EXPECT_EQ(error[1].second["error"]["type"], "overloaded_error");
  EXPECT_EQ(error[1].second["error"]["message"], "no worker");
  EXPECT_EQ(Json::parse(failed.ErrorJson(absl::InvalidArgumentError("x")))["error"]["type"],
            "invalid_request_error");
}

}  // namespace
}  // namespace ringserve::openai
