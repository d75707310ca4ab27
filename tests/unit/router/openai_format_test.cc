// OpenAI's request bodies into ringserve.v1 requests, and Generate streams back into OpenAI's
// responses (whole and streamed), without a server.
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/openai/openai_error.h"
#include "common/openai/openai_request.h"
#include "common/openai/openai_response.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace ringserve::openai {
namespace {

namespace pb = ringserve::v1;
using ::testing::HasSubstr;
using Json = nlohmann::json;

// --- requests ---

TEST(OpenAiCompletionRequestTest, MapsOpenAisParametersAndDefaults) {
  auto call = ParseCompletionRequest(R"({
      "model": "m", "prompt": "Once upon", "temperature": 0.5, "top_p": 0.9, "seed": 7,
      "stop": "\n", "presence_penalty": 0.1, "frequency_penalty": 0.2,
      "logit_bias": {"42": -100}, "user": "u", "top_k": -1, "min_tokens": 2})");
  ASSERT_TRUE(call.ok()) << call.status();
  EXPECT_EQ(call->kind, ApiKind::kCompletion);
  EXPECT_EQ(call->model, "m");
  ASSERT_EQ(call->requests.size(), 1U);
  const pb::GenerateRequest& r = call->requests[0];
  EXPECT_EQ(r.text(), "Once upon");
  EXPECT_FLOAT_EQ(r.sampling().temperature(), 0.5F);
  EXPECT_FLOAT_EQ(r.sampling().top_p(), 0.9F);
  EXPECT_EQ(r.sampling().top_k(), 0);
  EXPECT_EQ(r.sampling().seed(), 7U);
  EXPECT_FLOAT_EQ(r.sampling().logit_bias().at(42), -100.0F);
  EXPECT_EQ(r.stop().max_tokens(), 16);  // OpenAI's default for completions
  EXPECT_EQ(r.stop().min_tokens(), 2);
  ASSERT_EQ(r.stop().stop_size(), 1);
  EXPECT_EQ(r.stop().stop(0), "\n");
  EXPECT_FALSE(call->stream);
  EXPECT_FALSE(call->logprobs.has_value());
  EXPECT_EQ(r.logprobs(), 0);
  EXPECT_FALSE(r.has_response_format());
}

TEST(OpenAiCompletionRequestTest, EachPromptOfABatchIsARequestOfItsOwn) {
  auto strings = ParseCompletionRequest(R"({"prompt": ["a", "b"], "n": 2, "logprobs": 0})");
  ASSERT_TRUE(strings.ok()) << strings.status();
  ASSERT_EQ(strings->requests.size(), 2U);
  EXPECT_EQ(strings->requests[1].text(), "b");
  EXPECT_EQ(strings->requests[1].n(), 2);
  EXPECT_EQ(strings->logprobs, 0);
  EXPECT_EQ(strings->requests[0].logprobs(), 1);  // the token's own logprob needs one

  auto ids = ParseCompletionRequest(R"({"prompt": [1, 2, 3]})");
  ASSERT_TRUE(ids.ok()) << ids.status();
  ASSERT_EQ(ids->requests.size(), 1U);
  EXPECT_THAT(ids->requests[0].tokens().ids(), ::testing::ElementsAre(1, 2, 3));

  auto nested = ParseCompletionRequest(R"({"prompt": [[1, 2], [3]], "max_tokens": 4})");
  ASSERT_TRUE(nested.ok()) << nested.status();
  ASSERT_EQ(nested->requests.size(), 2U);
  EXPECT_THAT(nested->requests[1].tokens().ids(), ::testing::ElementsAre(3));
  EXPECT_EQ(nested->requests[1].stop().max_tokens(), 4);
}

TEST(OpenAiCompletionRequestTest, BadBodiesNameTheField) {
  const struct {
    const char* body;
    const char* message;
  } cases[] = {
      {"not json", "not valid JSON"},
      {"[1]", "must be a JSON object"},
      {R"({})", "prompt: is required"},
      {R"({"prompt": []})", "prompt: must be"},
      {R"({"prompt": [1, "a"]})", "prompt[1]: must be a whole number"},
      {R"({"prompt": "x", "temperature": "hot"})", "temperature: must be a number, not string"},
      {R"({"prompt": "x", "max_tokens": 1.5})", "max_tokens: must be a whole number"},
      {R"({"prompt": "x", "max_tokens": -1})", "max_tokens: must be a whole number in [0,"},
      {R"({"prompt": "x", "n": 2, "best_of": 3})", "best_of"},
      {R"({"prompt": "x", "suffix": "y"})", "suffix: is not supported"},
      {R"({"prompt": "x", "echo": true, "logprobs": 1, "n": 2})",
       "echo: with logprobs takes n = 1"},
      {R"({"prompt": [1], "echo": true})", "echo: needs prompts given as text"},
      {R"({"prompt": "x", "logprobs": 21})", "logprobs: must be a whole number in [0, 20]"},
      {R"({"prompt": "x", "stop": [1]})", "stop[0]: must be a string"},
      {R"({"prompt": "x", "logit_bias": {"a": 1}})", "logit_bias[\"a\"]"},
      {R"({"prompt": ["a", "b"], "session_id": "s"})", "session_id"},
      {R"({"prompt": "x", "guided_regex": "a", "guided_choice": ["b"]})", "exclude one another"},
      {R"({"prompt": "x", "response_format": {"type": "yaml"}})", "response_format.type"},
  };
  for (const auto& c : cases) {
    auto call = ParseCompletionRequest(c.body);
    ASSERT_FALSE(call.ok()) << c.body;
    EXPECT_EQ(call.status().code(), absl::StatusCode::kInvalidArgument) << c.body;
    EXPECT_THAT(call.status().message(), HasSubstr(c.message)) << c.body;
  }
}

TEST(OpenAiCompletionRequestTest, GuidedParametersBecomeResponseFormats) {
  auto choice = ParseCompletionRequest(R"({"prompt": "x", "guided_choice": ["yes", "no"]})");
  ASSERT_TRUE(choice.ok()) << choice.status();
  EXPECT_THAT(choice->requests[0].response_format().choice().choices(),
              ::testing::ElementsAre("yes", "no"));
  auto schema = ParseCompletionRequest(R"({"prompt": "x", "guided_json": {"type": "object"}})");
  ASSERT_TRUE(schema.ok()) << schema.status();
  EXPECT_EQ(Json::parse(schema->requests[0].response_format().json_schema().schema()),
            Json::parse(R"({"type": "object"})"));
  auto regex = ParseCompletionRequest(R"({"prompt": "x", "guided_regex": "[0-9]+"})");
  ASSERT_TRUE(regex.ok());
  EXPECT_EQ(regex->requests[0].response_format().regex(), "[0-9]+");
}

TEST(OpenAiChatRequestTest, MapsMessagesToolsAndFormats) {
  auto call = ParseChatRequest(R"({
      "model": "m", "stream": true,
      "stream_options": {"include_usage": true, "continuous_usage_stats": true},
      "messages": [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {"role": "assistant", "content": null, "tool_calls": [
          {"id": "call_1", "type": "function",
           "function": {"name": "get", "arguments": "{\"city\":\"Oslo\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "3C"}],
      "tools": [{"type": "function", "function": {"name": "get", "description": "d",
                 "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
      "tool_choice": {"type": "function", "function": {"name": "get"}},
      "parallel_tool_calls": false,
      "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
      "logprobs": true, "top_logprobs": 3, "max_completion_tokens": 9,
      "chat_template_kwargs": {"enable_thinking": false}})");
  ASSERT_TRUE(call.ok()) << call.status();
  EXPECT_EQ(call->kind, ApiKind::kChat);
  EXPECT_TRUE(call->stream);
  EXPECT_TRUE(call->include_usage);
  EXPECT_TRUE(call->continuous_usage);
  EXPECT_EQ(call->logprobs, 3);
  ASSERT_EQ(call->requests.size(), 1U);
  const pb::GenerateRequest& r = call->requests[0];
  EXPECT_EQ(r.logprobs(), 3);
  EXPECT_EQ(r.stop().max_tokens(), 9);
  const pb::Chat& chat = r.chat();
  ASSERT_EQ(chat.messages_size(), 4);
  EXPECT_EQ(chat.messages(0).role(), "system");
  EXPECT_EQ(chat.messages(1).content(), "a\nb");
  ASSERT_EQ(chat.messages(2).tool_calls_size(), 1);
  EXPECT_EQ(chat.messages(2).tool_calls(0).id(), "call_1");
  EXPECT_EQ(chat.messages(2).tool_calls(0).arguments(), R"({"city":"Oslo"})");
  EXPECT_EQ(chat.messages(3).tool_call_id(), "call_1");
  ASSERT_EQ(chat.tools_size(), 1);
  EXPECT_EQ(Json::parse(chat.tools(0).parameters())["properties"]["city"]["type"], "string");
  EXPECT_EQ(chat.tool_choice().mode(), pb::ToolChoice::MODE_REQUIRED);
  EXPECT_EQ(chat.tool_choice().name(), "get");
  EXPECT_FALSE(chat.parallel_tool_calls());
  EXPECT_TRUE(chat.has_enable_thinking());
  EXPECT_FALSE(chat.enable_thinking());
  EXPECT_TRUE(chat.stream_tool_calls());  // streamed replies stream their calls
  EXPECT_EQ(Json::parse(r.response_format().json_schema().schema()),
            Json::parse(R"({"type":"object"})"));
  EXPECT_FALSE(r.stop().has_max_tokens() && r.stop().max_tokens() == 16);
}

TEST(OpenAiChatRequestTest, ChatHasNoDefaultMaxTokensAndRefusesWhatItCannotDo) {
  auto plain = ParseChatRequest(R"({"messages": [{"role": "user", "content": "hi"}]})");
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_FALSE(plain->requests[0].stop().has_max_tokens());
  EXPECT_FALSE(plain->requests[0].chat().stream_tool_calls());
  const struct {
    const char* body;
    const char* message;
  } cases[] = {
      {R"({})", "messages: must be a non-empty array"},
      {R"({"messages": [{"content": "x"}]})", "messages[0].role: is required"},
      {R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})",
       "messages[0].content[0].type: \"image_url\": only text parts"},
      {R"({"messages": [{"role": "user", "content": 5}]})", "messages[0].content: must be"},
      {R"({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2})",
       "top_logprobs: needs logprobs: true"},
      {R"({"messages": [{"role": "user", "content": "x"}], "tool_choice": "maybe"})",
       "tool_choice"},
      {R"({"messages": [{"role": "user", "content": "x"}], "functions": []})",
       "functions: is not supported; use tools"},
      {R"({"messages": [{"role": "user", "content": "x"}], "add_generation_prompt": false})",
       "add_generation_prompt"},
      {R"({"messages": [{"role": "user", "content": "x"}], "modalities": ["audio"]})",
       "modalities"},
      {R"({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "web"}]})",
       "tools[0].type"},
  };
  for (const auto& c : cases) {
    auto call = ParseChatRequest(c.body);
    ASSERT_FALSE(call.ok()) << c.body;
    EXPECT_THAT(call.status().message(), HasSubstr(c.message)) << c.body;
  }
}

TEST(OpenAiTokenizeRequestTest, APromptOrAChat) {
  auto prompt = ParseTokenizeRequest(R"({"prompt": "Hi", "return_token_strs": true})");
  ASSERT_TRUE(prompt.ok()) << prompt.status();
  EXPECT_EQ(prompt->request.text(), "Hi");
  EXPECT_TRUE(prompt->request.add_special_tokens());  // vLLM's default for a prompt
  EXPECT_TRUE(prompt->token_strs);
  auto chat = ParseTokenizeRequest(
      R"({"messages": [{"role": "user", "content": "Hi"}], "chat_template_kwargs": {"enable_thinking": false}})");
  ASSERT_TRUE(chat.ok()) << chat.status();
  ASSERT_EQ(chat->request.chat().messages_size(), 1);
  EXPECT_FALSE(chat->request.chat().enable_thinking());
  for (const char* body : {R"({})", R"({"prompt": "a", "messages": []})"}) {
    auto both = ParseTokenizeRequest(body);
    ASSERT_FALSE(both.ok()) << body;
    EXPECT_THAT(both.status().message(), HasSubstr("one of prompt and messages"));
  }
}

TEST(OpenAiDetokenizeRequestTest, TokensAndTheirErrors) {
  auto call = ParseDetokenizeRequest(R"({"model": "m", "tokens": [1, 2, 3]})");
  ASSERT_TRUE(call.ok()) << call.status();
  EXPECT_EQ(call->model, "m");
  EXPECT_THAT(call->request.token_ids(), ::testing::ElementsAre(1, 2, 3));
  EXPECT_FALSE(call->request.skip_special_tokens());
  for (const char* bad : {R"({})", R"({"tokens": "1 2"})", R"({"tokens": [1, -2]})",
                          R"({"tokens": [1.5]})", R"({"tokens": [1], "model": 3})"}) {
    auto refused = ParseDetokenizeRequest(bad);
    ASSERT_FALSE(refused.ok()) << bad;
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_THAT(ParseDetokenizeRequest(R"({"tokens": [1, -2]})").status().message(),
              HasSubstr("tokens[1]"));
}

TEST(OpenAiEmbeddingRequestTest, MapsInputsAndEncoding) {
  auto call = ParseEmbeddingRequest(
      R"({"model": "e", "input": ["a", [1, 2]], "dimensions": 8, "encoding_format": "base64"})");
  ASSERT_TRUE(call.ok()) << call.status();
  ASSERT_EQ(call->request.inputs_size(), 2);
  EXPECT_EQ(call->request.inputs(0).text(), "a");
  EXPECT_THAT(call->request.inputs(1).tokens().ids(), ::testing::ElementsAre(1, 2));
  EXPECT_EQ(call->request.dimensions(), 8);
  EXPECT_TRUE(call->base64);
  auto bad = ParseEmbeddingRequest(R"({"input": "a", "encoding_format": "hex"})");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("encoding_format"));
  EXPECT_FALSE(ParseEmbeddingRequest(R"({"input": []})").ok());
}

// --- responses ---

pb::GenerateResponse Message(const std::string& text, int index = 0) {
  pb::GenerateResponse m;
  m.set_text(text);
  m.set_index(index);
  m.add_token_ids(1);
  return m;
}

pb::GenerateResponse Final(pb::FinishReason reason, int prompt, int completion, int index = 0) {
  pb::GenerateResponse m;
  m.set_index(index);
  m.mutable_final()->set_finish_reason(reason);
  m.mutable_final()->mutable_usage()->set_prompt_tokens(prompt);
  m.mutable_final()->mutable_usage()->set_completion_tokens(completion);
  m.mutable_final()->mutable_usage()->set_cached_tokens(prompt / 2);
  return m;
}

ResponseMeta Meta(ApiKind kind, int n = 1) {
  return ResponseMeta{.kind = kind,
                      .id = std::string("id-1"),
                      .created = 1700000000,
                      .model = std::string("m"),
                      .n = n,
                      .logprobs = std::nullopt,
                      .echo = {}};
}

TEST(OpenAiResponseTest, AWholeCompletionCountsEachPromptOnce) {
  ResponseRenderer renderer(Meta(ApiKind::kCompletion, /*n=*/2), /*num_requests=*/1);
  renderer.Accumulate(0, Message("Hel", 0));
  renderer.Accumulate(0, Message("Bye", 1));
  renderer.Accumulate(0, Message("lo", 0));
  renderer.Accumulate(0, Final(pb::FINISH_REASON_MAX_TOKENS, 10, 3, 1));
  pb::GenerateResponse stop = Final(pb::FINISH_REASON_STOP_STRING, 10, 2, 0);
  stop.mutable_final()->set_stop_match("\n");
  renderer.Accumulate(0, stop);
  const Json body = Json::parse(renderer.Body());
  EXPECT_EQ(body["object"], "text_completion");
  EXPECT_EQ(body["id"], "id-1");
  EXPECT_EQ(body["model"], "m");
  ASSERT_EQ(body["choices"].size(), 2U);
  EXPECT_EQ(body["choices"][0]["text"], "Hello");
  EXPECT_EQ(body["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(body["choices"][0]["stop_reason"], "\n");
  EXPECT_EQ(body["choices"][1]["text"], "Bye");
  EXPECT_EQ(body["choices"][1]["finish_reason"], "length");
  EXPECT_EQ(body["usage"]["prompt_tokens"], 10);
  EXPECT_EQ(body["usage"]["completion_tokens"], 5);
  EXPECT_EQ(body["usage"]["total_tokens"], 15);
  EXPECT_EQ(body["usage"]["prompt_tokens_details"]["cached_tokens"], 5);
}

TEST(OpenAiResponseTest, AWholeChatCarriesCallsReasoningAndLogprobs) {
  ResponseMeta meta = Meta(ApiKind::kChat);
  meta.logprobs = 1;
  ResponseRenderer renderer(meta, 1);
  pb::GenerateResponse m;
  m.set_reasoning("think");
  pb::PositionLogprobs* lp = m.add_logprobs();
  lp->mutable_chosen()->set_token("{");
  lp->mutable_chosen()->set_logprob(-0.1F);
  lp->add_top()->set_token("{");
  lp->add_top()->set_token("x");
  pb::ToolCall* call = m.add_tool_calls();
  call->set_id("call_a");
  call->set_name("get");
  call->set_arguments(R"({"city":"Oslo"})");
  renderer.Accumulate(0, m);
  renderer.Accumulate(0, Final(pb::FINISH_REASON_TOOL_CALLS, 4, 1));
  const Json body = Json::parse(renderer.Body());
  EXPECT_EQ(body["object"], "chat.completion");
  const Json& message = body["choices"][0]["message"];
  EXPECT_EQ(message["role"], "assistant");
  EXPECT_TRUE(message["content"].is_null());
  EXPECT_EQ(message["reasoning_content"], "think");
  ASSERT_EQ(message["tool_calls"].size(), 1U);
  EXPECT_EQ(message["tool_calls"][0]["id"], "call_a");
  EXPECT_EQ(message["tool_calls"][0]["type"], "function");
  EXPECT_EQ(message["tool_calls"][0]["function"]["arguments"], R"({"city":"Oslo"})");
  EXPECT_EQ(body["choices"][0]["finish_reason"], "tool_calls");
  const Json& content = body["choices"][0]["logprobs"]["content"];
  ASSERT_EQ(content.size(), 1U);
  EXPECT_EQ(content[0]["token"], "{");
  EXPECT_EQ(content[0]["logprob"].get<double>(), -0.1);  // the float's shortest decimal
  EXPECT_EQ(content[0]["bytes"], Json::array({'{'}));
  EXPECT_EQ(content[0]["top_logprobs"].size(), 1U);  // top_logprobs: 1 of the two
}

TEST(OpenAiResponseTest, CompletionLogprobsHaveOffsetsIntoTheText) {
  ResponseMeta meta = Meta(ApiKind::kCompletion);
  meta.logprobs = 2;
  ResponseRenderer renderer(meta, 1);
  pb::GenerateResponse m = Message("ab c");
  for (const char* token : {"ab", " c"}) {
    pb::PositionLogprobs* lp = m.add_logprobs();
    lp->mutable_chosen()->set_token(token);
    lp->mutable_chosen()->set_logprob(-1.0F);
    pb::TokenLogprob* top = lp->add_top();
    top->set_token(token);
    top->set_logprob(-1.0F);
  }
  renderer.Accumulate(0, m);
  renderer.Accumulate(0, Final(pb::FINISH_REASON_EOS, 1, 2));
  const Json logprobs = Json::parse(renderer.Body())["choices"][0]["logprobs"];
  EXPECT_EQ(logprobs["tokens"], Json::array({"ab", " c"}));
  EXPECT_EQ(logprobs["token_logprobs"], Json::array({-1.0, -1.0}));
  EXPECT_EQ(logprobs["text_offset"], Json::array({0, 2}));
  EXPECT_EQ(logprobs["top_logprobs"][1][" c"], -1.0);
}

// The data of each event in a stream of Server-Sent Events.
std::vector<std::string> EventData(const std::string& events) {
  std::vector<std::string> data;
  size_t at = 0;
  while (at < events.size()) {
    const size_t end = events.find("\n\n", at);
    EXPECT_NE(end, std::string::npos) << events;
    if (end == std::string::npos) break;
    const std::string event = events.substr(at, end - at);
    EXPECT_EQ(event.rfind("data: ", 0), 0U) << event;
    data.push_back(event.substr(6));
    at = end + 2;
  }
  return data;
}

TEST(OpenAiResponseTest, AStreamedChatOpensWithTheRoleAndStreamsCallsWholeCharacters) {
  ResponseMeta meta = Meta(ApiKind::kChat);
  meta.include_usage = true;
  ResponseRenderer renderer(meta, 1);
  std::vector<std::string> data = EventData(renderer.StreamEvents(0, Message("Hi")));
  ASSERT_EQ(data.size(), 2U);
  Json first = Json::parse(data[0]);
  EXPECT_EQ(first["object"], "chat.completion.chunk");
  EXPECT_EQ(first["choices"][0]["delta"]["role"], "assistant");
  EXPECT_EQ(Json::parse(data[1])["choices"][0]["delta"]["content"], "Hi");
  EXPECT_TRUE(Json::parse(data[1])["choices"][0]["finish_reason"].is_null());

  // A call's arguments split inside "é" (0xC3 0xA9): the half character waits.
  pb::GenerateResponse opening;
  pb::ToolCallDelta* d = opening.add_tool_call_deltas();
  d->set_index(0);
  d->set_id("call_x");
  d->set_name("get");
  d->set_arguments("{\"a\":\"caf\xC3");
  data = EventData(renderer.StreamEvents(0, opening));
  ASSERT_EQ(data.size(), 1U);
  Json call = Json::parse(data[0])["choices"][0]["delta"]["tool_calls"][0];
  EXPECT_EQ(call["index"], 0);
  EXPECT_EQ(call["id"], "call_x");
  EXPECT_EQ(call["type"], "function");
  EXPECT_EQ(call["function"]["name"], "get");
  EXPECT_EQ(call["function"]["arguments"], "{\"a\":\"caf");
  pb::GenerateResponse rest;
  rest.add_tool_call_deltas()->set_arguments("\xA9\"}");
  pb::ToolCall* whole = rest.add_tool_calls();  // the same call, whole: not sent again
  whole->set_id("call_x");
  data = EventData(renderer.StreamEvents(0, rest));
  ASSERT_EQ(data.size(), 1U);
  call = Json::parse(data[0])["choices"][0]["delta"]["tool_calls"];
  ASSERT_EQ(call.size(), 1U);
  EXPECT_FALSE(call[0].contains("id"));
  EXPECT_EQ(call[0]["function"]["arguments"], "\xC3\xA9\"}");

  data = EventData(renderer.StreamEvents(0, Final(pb::FINISH_REASON_TOOL_CALLS, 3, 2)));
  ASSERT_EQ(data.size(), 1U);
  EXPECT_EQ(Json::parse(data[0])["choices"][0]["finish_reason"], "tool_calls");
  EXPECT_TRUE(Json::parse(data[0])["choices"][0]["delta"].empty());

  data = EventData(renderer.StreamEnd(absl::OkStatus()));
  ASSERT_EQ(data.size(), 2U);
  const Json usage = Json::parse(data[0]);
  EXPECT_TRUE(usage["choices"].empty());
  EXPECT_EQ(usage["usage"]["total_tokens"], 5);
  EXPECT_EQ(data[1], "[DONE]");
  // A failed stream ends with its error as an event instead of the usage.
  data = EventData(renderer.StreamEnd(absl::UnavailableError("worker lost")));
  ASSERT_EQ(data.size(), 2U);
  EXPECT_EQ(Json::parse(data[0])["error"]["message"], "worker lost");
  EXPECT_EQ(data[1], "[DONE]");
}

// vLLM's continuous_usage_stats: each chunk counts its choice's prompt (told with the first
// token) and the tokens so far; the final chunk has the final usage.
TEST(OpenAiResponseTest, ContinuousUsageCountsEachChunk) {
  ResponseMeta meta = Meta(ApiKind::kCompletion);
  meta.continuous_usage = true;
  ResponseRenderer renderer(meta, 1);
  pb::GenerateResponse first = Message("Hel");
  first.set_prompt_tokens(7);
  std::vector<std::string> data = EventData(renderer.StreamEvents(0, first));
  ASSERT_EQ(data.size(), 1U);
  EXPECT_EQ(Json::parse(data[0])["usage"],
            Json::parse(R"({"prompt_tokens": 7, "completion_tokens": 1, "total_tokens": 8})"));
  data = EventData(renderer.StreamEvents(0, Message("lo")));
  EXPECT_EQ(Json::parse(data[0])["usage"]["completion_tokens"], 2);
  data = EventData(renderer.StreamEvents(0, Final(pb::FINISH_REASON_EOS, 7, 3)));
  EXPECT_EQ(Json::parse(data[0])["usage"],
            Json::parse(R"({"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10})"));
}

TEST(OpenAiCompletionRequestTest, EchoWithLogprobsScoresThePrompt) {
  auto call = ParseCompletionRequest(
      R"({"prompt": "Hi there", "echo": true, "logprobs": 2, "max_tokens": 0})");
  ASSERT_TRUE(call.ok()) << call.status();
  EXPECT_EQ(call->requests[0].prompt_logprobs(), 2);
  EXPECT_EQ(call->requests[0].stop().max_tokens(), 0);
}

pb::PositionLogprobs Scored(const std::string& token, float logprob) {
  pb::PositionLogprobs p;
  p.mutable_chosen()->set_token(token);
  p.mutable_chosen()->set_logprob(logprob);
  pb::TokenLogprob* top = p.add_top();
  top->set_token(token);
  top->set_logprob(logprob);
  return p;
}

// Evaluation harnesses send echo with logprobs (often max_tokens 0) and sum a continuation's
// token_logprobs from the offset where it starts: the prompt's scores lead, aligned with the
// echoed text whether the scored tokens cover it all (after a BOS), miss its first token (no
// BOS: that token has nothing before it and leads with null), or begin with a SentencePiece
// dummy-prefix space the text lacks.
TEST(OpenAiResponseTest, EchoedPromptsLeadTheLogprobsAtTheirOffsets) {
  struct Case {
    std::vector<std::string> scored;
    std::vector<std::string> tokens;
    std::vector<int> offsets;
  };
  const Case cases[] = {
      {{"ab", "c"}, {"ab", "c", "d"}, {0, 2, 3}},
      {{"b", "c"}, {"a", "b", "c", "d"}, {0, 1, 2, 3}},
      {{" abc"}, {" abc", "d"}, {0, 3}},
  };
  for (const Case& c : cases) {
    for (const bool stream : {false, true}) {
      ResponseMeta meta = Meta(ApiKind::kCompletion);
      meta.logprobs = 1;
      meta.echo = {"abc"};
      meta.echo_logprobs = true;
      ResponseRenderer renderer(meta, 1);
      // The scores come over two messages, then the first generated token.
      std::vector<pb::GenerateResponse> messages(3);
      *messages[0].add_prompt_logprobs() = Scored(c.scored[0], -1.0F);
      for (size_t i = 1; i < c.scored.size(); ++i) {
        *messages[1].add_prompt_logprobs() = Scored(c.scored[i], -2.0F);
      }
      messages[2] = Message("d");
      *messages[2].add_logprobs() = Scored("d", -0.5F);
      messages.push_back(Final(pb::FINISH_REASON_MAX_TOKENS, 4, 1));
      Json logprobs;
      std::string text;
      for (const pb::GenerateResponse& m : messages) {
        if (!stream) {
          renderer.Accumulate(0, m);
          continue;
        }
        const std::string events = renderer.StreamEvents(0, m);
        if (&m < &messages[2]) {
          EXPECT_TRUE(events.empty()) << "the echo waits for its scores";
        }
        for (const std::string& data : EventData(events)) {
          const Json choice = Json::parse(data)["choices"][0];
          text += choice["text"].get<std::string>();
          if (choice["logprobs"].is_null()) continue;
          if (logprobs.is_null()) {
            logprobs = choice["logprobs"];
          } else {
            for (const char* key : {"tokens", "token_logprobs", "top_logprobs", "text_offset"}) {
              for (const Json& v : choice["logprobs"][key]) logprobs[key].push_back(v);
            }
          }
        }
      }
      if (!stream) {
        const Json choice = Json::parse(renderer.Body())["choices"][0];
        text = choice["text"];
        logprobs = choice["logprobs"];
      }
      EXPECT_EQ(text, "abcd");
      EXPECT_EQ(logprobs["tokens"], Json(c.tokens)) << stream;
      EXPECT_EQ(logprobs["text_offset"], Json(c.offsets)) << stream;
      const Json& values = logprobs["token_logprobs"];
      EXPECT_EQ(values.back(), -0.5);
      EXPECT_EQ(values.front().is_null(), c.tokens.size() > c.scored.size() + 1);
      EXPECT_EQ(logprobs["top_logprobs"].size(), c.tokens.size());
    }
  }
}

TEST(OpenAiResponseTest, AStreamedCompletionEchoesItsPromptFirst) {
  ResponseMeta meta = Meta(ApiKind::kCompletion);
  meta.echo = {"Say: "};
  ResponseRenderer renderer(meta, 1);
  pb::GenerateResponse empty;  // a message that adds nothing sends nothing... but the echo
  std::vector<std::string> data = EventData(renderer.StreamEvents(0, Message("hi")));
  ASSERT_EQ(data.size(), 1U);
  EXPECT_EQ(Json::parse(data[0])["choices"][0]["text"], "Say: hi");
  EXPECT_TRUE(renderer.StreamEvents(0, empty).empty());
  data = EventData(renderer.StreamEvents(0, Final(pb::FINISH_REASON_EOS, 2, 1)));
  EXPECT_EQ(Json::parse(data[0])["choices"][0]["finish_reason"], "stop");
}

// A message of completion `index` generating `ids`, with the prompt's ids when `prompt` is
// not empty (the first message of a completion with return_prompt_token_ids).
pb::GenerateResponse IdsMessage(const std::string& text, std::vector<int32_t> ids,
                                std::vector<int32_t> prompt = {}, int index = 0) {
  pb::GenerateResponse m;
  m.set_text(text);
  m.set_index(index);
  m.mutable_token_ids()->Add(ids.begin(), ids.end());
  m.mutable_prompt_token_ids()->Add(prompt.begin(), prompt.end());
  return m;
}

TEST(OpenAiCompletionRequestTest, ReturnTokenIdsAsksTheWorkerForThePromptsIds) {
  auto call = ParseCompletionRequest(R"({"prompt": ["a", "b"], "return_token_ids": true})");
  ASSERT_TRUE(call.ok()) << call.status();
  EXPECT_TRUE(call->token_ids);
  for (const pb::GenerateRequest& r : call->requests) EXPECT_TRUE(r.return_prompt_token_ids());
  auto chat = ParseChatRequest(R"({"messages": [{"role": "user", "content": "hi"}]})");
  ASSERT_TRUE(chat.ok()) << chat.status();
  EXPECT_FALSE(chat->token_ids);
  EXPECT_FALSE(chat->requests[0].return_prompt_token_ids());
  auto bad = ParseCompletionRequest(R"({"prompt": "a", "return_token_ids": 1})");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("return_token_ids"));
}

TEST(OpenAiResponseTest, TokenIdsComeWithEveryChoiceWholeAndStreamed) {
  ResponseMeta meta = Meta(ApiKind::kCompletion, /*n=*/2);
  meta.token_ids = true;
  ResponseRenderer whole(meta, 1);
  whole.Accumulate(0, IdsMessage("He", {7, 8}, {1, 2, 3}, 0));
  whole.Accumulate(0, IdsMessage("", {9}, {1, 2, 3}, 1));  // a token with no text yet
  whole.Accumulate(0, IdsMessage("y", {10}, {}, 0));
  whole.Accumulate(0, Final(pb::FINISH_REASON_MAX_TOKENS, 3, 3, 0));
  whole.Accumulate(0, Final(pb::FINISH_REASON_MAX_TOKENS, 3, 1, 1));
  const Json body = Json::parse(whole.Body());
  EXPECT_EQ(body["choices"][0]["prompt_token_ids"], Json({1, 2, 3}));
  EXPECT_EQ(body["choices"][0]["token_ids"], Json({7, 8, 10}));
  EXPECT_EQ(body["choices"][1]["prompt_token_ids"], Json({1, 2, 3}));
  EXPECT_EQ(body["choices"][1]["token_ids"], Json({9}));

  ResponseRenderer streamed(meta, 1);
  std::vector<std::string> data = EventData(streamed.StreamEvents(0, IdsMessage("He", {7}, {1})));
  ASSERT_EQ(data.size(), 1U);
  Json choice = Json::parse(data[0])["choices"][0];
  EXPECT_EQ(choice["prompt_token_ids"], Json({1}));
  EXPECT_EQ(choice["token_ids"], Json({7}));
  // A token whose text is not whole yet still sends its id; the prompt's ids go out once.
  data = EventData(streamed.StreamEvents(0, IdsMessage("", {8})));
  ASSERT_EQ(data.size(), 1U);
  choice = Json::parse(data[0])["choices"][0];
  EXPECT_EQ(choice["text"], "");
  EXPECT_EQ(choice["token_ids"], Json({8}));
  EXPECT_FALSE(choice.contains("prompt_token_ids"));
  data = EventData(streamed.StreamEvents(0, Final(pb::FINISH_REASON_EOS, 1, 2)));
  choice = Json::parse(data[0])["choices"][0];
  EXPECT_EQ(choice["token_ids"], Json::array());

  // Without return_token_ids, none of it.
  ResponseRenderer plain(Meta(ApiKind::kCompletion), 1);
  data = EventData(plain.StreamEvents(0, IdsMessage("", {8}, {1})));
  EXPECT_TRUE(data.empty());
  plain.Accumulate(0, IdsMessage("x", {9}, {1}));
  EXPECT_FALSE(Json::parse(plain.Body())["choices"][0].contains("token_ids"));
}

TEST(OpenAiResponseTest, AChatsPromptIdsGoBesideItsChoices) {
  ResponseMeta meta = Meta(ApiKind::kChat);
  meta.token_ids = true;
  ResponseRenderer whole(meta, 1);
  whole.Accumulate(0, IdsMessage("Hi", {5, 6}, {1, 2}));
  whole.Accumulate(0, Final(pb::FINISH_REASON_EOS, 2, 2));
  const Json body = Json::parse(whole.Body());
  EXPECT_EQ(body["prompt_token_ids"], Json({1, 2}));
  EXPECT_EQ(body["choices"][0]["token_ids"], Json({5, 6}));
  EXPECT_FALSE(body["choices"][0].contains("prompt_token_ids"));

  ResponseRenderer streamed(meta, 1);
  const std::vector<std::string> data =
      EventData(streamed.StreamEvents(0, IdsMessage("Hi", {5}, {1, 2})));
  ASSERT_EQ(data.size(), 2U);  // the role's chunk, then the content's
  EXPECT_EQ(Json::parse(data[0])["prompt_token_ids"], Json({1, 2}));
  EXPECT_EQ(Json::parse(data[1])["choices"][0]["token_ids"], Json({5}));
  EXPECT_FALSE(Json::parse(data[1]).contains("prompt_token_ids"));
  EXPECT_FALSE(Json::parse(data[1])["choices"][0].contains("prompt_token_ids"));
}

TEST(OpenAiResponseTest, Utf8IsTakenOnlyInWholeCharacters) {
  std::string pending = "ab\xE2\x82";
  EXPECT_EQ(TakeCompleteUtf8(pending), "ab");
  EXPECT_EQ(pending, "\xE2\x82");
  pending += "\xAC";
  EXPECT_EQ(TakeCompleteUtf8(pending), "\xE2\x82\xAC");
  EXPECT_EQ(pending, "");
  pending = "\xF0\x9F\x98\x80x";
  EXPECT_EQ(TakeCompleteUtf8(pending), "\xF0\x9F\x98\x80x");
  pending = "\x80\x80";  // stray continuation bytes are not held forever
  EXPECT_EQ(TakeCompleteUtf8(pending), "\x80\x80");
}

TEST(OpenAiErrorTest, StatusesBecomeOpenAisErrors) {
  EXPECT_EQ(HttpStatusOf(absl::StatusCode::kInvalidArgument), 400);
  EXPECT_EQ(HttpStatusOf(absl::StatusCode::kUnauthenticated), 401);
  EXPECT_EQ(HttpStatusOf(absl::StatusCode::kNotFound), 404);
  EXPECT_EQ(HttpStatusOf(absl::StatusCode::kResourceExhausted), 429);
  EXPECT_EQ(HttpStatusOf(absl::StatusCode::kUnavailable), 503);
  const Json error = Json::parse(ErrorBody(absl::InvalidArgumentError("prompt: is required")));
  EXPECT_EQ(error["error"]["message"], "prompt: is required");
  EXPECT_EQ(error["error"]["type"], "invalid_request_error");
  EXPECT_EQ(error["error"]["code"], "INVALID_ARGUMENT");
  EXPECT_EQ(ShortestDouble(-0.1F), -0.1);
  EXPECT_EQ(ShortestDouble(-std::numeric_limits<float>::infinity()), -9999.0);
}

}  // namespace
}  // namespace ringserve::openai
