// OpenAI's Responses API without a server: request bodies into a chat GenerateRequest, and
// Generate streams into the response object and its typed events.
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "common/openai/responses_renderer.h"
#include "common/openai/responses_request.h"
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

// --- requests ---

TEST(ResponsesRequestTest, InstructionsAndAStringInputAreASystemAndAUserMessage) {
  auto call = ParseResponsesRequest(R"({
      "model": "m", "input": "Hi", "instructions": "Be brief.", "max_output_tokens": 9,
      "temperature": 0.5, "top_p": 0.9, "seed": 3, "metadata": {"k": "v"}})");
  ASSERT_TRUE(call.ok()) << call.status();
  EXPECT_EQ(call->model, "m");
  EXPECT_TRUE(call->store);
  EXPECT_FALSE(call->stream);
  EXPECT_TRUE(call->previous_session.empty());
  const pb::GenerateRequest& r = call->request;
  ASSERT_EQ(r.chat().messages_size(), 2);
  EXPECT_EQ(r.chat().messages(0).role(), "system");
  EXPECT_EQ(r.chat().messages(0).content(), "Be brief.");
  EXPECT_EQ(r.chat().messages(1).role(), "user");
  EXPECT_EQ(r.chat().messages(1).content(), "Hi");
  EXPECT_EQ(r.stop().max_tokens(), 9);
  EXPECT_FLOAT_EQ(r.sampling().temperature(), 0.5F);
  EXPECT_FLOAT_EQ(r.sampling().top_p(), 0.9F);
  EXPECT_EQ(r.sampling().seed(), 3U);
  EXPECT_FALSE(r.append());
  EXPECT_EQ(r.logprobs(), 0);
  // The settings the response repeats, given or defaulted.
  const Json settings = Json::parse(call->settings.dump());
  EXPECT_EQ(settings["instructions"], "Be brief.");
  EXPECT_EQ(settings["max_output_tokens"], 9);
  EXPECT_EQ(settings["metadata"]["k"], "v");
  EXPECT_EQ(settings["store"], true);
  EXPECT_EQ(settings["tool_choice"], "auto");
  EXPECT_EQ(settings["text"]["format"]["type"], "text");
  EXPECT_TRUE(settings["previous_response_id"].is_null());
}

TEST(ResponsesRequestTest, ItemsBecomeTheConversationAToolRoundTripIncluded) {
  auto call = ParseResponsesRequest(R"({"input": [
      {"role": "developer", "content": "Sys"},
      {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "a"},
                                                      {"type": "input_text", "text": "b"}]},
      {"type": "reasoning", "id": "rs_1", "summary": []},
      {"type": "message", "role": "assistant",
       "content": [{"type": "output_text", "text": "Checking."}]},
      {"type": "function_call", "call_id": "c1", "name": "get", "arguments": "{\"x\":1}"},
      {"type": "function_call", "call_id": "c2", "name": "get", "arguments": "{\"x\":2}"},
      {"type": "function_call_output", "call_id": "c1", "output": "one"},
      {"type": "function_call_output", "call_id": "c2",
       "output": [{"type": "input_text", "text": "two"}]}],
    "tools": [{"type": "function", "name": "get", "description": "d",
               "parameters": {"type": "object"}}],
    "tool_choice": {"type": "function", "name": "get"}, "parallel_tool_calls": false,
    "stream": true})");
  ASSERT_TRUE(call.ok()) << call.status();
  const pb::Chat& chat = call->request.chat();
  ASSERT_EQ(chat.messages_size(), 5);
  EXPECT_EQ(chat.messages(0).role(), "system");
  EXPECT_EQ(chat.messages(1).content(), "a\nb");
  // The thought is left out; both calls go on the assistant's message that precedes them.
  EXPECT_EQ(chat.messages(2).role(), "assistant");
  EXPECT_EQ(chat.messages(2).content(), "Checking.");
  ASSERT_EQ(chat.messages(2).tool_calls_size(), 2);
  EXPECT_EQ(chat.messages(2).tool_calls(1).id(), "c2");
  EXPECT_EQ(chat.messages(2).tool_calls(1).arguments(), "{\"x\":2}");
  EXPECT_EQ(chat.messages(3).role(), "tool");
  EXPECT_EQ(chat.messages(3).tool_call_id(), "c1");
  EXPECT_EQ(chat.messages(3).content(), "one");
  EXPECT_EQ(chat.messages(4).content(), "two");
  ASSERT_EQ(chat.tools_size(), 1);
  EXPECT_EQ(chat.tools(0).name(), "get");
  EXPECT_EQ(Json::parse(chat.tools(0).parameters()), Json::parse(R"({"type": "object"})"));
  EXPECT_EQ(chat.tool_choice().mode(), pb::ToolChoice::MODE_REQUIRED);
  EXPECT_EQ(chat.tool_choice().name(), "get");
  EXPECT_FALSE(chat.parallel_tool_calls());
  EXPECT_TRUE(chat.stream_tool_calls());
  EXPECT_EQ(Json::parse(call->settings.dump())["tools"][0]["name"], "get");
}

TEST(ResponsesRequestTest, FormatsLogprobsReasoningAndTruncation) {
  auto call = ParseResponsesRequest(R"({"input": "x",
      "text": {"format": {"type": "json_schema", "name": "n", "schema": {"type": "object"}}},
      "top_logprobs": 3, "include": ["message.output_text.logprobs"],
      "reasoning": {"effort": "none"}, "truncation": "auto", "store": false})");
  ASSERT_TRUE(call.ok()) << call.status();
  EXPECT_EQ(Json::parse(call->request.response_format().json_schema().schema()),
            Json::parse(R"({"type": "object"})"));
  EXPECT_EQ(call->logprobs, 3);
  EXPECT_EQ(call->request.logprobs(), 3);
  EXPECT_FALSE(call->request.chat().enable_thinking());
  EXPECT_EQ(call->request.truncate_prompt_tokens(), -1);
  EXPECT_FALSE(call->store);

  // "include" alone asks for each token's own logprob; what agents add besides changes nothing.
  auto own = ParseResponsesRequest(R"({"input": "x", "include": [
      "reasoning.encrypted_content", "message.output_text.logprobs"]})");
  ASSERT_TRUE(own.ok()) << own.status();
  EXPECT_EQ(own->logprobs, 0);
  EXPECT_EQ(own->request.logprobs(), 1);
}

TEST(ResponsesRequestTest, APreviousResponseNamesItsSession) {
  auto call = ParseResponsesRequest(R"({"input": "x", "previous_response_id": "resp_ab12-f3"})");
  ASSERT_TRUE(call.ok()) << call.status();
  EXPECT_EQ(call->previous_session, "resp_ab12#f3");
  EXPECT_EQ(ResponseIdOfSession("resp_ab12#f3"), "resp_ab12-f3");
  EXPECT_EQ(*SessionOfResponseId("resp_ab12", "id"), "resp_ab12");
  for (const char* bad : {"ab12", "resp_", "resp_a#b", "resp_a/b", "resp_a b"}) {
    EXPECT_FALSE(SessionOfResponseId(bad, "id").ok()) << bad;
  }
  // A stored conversation cannot lose its start.
  auto truncated = ParseResponsesRequest(
      R"({"input": "x", "previous_response_id": "resp_ab", "truncation": "auto"})");
  ASSERT_FALSE(truncated.ok());
  EXPECT_THAT(truncated.status().message(), HasSubstr("truncation"));
}

TEST(ResponsesRequestTest, WhatCannotBeHonouredIsRefusedByName) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({})", "input"},
      {R"({"input": []})", "input"},
      {R"({"input": [{"content": "x"}]})", "input[0].role"},
      {R"({"input": [{"role": "robot", "content": "x"}]})", "input[0].role"},
      {R"({"input": [{"role": "user", "content": [{"type": "input_image"}]}]})",
       "input[0].content[0].type"},
      {R"({"input": [{"type": "item_reference", "id": "x"}]})", "input[0].type"},
      {R"({"input": [{"type": "function_call", "name": "f"}]})", "input[0].call_id"},
      {R"({"input": "x", "tools": [{"type": "web_search"}]})", "tools[0].type"},
      {R"({"input": "x", "tool_choice": "maybe"})", "tool_choice"},
      {R"({"input": "x", "text": {"format": {"type": "xml"}}})", "text.format.type"},
      {R"({"input": "x", "include": [1]})", "include"},
      {R"({"input": "x", "background": true})", "background"},
      {R"({"input": "x", "conversation": "c"})", "conversation"},
      {R"({"input": "x", "reasoning": {"effort": "max"}})", "reasoning.effort"},
      {R"({"input": "x", "truncation": "middle"})", "truncation"},
      {R"({"input": "x", "max_output_tokens": 0})", "max_output_tokens"},
      {R"({"input": "x", "metadata": {"k": 1}})", "metadata.k"},
      {R"({"input": "x", "previous_response_id": "chatcmpl-1"})", "previous_response_id"},
  };
  for (const auto& [body, field] : cases) {
    auto call = ParseResponsesRequest(body);
    ASSERT_FALSE(call.ok()) << body;
    EXPECT_EQ(call.status().code(), absl::StatusCode::kInvalidArgument) << body;
    EXPECT_THAT(call.status().message(), HasSubstr(field)) << body;
  }
}

// --- responses ---

ResponsesMeta Meta(std::optional<int> logprobs = std::nullopt) {
  // Strings built whole: GCC 12 warns falsely on assigning a literal here (-Wrestrict).
  return ResponsesMeta{.id = std::string("resp_ab"),
                       .created_at = 1700000000,
                       .model = std::string("m"),
                       .logprobs = logprobs,
                       .settings = OrderedJson{{"instructions", nullptr}, {"store", true}}};
}

pb::GenerateResponse Text(const std::string& text) {
  pb::GenerateResponse m;
  m.set_text(text);
  m.add_token_ids(1);
  return m;
}

pb::GenerateResponse Thought(const std::string& text) {
  pb::GenerateResponse m;
  m.set_reasoning(text);
  m.add_token_ids(2);
  return m;
}

pb::GenerateResponse Final(pb::FinishReason reason) {
  pb::GenerateResponse m;
  m.mutable_final()->set_finish_reason(reason);
  m.mutable_final()->mutable_usage()->set_prompt_tokens(10);
  m.mutable_final()->mutable_usage()->set_cached_tokens(4);
  m.mutable_final()->mutable_usage()->set_completion_tokens(3);
  return m;
}

TEST(ResponsesRendererTest, AWholeResponseHoldsTheThoughtTheTextAndTheUsage) {
  ResponsesRenderer renderer(Meta());
  renderer.Accumulate(0, Thought("Hmm"));
  renderer.Accumulate(0, Text("Hel"));
  renderer.Accumulate(0, Text("lo"));
  renderer.Accumulate(0, Final(pb::FINISH_REASON_EOS));
  const Json body = Json::parse(renderer.Body());
  EXPECT_EQ(body["id"], "resp_ab");
  EXPECT_EQ(body["object"], "response");
  EXPECT_EQ(body["status"], "completed");
  EXPECT_EQ(body["model"], "m");
  EXPECT_EQ(body["store"], true);
  EXPECT_TRUE(body["incomplete_details"].is_null());
  ASSERT_EQ(body["output"].size(), 2U);
  EXPECT_EQ(body["output"][0]["type"], "reasoning");
  EXPECT_EQ(body["output"][0]["content"][0]["text"], "Hmm");
  const Json& message = body["output"][1];
  EXPECT_EQ(message["type"], "message");
  EXPECT_EQ(message["role"], "assistant");
  EXPECT_EQ(message["status"], "completed");
  EXPECT_EQ(message["content"][0]["type"], "output_text");
  EXPECT_EQ(message["content"][0]["text"], "Hello");
  EXPECT_FALSE(message["content"][0].contains("logprobs"));
  EXPECT_NE(body["output"][0]["id"], message["id"]);
  EXPECT_EQ(body["usage"]["input_tokens"], 10);
  EXPECT_EQ(body["usage"]["input_tokens_details"]["cached_tokens"], 4);
  EXPECT_EQ(body["usage"]["output_tokens"], 3);
  EXPECT_EQ(body["usage"]["output_tokens_details"]["reasoning_tokens"], 1);
  EXPECT_EQ(body["usage"]["total_tokens"], 13);
}

TEST(ResponsesRendererTest, ARunOutReplyIsIncompleteAndCarriesItsLogprobs) {
  ResponsesRenderer renderer(Meta(/*logprobs=*/1));
  pb::GenerateResponse m = Text("Hi");
  pb::PositionLogprobs* p = m.add_logprobs();
  p->mutable_chosen()->set_token("Hi");
  p->mutable_chosen()->set_logprob(-0.5F);
  pb::TokenLogprob* alternative = p->add_top();
  alternative->set_token("Yo");
  alternative->set_logprob(-1.5F);
  renderer.Accumulate(0, m);
  renderer.Accumulate(0, Final(pb::FINISH_REASON_MAX_TOKENS));
  const Json body = Json::parse(renderer.Body());
  EXPECT_EQ(body["status"], "incomplete");
  EXPECT_EQ(body["incomplete_details"]["reason"], "max_output_tokens");
  EXPECT_EQ(body["output"][0]["status"], "incomplete");
  const Json& logprobs = body["output"][0]["content"][0]["logprobs"];
  ASSERT_EQ(logprobs.size(), 1U);
  EXPECT_EQ(logprobs[0]["token"], "Hi");
  EXPECT_EQ(logprobs[0]["logprob"], -0.5);
  EXPECT_EQ(logprobs[0]["top_logprobs"][0]["token"], "Yo");
}

TEST(ResponsesRendererTest, AStreamOpensEachItemClosesItAndCompletes) {
  ResponsesRenderer renderer(Meta());
  std::string stream = renderer.StreamEvents(0, Thought("Hmm"));
  stream += renderer.StreamEvents(0, Text("Hel"));
  stream += renderer.StreamEvents(0, Text("lo"));
  stream += renderer.StreamEvents(0, Final(pb::FINISH_REASON_EOS));
  stream += renderer.StreamEnd(absl::OkStatus());
  const auto events = TypedEvents(stream);
  EXPECT_THAT(
      TypesOf(events),
      ElementsAre("response.created", "response.in_progress", "response.output_item.added",
                  "response.content_part.added", "response.reasoning_text.delta",
                  "response.reasoning_text.done", "response.content_part.done",
                  "response.output_item.done", "response.output_item.added",
                  "response.content_part.added", "response.output_text.delta",
                  "response.output_text.delta", "response.output_text.done",
                  "response.content_part.done", "response.output_item.done", "response.completed"));
  for (size_t i = 0; i < events.size(); ++i) EXPECT_EQ(events[i].second["sequence_number"], i);
  EXPECT_EQ(events[0].second["response"]["status"], "in_progress");
  EXPECT_TRUE(events[0].second["response"]["output"].empty());
  EXPECT_TRUE(events[0].second["response"]["usage"].is_null());
  const Json& added = events[8].second;
  EXPECT_EQ(added["output_index"], 1);
  EXPECT_EQ(added["item"]["status"], "in_progress");
  EXPECT_TRUE(added["item"]["content"].empty());
  EXPECT_EQ(events[10].second["delta"], "Hel");
  EXPECT_EQ(events[10].second["item_id"], added["item"]["id"]);
  EXPECT_EQ(events[12].second["text"], "Hello");
  EXPECT_EQ(events[14].second["item"]["content"][0]["text"], "Hello");
  const Json& completed = events.back().second["response"];
  EXPECT_EQ(completed["status"], "completed");
  EXPECT_EQ(completed["output"][1]["content"][0]["text"], "Hello");
  EXPECT_EQ(completed["usage"]["total_tokens"], 13);
}

TEST(ResponsesRendererTest, StreamedCallsAreFunctionCallItemsWithWholeCharacters) {
  ResponsesRenderer renderer(Meta());
  std::string stream = renderer.StreamEvents(0, Text("Let me check."));
  pb::GenerateResponse opening;
  pb::ToolCallDelta* d = opening.add_tool_call_deltas();
  d->set_index(0);
  d->set_id("call_x");
  d->set_name("get");
  d->set_arguments("{\"a\":\"caf\xC3");  // split inside "é"
  stream += renderer.StreamEvents(0, opening);
  pb::GenerateResponse rest;
  rest.add_tool_call_deltas()->set_arguments("\xA9\"}");
  pb::ToolCall* whole = rest.add_tool_calls();
  whole->set_id("call_x");
  whole->set_name("get");
  whole->set_arguments("{\"a\":\"caf\xC3\xA9\"}");
  stream += renderer.StreamEvents(0, rest);
  // A second call that arrives whole, without deltas.
  pb::GenerateResponse second;
  pb::ToolCall* other = second.add_tool_calls();
  other->set_id("call_y");
  other->set_name("put");
  other->set_arguments("{}");
  stream += renderer.StreamEvents(0, second);
  stream += renderer.StreamEvents(0, Final(pb::FINISH_REASON_TOOL_CALLS));
  stream += renderer.StreamEnd(absl::OkStatus());
  const auto events = TypedEvents(stream);
  std::vector<std::string> deltas;
  std::vector<Json> done_items;
  for (const auto& [type, data] : events) {
    if (type == "response.function_call_arguments.delta") deltas.push_back(data["delta"]);
    if (type == "response.output_item.done") done_items.push_back(data["item"]);
  }
  EXPECT_THAT(deltas, ElementsAre("{\"a\":\"caf", "\xC3\xA9\"}", "{}"));
  ASSERT_EQ(done_items.size(), 3U);
  EXPECT_EQ(done_items[0]["type"], "message");
  EXPECT_EQ(done_items[1]["type"], "function_call");
  EXPECT_EQ(done_items[1]["call_id"], "call_x");
  EXPECT_EQ(done_items[1]["name"], "get");
  EXPECT_EQ(done_items[1]["arguments"], "{\"a\":\"caf\xC3\xA9\"}");
  EXPECT_EQ(done_items[2]["call_id"], "call_y");
  const Json& completed = events.back().second["response"];
  ASSERT_EQ(completed["output"].size(), 3U);
  EXPECT_EQ(completed["output"][2]["name"], "put");
  EXPECT_EQ(events.back().first, "response.completed");
}

TEST(ResponsesRendererTest, AFailedStreamEndsWithAnErrorAndResponseFailed) {
  ResponsesRenderer renderer(Meta());
  std::string stream = renderer.StreamEvents(0, Text("Hi"));
  stream += renderer.StreamEnd(absl::UnavailableError("worker lost"));
  const auto events = TypedEvents(stream);
  ASSERT_GE(events.size(), 2U);
  EXPECT_EQ(events[events.size() - 2].first, "error");
  EXPECT_EQ(events[events.size() - 2].second["message"], "worker lost");
  EXPECT_EQ(events[events.size() - 2].second["code"], "UNAVAILABLE");
  const Json& failed = events.back().second["response"];
  EXPECT_EQ(events.back().first, "response.failed");
  EXPECT_EQ(failed["status"], "failed");
  EXPECT_EQ(failed["error"]["message"], "worker lost");
  EXPECT_EQ(failed["output"][0]["status"], "incomplete");

  // A reply of nothing is one empty message, whole or streamed.
  ResponsesRenderer silent(Meta());
  silent.Accumulate(0, Final(pb::FINISH_REASON_EOS));
  const Json body = Json::parse(silent.Body());
  ASSERT_EQ(body["output"].size(), 1U);
  EXPECT_EQ(body["output"][0]["content"][0]["text"], "");
  ResponsesRenderer silent_stream(Meta());
  std::string quiet = silent_stream.StreamEvents(0, Final(pb::FINISH_REASON_EOS));
  quiet += silent_stream.StreamEnd(absl::OkStatus());
  EXPECT_THAT(
      TypesOf(TypedEvents(quiet)),
      ElementsAre("response.created", "response.in_progress", "response.output_item.added",
                  "response.content_part.added", "response.output_text.done",
                  "response.content_part.done", "response.output_item.done", "response.completed"));

  // A stream that failed before any message still opens with response.created.
  ResponsesRenderer empty(Meta());
  EXPECT_EQ(TypedEvents(empty.StreamEnd(absl::InternalError("x")))[0].first, "response.created");
}

}  // namespace
}  // namespace ringserve::openai
