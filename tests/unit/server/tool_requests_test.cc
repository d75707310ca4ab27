// Chat requests with tools: what the worker renders, the constraint tool_choice MODE_REQUIRED
// sets (its replies are calls of the offered tools with arguments of their schemas), the
// errors, and the calls taken out of a streamed reply.
#include "worker/server/tool_requests.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "tests/unit/grammar/matcher_checks.h"
#include "tests/unit/tokenizer/chat_vocabulary.h"
#include "worker/server/request_conversion.h"

namespace ringserve::server {
namespace {

namespace pb = ringserve::v1;
using ::testing::HasSubstr;
using tokenizer::ChatFormat;

using tokenizer::testing::ChatTokenizer;

ModelLimits Limits(const tokenizer::Tokenizer& tok, ChatFormat format) {
  return {.vocab_size = tok.vocab_size(), .context_length = 4096, .chat_format = format};
}

// "What is the weather in Paris?" with get_weather(city, unit?) and now().
pb::GenerateRequest WeatherRequest(pb::ToolChoice::Mode mode, const std::string& name = "") {
  pb::GenerateRequest request;
  pb::ChatMessage* m = request.mutable_chat()->add_messages();
  m->set_role("user");
  m->set_content("What is the weather in Paris?");
  pb::Tool* weather = request.mutable_chat()->add_tools();
  weather->set_name("get_weather");
  weather->set_description("Current weather in a city.");
  weather->set_parameters(
      R"({"type": "object", "properties": {"city": {"type": "string", "maxLength": 20},
          "unit": {"enum": ["C", "F"]}}, "required": ["city"]})");
  request.mutable_chat()->add_tools()->set_name("now");
  request.mutable_chat()->mutable_tool_choice()->set_mode(mode);
  request.mutable_chat()->mutable_tool_choice()->set_name(name);
  return request;
}

TEST(ToolRequestsTest, AutoRendersTheToolsAndHoldsOnlyACallToItsShape) {
  const auto tok = ChatTokenizer();
  auto job = ToJobRequest(WeatherRequest(pb::ToolChoice::MODE_AUTO), tok.get(),
                          Limits(*tok, ChatFormat::kChatMl));
  ASSERT_TRUE(job.ok()) << job.status();
  // The reply is free until it opens a call; the call is then one call of a tool.
  ASSERT_NE(job->response_format, nullptr);
  ASSERT_TRUE(job->format_trigger.has_value());
  EXPECT_EQ(job->format_trigger->text, "<tool_call>");
  EXPECT_FALSE(job->format_trigger->at_start);
  const std::string call = "<tool_call>\n{\"name\": \"now\", \"arguments\": {}}\n</tool_call>";
  EXPECT_TRUE(grammar::Accepts(job->response_format, call));
  EXPECT_FALSE(grammar::Prefix(job->response_format, call + "\n"));
  auto llama = ToJobRequest(WeatherRequest(pb::ToolChoice::MODE_AUTO), tok.get(),
                            Limits(*tok, ChatFormat::kLlama32));
  ASSERT_TRUE(llama.ok()) << llama.status();
  ASSERT_TRUE(llama->format_trigger.has_value());
  EXPECT_EQ(llama->format_trigger->text, "{");
  EXPECT_TRUE(llama->format_trigger->at_start);
  EXPECT_TRUE(grammar::Accepts(llama->response_format, "{\"name\": \"now\", \"parameters\": {}}"));

  // A schema the compiler cannot enforce takes any object as arguments rather than fail (the
  // call's shape and the tool's name still hold); a response format takes over the whole
  // reply.
  pb::GenerateRequest unenforced = WeatherRequest(pb::ToolChoice::MODE_AUTO);
  unenforced.mutable_chat()->mutable_tools(0)->set_parameters(
      R"({"type": "object", "uniqueItems": true})");
  auto free = ToJobRequest(unenforced, tok.get(), Limits(*tok, ChatFormat::kChatMl));
  ASSERT_TRUE(free.ok()) << free.status();
  ASSERT_NE(free->response_format, nullptr);
  EXPECT_TRUE(grammar::Accepts(
      free->response_format,
      "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"x\": [1]}}\n</tool_call>"));
  EXPECT_FALSE(grammar::Prefix(free->response_format, "<tool_call>\n{\"name\": \"rm"));
  EXPECT_FALSE(grammar::Prefix(free->response_format,
                               "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": ["));
  pb::GenerateRequest formatted = WeatherRequest(pb::ToolChoice::MODE_AUTO);
  formatted.mutable_response_format()->set_regex("yes|no");
  auto regex = ToJobRequest(formatted, tok.get(), Limits(*tok, ChatFormat::kChatMl));
  ASSERT_TRUE(regex.ok()) << regex.status();
  EXPECT_FALSE(regex->format_trigger.has_value());
  EXPECT_TRUE(grammar::Accepts(regex->response_format, "yes"));

  const std::string prompt = tok->Decode(job->tokens);
  EXPECT_THAT(prompt, HasSubstr("<tools>\n{\"type\": \"function\", \"function\": {\"name\": "
                                "\"get_weather\""));
  // MODE_NONE: as if there were no tools.
  pb::GenerateRequest plain = WeatherRequest(pb::ToolChoice::MODE_NONE);
  auto none = ToJobRequest(plain, tok.get(), Limits(*tok, ChatFormat::kChatMl));
  ASSERT_TRUE(none.ok()) << none.status();
  plain.mutable_chat()->clear_tools();
  EXPECT_EQ(none->tokens,
            ToJobRequest(plain, tok.get(), Limits(*tok, ChatFormat::kChatMl))->tokens);
  EXPECT_FALSE(
      ReplyParser(WeatherRequest(pb::ToolChoice::MODE_NONE), tok.get(), ChatFormat::kChatMl));
  EXPECT_TRUE(
      ReplyParser(WeatherRequest(pb::ToolChoice::MODE_AUTO), tok.get(), ChatFormat::kChatMl));
  EXPECT_FALSE(
      ReplyParser(WeatherRequest(pb::ToolChoice::MODE_AUTO), tok.get(), ChatFormat::kLlama3));
}

TEST(ToolRequestsTest, RequiredConstrainsTheReplyToCallsOfTheTools) {
  const auto tok = ChatTokenizer();
  auto job = ToJobRequest(WeatherRequest(pb::ToolChoice::MODE_REQUIRED), tok.get(),
                          Limits(*tok, ChatFormat::kChatMl));
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_NE(job->response_format, nullptr);
  EXPECT_FALSE(job->format_trigger.has_value());
  const auto& format = job->response_format;
  const std::string paris =
      "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n"
      "</tool_call>";
  const std::string now = "<tool_call>\n{\"name\": \"now\", \"arguments\": {}}\n</tool_call>";
  EXPECT_TRUE(grammar::Accepts(format, paris));
  EXPECT_TRUE(grammar::Accepts(format, paris + "\n" + now));
  EXPECT_TRUE(
      grammar::Accepts(format,
                       "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"unit\": \"F\", "
                       "\"city\": \"Rome\"}}\n</tool_call>"));
  EXPECT_FALSE(grammar::Prefix(format, "Sure"));
  EXPECT_FALSE(grammar::Prefix(format, "<tool_call>\n{\"name\": \"rm"));
  EXPECT_FALSE(grammar::Accepts(
      format, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {}}\n</tool_call>"));
  EXPECT_FALSE(grammar::Prefix(
      format, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"unit\": \"K"));

  // A named tool only; Llama 3.x: one call object, its arguments under "parameters".
  auto named = ToJobRequest(WeatherRequest(pb::ToolChoice::MODE_REQUIRED, "now"), tok.get(),
                            Limits(*tok, ChatFormat::kLlama31));
  ASSERT_TRUE(named.ok()) << named.status();
  EXPECT_TRUE(grammar::Accepts(named->response_format, "{\"name\": \"now\", \"parameters\": {}}"));
  EXPECT_FALSE(grammar::Prefix(named->response_format, "{\"name\": \"get"));
  EXPECT_FALSE(grammar::Prefix(named->response_format, "<tool_call>"));
}

// parallel_tool_calls false: one call a reply, under either mode.
TEST(ToolRequestsTest, WithoutParallelCallsAReplyMakesOneCall) {
  const auto tok = ChatTokenizer();
  const std::string now = "<tool_call>\n{\"name\": \"now\", \"arguments\": {}}\n</tool_call>";
  pb::GenerateRequest required = WeatherRequest(pb::ToolChoice::MODE_REQUIRED);
  required.mutable_chat()->set_parallel_tool_calls(false);
  auto one = ToJobRequest(required, tok.get(), Limits(*tok, ChatFormat::kChatMl));
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_TRUE(grammar::Accepts(one->response_format, now));
  EXPECT_FALSE(grammar::Prefix(one->response_format, now + "\n"));
  required.mutable_chat()->set_parallel_tool_calls(true);
  auto several = ToJobRequest(required, tok.get(), Limits(*tok, ChatFormat::kChatMl));
  ASSERT_TRUE(several.ok()) << several.status();
  EXPECT_TRUE(grammar::Accepts(several->response_format, now + "\n" + now));

  // MODE_AUTO: the trigger binds once, and its call ends the reply.
  pb::GenerateRequest automatic = WeatherRequest(pb::ToolChoice::MODE_AUTO);
  auto parallel = ToJobRequest(automatic, tok.get(), Limits(*tok, ChatFormat::kChatMl));
  ASSERT_TRUE(parallel.ok()) << parallel.status();
  ASSERT_TRUE(parallel->format_trigger.has_value());
  EXPECT_FALSE(parallel->format_trigger->once);
  automatic.mutable_chat()->set_parallel_tool_calls(false);
  auto single = ToJobRequest(automatic, tok.get(), Limits(*tok, ChatFormat::kChatMl));
  ASSERT_TRUE(single.ok()) << single.status();
  ASSERT_TRUE(single->format_trigger.has_value());
  EXPECT_TRUE(single->format_trigger->once);
  EXPECT_TRUE(grammar::Accepts(single->response_format, now));
}

// With a cache, a request that repeats an earlier one's tools or schema gets the grammar
// compiled for it; anything the grammar depends on makes another.
TEST(ToolRequestsTest, RepeatedToolsAndSchemasComeFromTheCache) {
  const auto tok = ChatTokenizer();
  grammar::GrammarCache cache(16, 1 << 20);
  ModelLimits limits = Limits(*tok, ChatFormat::kChatMl);
  limits.grammars = &cache;
  const auto format = [&](const pb::GenerateRequest& request) {
    auto job = ToJobRequest(request, tok.get(), limits);
    EXPECT_TRUE(job.ok()) << job.status();
    return job.ok() ? job->response_format : nullptr;
  };
  const pb::GenerateRequest automatic = WeatherRequest(pb::ToolChoice::MODE_AUTO);
  const auto first = format(automatic);
  ASSERT_NE(first, nullptr);
  pb::GenerateRequest reworded = automatic;  // descriptions are not in the grammar
  reworded.mutable_chat()->mutable_tools(0)->set_description("The weather.");
  reworded.mutable_chat()->mutable_messages(0)->set_content("And in Rome?");
  EXPECT_EQ(format(reworded), first);
  EXPECT_EQ(cache.counts().hits, 1);
  pb::GenerateRequest other_schema = automatic;
  other_schema.mutable_chat()->mutable_tools(0)->set_parameters(R"({"type": "object"})");
  EXPECT_NE(format(other_schema), first);
  EXPECT_NE(format(WeatherRequest(pb::ToolChoice::MODE_REQUIRED)), first);
  EXPECT_NE(format(WeatherRequest(pb::ToolChoice::MODE_REQUIRED, "now")), first);
  EXPECT_EQ(cache.counts().misses, 4);

  // Response formats: the same schema text is one grammar; a regex of the same text is not.
  pb::GenerateRequest schema;
  schema.set_text("A number:");
  schema.mutable_response_format()->mutable_json_schema()->set_schema(R"({"type": "integer"})");
  pb::GenerateRequest regex = schema;
  regex.mutable_response_format()->set_regex(R"({"type": "integer"})");
  const auto integer = format(schema);
  EXPECT_EQ(format(schema), integer);
  EXPECT_NE(format(regex), integer);
  // A refused schema is refused again from the cache, naming its field.
  pb::GenerateRequest refused = schema;
  refused.mutable_response_format()->mutable_json_schema()->set_schema(R"({"uniqueItems": 1})");
  for (int i = 0; i < 2; ++i) {
    auto job = ToJobRequest(refused, tok.get(), limits);
    EXPECT_THAT(job.status().message(), HasSubstr("response_format.json_schema.schema: "));
  }
  EXPECT_EQ(cache.counts().hits, 3);
}

TEST(ToolRequestsTest, BadToolRequestsNameTheirField) {
  const auto tok = ChatTokenizer();
  const ModelLimits chatml = Limits(*tok, ChatFormat::kChatMl);
  const auto refusal = [&](const pb::GenerateRequest& request, const ModelLimits& limits) {
    auto job = ToJobRequest(request, tok.get(), limits);
    EXPECT_FALSE(job.ok());
    EXPECT_EQ(job.status().code(), absl::StatusCode::kInvalidArgument);
    return std::string(job.status().message());
  };
  EXPECT_THAT(refusal(WeatherRequest(pb::ToolChoice::MODE_REQUIRED, "rm"), chatml),
              HasSubstr("chat.tool_choice.name: no tool is named 'rm'"));
  EXPECT_THAT(refusal(WeatherRequest(pb::ToolChoice::MODE_AUTO, "now"), chatml),
              HasSubstr("chat.tool_choice.name: needs MODE_REQUIRED"));
  pb::GenerateRequest no_tools = WeatherRequest(pb::ToolChoice::MODE_REQUIRED);
  no_tools.mutable_chat()->clear_tools();
  EXPECT_THAT(refusal(no_tools, chatml), HasSubstr("MODE_REQUIRED needs chat.tools"));
  pb::GenerateRequest bad_schema = WeatherRequest(pb::ToolChoice::MODE_REQUIRED);
  bad_schema.mutable_chat()->mutable_tools(0)->set_parameters(
      R"({"type": "object", "uniqueItems": true})");
  EXPECT_THAT(refusal(bad_schema, chatml), HasSubstr("chat.tools[0].parameters: "));
  pb::GenerateRequest both = WeatherRequest(pb::ToolChoice::MODE_REQUIRED);
  both.mutable_response_format()->mutable_json_object();
  EXPECT_THAT(refusal(both, chatml), HasSubstr("response_format: "));
  pb::GenerateRequest twice = WeatherRequest(pb::ToolChoice::MODE_AUTO);
  twice.mutable_chat()->mutable_tools(1)->set_name("get_weather");
  EXPECT_THAT(refusal(twice, chatml),
              HasSubstr("chat.tools[1].name: 'get_weather' is named twice"));
  EXPECT_THAT(refusal(WeatherRequest(pb::ToolChoice::MODE_AUTO), Limits(*tok, ChatFormat::kLlama3)),
              HasSubstr("chat.tools: the llama3 chat format has no tool calling"));
  pb::GenerateRequest utf8 = WeatherRequest(pb::ToolChoice::MODE_AUTO);
  utf8.mutable_chat()->mutable_tools(0)->set_description("\xC3");
  EXPECT_THAT(refusal(utf8, chatml), HasSubstr("chat.tools[0].description: not valid UTF-8"));
  pb::GenerateRequest big = WeatherRequest(pb::ToolChoice::MODE_AUTO);
  big.mutable_chat()->mutable_tools(0)->set_parameters(std::string(kMaxToolSchemaBytes + 1, ' '));
  EXPECT_THAT(refusal(big, chatml), HasSubstr("bytes of parameters is over the limit"));
}

TEST(ToolRequestsTest, CallsLeaveTheStreamAndTheReplyEndsWithToolCalls) {
  const auto tok = ChatTokenizer();
  auto parser =
      ReplyParser(WeatherRequest(pb::ToolChoice::MODE_AUTO), tok.get(), ChatFormat::kChatMl);
  ASSERT_TRUE(parser.has_value());
  pb::GenerateResponse first;
  first.set_text("Checking.\n<tool_call>\n{\"name\": \"now\", ");
  ParseToolCalls(*parser, false, &first);
  EXPECT_EQ(first.text(), "Checking.");
  EXPECT_EQ(first.tool_calls_size(), 0);
  pb::GenerateResponse last;
  last.set_text("\"arguments\": {}}\n</tool_call>");
  last.mutable_final()->set_finish_reason(pb::FINISH_REASON_EOS);
  ParseToolCalls(*parser, true, &last);
  EXPECT_EQ(last.text(), "");
  ASSERT_EQ(last.tool_calls_size(), 1);
  EXPECT_EQ(last.tool_calls(0).name(), "now");
  EXPECT_EQ(last.tool_calls(0).arguments(), "{}");
  EXPECT_EQ(last.final().finish_reason(), pb::FINISH_REASON_TOOL_CALLS);

  // A reply cut short keeps its reason, and its unfinished call stays text.
  auto cut = ReplyParser(WeatherRequest(pb::ToolChoice::MODE_AUTO), tok.get(), ChatFormat::kChatMl);
  pb::GenerateResponse only;
  only.set_text("<tool_call>\n{\"name\"");
  only.mutable_final()->set_finish_reason(pb::FINISH_REASON_MAX_TOKENS);
  ParseToolCalls(*cut, true, &only);
  EXPECT_EQ(only.text(), "<tool_call>\n{\"name\"");
  EXPECT_EQ(only.final().finish_reason(), pb::FINISH_REASON_MAX_TOKENS);
}

// With stream_tool_calls a constrained reply's call streams as deltas; an unconstrained one
// (under a response_format) arrives whole only.
TEST(ToolRequestsTest, ConstrainedCallsStreamAsDeltas) {
  const auto tok = ChatTokenizer();
  pb::GenerateRequest request = WeatherRequest(pb::ToolChoice::MODE_AUTO);
  request.mutable_chat()->set_stream_tool_calls(true);
  auto parser = ReplyParser(request, tok.get(), ChatFormat::kChatMl, /*calls_constrained=*/true);
  ASSERT_TRUE(parser.has_value());
  pb::GenerateResponse first;
  first.set_text("<tool_call>\n{\"name\": \"now\", \"arguments\": {\"tz\"");
  ParseToolCalls(*parser, false, &first);
  ASSERT_EQ(first.tool_call_deltas_size(), 1);
  EXPECT_EQ(first.tool_call_deltas(0).index(), 0);
  EXPECT_EQ(first.tool_call_deltas(0).name(), "now");
  EXPECT_EQ(first.tool_call_deltas(0).arguments(), "{\"tz\"");
  pb::GenerateResponse last;
  last.set_text(": \"UTC\"}}\n</tool_call>");
  ParseToolCalls(*parser, true, &last);
  ASSERT_EQ(last.tool_call_deltas_size(), 1);
  EXPECT_EQ(last.tool_call_deltas(0).id(), "");
  EXPECT_EQ(last.tool_call_deltas(0).arguments(), ": \"UTC\"}");
  ASSERT_EQ(last.tool_calls_size(), 1);
  EXPECT_EQ(last.tool_calls(0).id(), first.tool_call_deltas(0).id());
  EXPECT_EQ(last.tool_calls(0).arguments(), "{\"tz\": \"UTC\"}");

  auto whole = ReplyParser(request, tok.get(), ChatFormat::kChatMl, /*calls_constrained=*/false);
  pb::GenerateResponse all;
  all.set_text("<tool_call>\n{\"name\": \"now\", \"arguments\": {}}\n</tool_call>");
  ParseToolCalls(*whole, true, &all);
  EXPECT_EQ(all.tool_call_deltas_size(), 0);
  EXPECT_EQ(all.tool_calls_size(), 1);
}

// Mistral's calls open with the [TOOL_CALLS] control token: MODE_REQUIRED writes it into the
// prompt and holds the reply to the array of calls; MODE_AUTO binds when the model picks it
// as its first token; the parser learns of it from the reply's first token id.
TEST(ToolRequestsTest, MistralCallsOpenWithTheirControlToken) {
  const auto tok = tokenizer::testing::MistralTokenizer();
  const ModelLimits limits = Limits(*tok, ChatFormat::kMistral);
  const std::string two =
      R"( [{"name": "now", "arguments": {}}, {"name": "get_weather", "arguments": )"
      R"({"city": "Oslo"}}])";
  auto required = ToJobRequest(WeatherRequest(pb::ToolChoice::MODE_REQUIRED), tok.get(), limits);
  ASSERT_TRUE(required.ok()) << required.status();
  EXPECT_EQ(required->tokens.back(), tokenizer::testing::kToolCalls);
  EXPECT_FALSE(required->format_trigger.has_value());
  EXPECT_TRUE(grammar::Accepts(required->response_format, two));
  EXPECT_TRUE(grammar::Accepts(required->response_format, R"([{"name": "now", "arguments": {}}])"));
  EXPECT_FALSE(grammar::Prefix(required->response_format, "Sure"));
  EXPECT_FALSE(grammar::Prefix(required->response_format, R"( [{"name": "get_weather", )"
                                                          R"("arguments": {}})"));
  pb::GenerateRequest one = WeatherRequest(pb::ToolChoice::MODE_REQUIRED);
  one.mutable_chat()->set_parallel_tool_calls(false);
  auto single = ToJobRequest(one, tok.get(), limits);
  ASSERT_TRUE(single.ok()) << single.status();
  EXPECT_FALSE(grammar::Prefix(single->response_format, R"( [{"name": "now", "arguments": {}}, )"));

  auto automatic = ToJobRequest(WeatherRequest(pb::ToolChoice::MODE_AUTO), tok.get(), limits);
  ASSERT_TRUE(automatic.ok()) << automatic.status();
  EXPECT_NE(automatic->tokens.back(), tokenizer::testing::kToolCalls);
  ASSERT_TRUE(automatic->format_trigger.has_value());
  EXPECT_EQ(automatic->format_trigger->token, tokenizer::testing::kToolCalls);
  EXPECT_TRUE(automatic->format_trigger->at_start);
  EXPECT_TRUE(automatic->format_trigger->once);  // nothing follows the calls
  EXPECT_TRUE(grammar::Accepts(automatic->response_format, two));

  // The parser: opened by the prompt under MODE_REQUIRED, by the first token under MODE_AUTO.
  const auto parse = [&](pb::ToolChoice::Mode mode, std::vector<int32_t> first_ids) {
    auto parser = ReplyParser(WeatherRequest(mode), tok.get(), ChatFormat::kMistral);
    EXPECT_TRUE(parser.has_value());
    pb::GenerateResponse response;
    for (const int32_t id : first_ids) response.add_token_ids(id);
    response.set_text(two);
    response.mutable_final()->set_finish_reason(pb::FINISH_REASON_EOS);
    ParseToolCalls(*parser, true, &response);
    return response;
  };
  const pb::GenerateResponse called =
      parse(pb::ToolChoice::MODE_AUTO, {tokenizer::testing::kToolCalls, ' '});
  EXPECT_EQ(called.text(), "");
  ASSERT_EQ(called.tool_calls_size(), 2);
  EXPECT_EQ(called.tool_calls(1).arguments(), R"({"city":"Oslo"})");
  EXPECT_EQ(called.final().finish_reason(), pb::FINISH_REASON_TOOL_CALLS);
  EXPECT_EQ(parse(pb::ToolChoice::MODE_REQUIRED, {' '}).tool_calls_size(), 2);
  const pb::GenerateResponse text = parse(pb::ToolChoice::MODE_AUTO, {' '});
  EXPECT_EQ(text.text(), two);
  EXPECT_EQ(text.final().finish_reason(), pb::FINISH_REASON_EOS);
}

// Tokenizer v11's calls ([TOOL_CALLS] name [ARGS] arguments) have markers no grammar spells:
// the reply's text spells them for the parser, and each call's arguments are held from its
// [ARGS] on to a JSON object of an offered tool's parameters; MODE_REQUIRED opens the calls in
// the prompt, and with a named tool also writes its name and [ARGS], holding the reply to
// that tool's arguments.
TEST(ToolRequestsTest, MistralV11CallsAreParsedFromTheirSpelledMarkers) {
  using tokenizer::testing::kArgs;
  using tokenizer::testing::kCallId;
  using tokenizer::testing::kToolCalls;
  const auto tok = tokenizer::testing::MistralTokenizer(/*v11=*/true);
  const ModelLimits limits = Limits(*tok, ChatFormat::kMistral);
  auto automatic = ToJobRequest(WeatherRequest(pb::ToolChoice::MODE_AUTO), tok.get(), limits);
  ASSERT_TRUE(automatic.ok()) << automatic.status();
  EXPECT_THAT(automatic->spelled_control_ids, ::testing::ElementsAre(kToolCalls, kArgs, kCallId));
  ASSERT_TRUE(automatic->format_trigger.has_value());
  EXPECT_EQ(automatic->format_trigger->token, kArgs);
  EXPECT_FALSE(automatic->format_trigger->at_start);
  EXPECT_FALSE(automatic->format_trigger->once);  // each call's arguments
  EXPECT_TRUE(grammar::Accepts(automatic->response_format, R"({"city": "Oslo"})"));
  EXPECT_TRUE(grammar::Accepts(automatic->response_format, "{}"));  // now()'s
  EXPECT_FALSE(grammar::Prefix(automatic->response_format, "Oslo"));
  // The arguments' end ends the bound stretch, so the next call's [TOOL_CALLS] may follow.
  grammar::Matcher arguments(automatic->response_format);
  ASSERT_TRUE(arguments.Advance(R"({"city": "Oslo"})"));
  EXPECT_TRUE(arguments.IsFinished());
  pb::GenerateRequest one = WeatherRequest(pb::ToolChoice::MODE_AUTO);
  one.mutable_chat()->set_parallel_tool_calls(false);
  EXPECT_TRUE(ToJobRequest(one, tok.get(), limits)->format_trigger->once);
  auto required = ToJobRequest(WeatherRequest(pb::ToolChoice::MODE_REQUIRED), tok.get(), limits);
  ASSERT_TRUE(required.ok()) << required.status();
  EXPECT_EQ(required->tokens.back(), kToolCalls);
  ASSERT_TRUE(required->format_trigger.has_value());
  EXPECT_EQ(required->format_trigger->token, kArgs);
  auto named =
      ToJobRequest(WeatherRequest(pb::ToolChoice::MODE_REQUIRED, "get_weather"), tok.get(), limits);
  ASSERT_TRUE(named.ok()) << named.status();
  const std::vector<int32_t> suffix(named->tokens.end() - 13, named->tokens.end());
  EXPECT_EQ(suffix, tokenizer::testing::Join(
                        {{kToolCalls}, tokenizer::testing::Bytes("get_weather"), {kArgs}}));
  EXPECT_FALSE(named->format_trigger.has_value());  // bound from the reply's start
  EXPECT_TRUE(grammar::Accepts(named->response_format, R"({"city": "Oslo"})"));
  EXPECT_FALSE(grammar::Prefix(named->response_format, R"({"town")"));
  EXPECT_FALSE(grammar::Accepts(named->response_format, "{}"));  // get_weather needs a city
  EXPECT_FALSE(
      ToJobRequest(WeatherRequest(pb::ToolChoice::MODE_REQUIRED, "rm"), tok.get(), limits).ok());
  EXPECT_FALSE(
      ToJobRequest(WeatherRequest(pb::ToolChoice::MODE_AUTO, "now"), tok.get(), limits).ok());
  pb::GenerateRequest none = WeatherRequest(pb::ToolChoice::MODE_NONE);
  EXPECT_TRUE(ToJobRequest(none, tok.get(), limits)->spelled_control_ids.empty());

  const auto parse = [&](const pb::GenerateRequest& request, std::string text) {
    auto parser = ReplyParser(request, tok.get(), ChatFormat::kMistral);
    EXPECT_TRUE(parser.has_value());
    pb::GenerateResponse response;
    response.add_token_ids(kToolCalls);
    response.set_text(std::move(text));
    response.mutable_final()->set_finish_reason(pb::FINISH_REASON_EOS);
    ParseToolCalls(*parser, true, &response);
    return response;
  };
  const pb::GenerateResponse called =
      parse(WeatherRequest(pb::ToolChoice::MODE_AUTO),
            R"(Sure.[TOOL_CALLS]get_weather[ARGS]{"city": "Oslo"}[TOOL_CALLS]now[ARGS]{})");
  EXPECT_EQ(called.text(), "Sure.");
  ASSERT_EQ(called.tool_calls_size(), 2);
  EXPECT_EQ(called.tool_calls(0).arguments(), R"({"city":"Oslo"})");
  EXPECT_EQ(called.final().finish_reason(), pb::FINISH_REASON_TOOL_CALLS);
  EXPECT_EQ(parse(WeatherRequest(pb::ToolChoice::MODE_REQUIRED), "now[ARGS]{}").tool_calls_size(),
            1);
  const pb::GenerateResponse forced =
      parse(WeatherRequest(pb::ToolChoice::MODE_REQUIRED, "get_weather"), R"({"city": "Rome"})");
  ASSERT_EQ(forced.tool_calls_size(), 1);
  EXPECT_EQ(forced.tool_calls(0).name(), "get_weather");
  const pb::GenerateResponse text = parse(WeatherRequest(pb::ToolChoice::MODE_AUTO), "Sunny.");
  EXPECT_EQ(text.text(), "Sunny.");
  EXPECT_EQ(text.final().finish_reason(), pb::FINISH_REASON_EOS);
}

}  // namespace
}  // namespace ringserve::server
