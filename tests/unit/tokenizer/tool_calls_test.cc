// Tool calling: how each format writes the tools, calls and results into a conversation (exact
// ids on a vocabulary where plain text is one token per byte), what it refuses, and how calls
// are taken back out of a streamed reply.
#include "worker/tokenizer/tool_calls.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "tests/unit/tokenizer/chat_vocabulary.h"
#include "worker/tokenizer/chat_format.h"
#include "worker/tokenizer/stream_decoder.h"

namespace ringserve::tokenizer {
namespace {

using ::testing::HasSubstr;
using namespace testing;  // NOLINT(google-build-using-namespace): the ids and Bytes()

std::unique_ptr<Tokenizer> Make(bool llama3 = true) { return ChatTokenizer(llama3); }

const std::vector<ChatTool> kTools = {
    {.name = "get_weather",
     .description = "Current weather in a city.",
     .parameters = R"({"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"]})"},
    {.name = "now", .description = "", .parameters = ""}};

TEST(ToolCallsTest, ChatMlOffersTheToolsAfterTheSystemMessage) {
  const auto tok = Make();
  const std::string tools = ToolsText(ChatFormat::kChatMl, kTools);
  // One tool a line, as the templates' tojson writes it; a tool without parameters takes
  // any object.
  EXPECT_THAT(tools, HasSubstr("<tools>\n{\"type\": \"function\", \"function\": {\"name\": "
                               "\"get_weather\", \"description\": \"Current weather in a city.\", "
                               "\"parameters\": {\"type\": \"object\", \"properties\": {\"city\": "
                               "{\"type\": \"string\"}}, \"required\": [\"city\"]}}}\n{\"type\": "
                               "\"function\", \"function\": {\"name\": \"now\", \"parameters\": "
                               "{\"type\": \"object\"}}}\n</tools>"));
  EXPECT_THAT(tools, HasSubstr("<tool_call>\n{\"name\": <function-name>, \"arguments\": "));
  const std::vector<ChatMessage> messages = {{"system", "Be brief."}, {"user", "Hi"}};
  auto ids = EncodeChat(*tok, ChatFormat::kChatMl, messages, {.start = true, .tools = kTools});
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_EQ(*ids, Join({{kImStart},
                        Bytes(absl::StrCat("system\nBe brief.\n\n", tools)),
                        {kImEnd},
                        Bytes("\n"),
                        {kImStart},
                        Bytes("user\nHi"),
                        {kImEnd},
                        Bytes("\n"),
                        {kImStart},
                        Bytes("assistant\n")}));
  // Without a system message the default one leads; an appended turn offers nothing again.
  auto fallback = EncodeChat(*tok, ChatFormat::kChatMl, {{{"user", "Hi"}}},
                             {.start = true, .default_system = "Hi.", .tools = kTools});
  ASSERT_TRUE(fallback.ok()) << fallback.status();
  const std::vector<int32_t> opening = Join({{kImStart}, Bytes("system\nHi.\n\n# Tools")});
  EXPECT_EQ(std::vector<int32_t>(fallback->begin(), fallback->begin() + opening.size()), opening);
  EXPECT_EQ(
      *EncodeChat(*tok, ChatFormat::kChatMl, {{{"user", "Hi"}}}, {.start = false, .tools = kTools}),
      *EncodeChat(*tok, ChatFormat::kChatMl, {{{"user", "Hi"}}}, {.start = false}));
}

TEST(ToolCallsTest, ChatMlWritesCallsAndGroupsResultsInOneUserTurn) {
  const auto tok = Make();
  const std::vector<ChatMessage> messages = {{"user", "Weather in Paris and Rome?"},
                                             {"assistant",
                                              "",
                                              {{"call_1", "get_weather", R"({"city":"Paris"})"},
                                               {"call_2", "get_weather", R"({"city": "Rome"})"}}},
                                             {"tool", "18C"},
                                             {"tool", "24C"},
                                             {"assistant", "Checking.", {{"call_3", "now", "{}"}}},
                                             {"tool", "noon"}};
  auto ids = EncodeChat(*tok, ChatFormat::kChatMl, messages, {.start = true});
  ASSERT_TRUE(ids.ok()) << ids.status();
  const std::vector<int32_t> end = {kImEnd, '\n', kImStart};
  EXPECT_EQ(*ids,
            Join({{kImStart},
                  Bytes("user\nWeather in Paris and Rome?"),
                  end,
                  Bytes("assistant\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": "
                        "{\"city\": \"Paris\"}}\n</tool_call>\n<tool_call>\n{\"name\": "
                        "\"get_weather\", \"arguments\": {\"city\": \"Rome\"}}\n</tool_call>"),
                  end,
                  Bytes("user\n<tool_response>\n18C\n</tool_response>\n<tool_response>\n24C\n"
                        "</tool_response>"),
                  end,
                  Bytes("assistant\nChecking.\n<tool_call>\n{\"name\": \"now\", \"arguments\": "
                        "{}}\n</tool_call>"),
                  end,
                  Bytes("user\n<tool_response>\nnoon\n</tool_response>"),
                  end,
                  Bytes("assistant\n")}));
  auto bad =
      EncodeChat(*tok, ChatFormat::kChatMl,
                 {{{"user", "a"}, {"assistant", "", {{"c", "now", "[1]"}}}}}, {.start = true});
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(),
              HasSubstr("chat.messages[1].tool_calls[0].arguments: not a JSON object"));
  auto from_user = EncodeChat(*tok, ChatFormat::kChatMl, {{{"user", "a", {{"c", "now", "{}"}}}}},
                              {.start = true});
  EXPECT_THAT(from_user.status().message(), HasSubstr("only assistant turns make calls"));
}

TEST(ToolCallsTest, Llama31OffersToolsInTheFirstUserMessageAndResultsAsIpython) {
  const auto tok = Make();
  const std::vector<ChatMessage> messages = {
      {"user", " Weather in Paris? "},
      {"assistant", "ignored", {{"c1", "get_weather", R"({"city":"Paris"})"}}},
      {"tool", " 18C "}};
  auto ids = EncodeChat(*tok, ChatFormat::kLlama31, messages, {.start = true, .tools = kTools});
  ASSERT_TRUE(ids.ok()) << ids.status();
  const std::string tools = ToolsText(ChatFormat::kLlama31, kTools);
  EXPECT_THAT(tools, HasSubstr("\"parameters\": object of argument names and values}"));
  EXPECT_THAT(tools, HasSubstr("{\n    \"type\": \"function\",\n    \"function\": {\n"));
  const auto header = [](std::string_view role) {
    return Join({{kStartHeader}, Bytes(role), {kEndHeader}, Bytes("\n\n")});
  };
  EXPECT_EQ(*ids, Join({{kBeginOfText},
                        header("system"),
                        Bytes("Environment: ipython\nCutting Knowledge Date: December 2023\n"
                              "Today Date: 26 Jul 2024\n\n"),
                        {kEotId},
                        header("user"),
                        Bytes(absl::StrCat(tools, "Weather in Paris?")),
                        {kEotId},
                        header("assistant"),
                        Bytes(R"({"name": "get_weather", "parameters": {"city": "Paris"}})"),
                        {kEotId},
                        header("ipython"),
                        Bytes(" 18C "),
                        {kEotId},
                        header("assistant")}));

  auto two = EncodeChat(
      *tok, ChatFormat::kLlama32,
      {{{"user", "a"}, {"assistant", "", {{"a", "now", "{}"}, {"b", "now", "{}"}}}, {"user", "b"}}},
      {.start = true});
  EXPECT_THAT(two.status().message(), HasSubstr("writes one call a turn"));
  auto no_user =
      EncodeChat(*tok, ChatFormat::kLlama31, {{{"system", "s"}}}, {.start = true, .tools = kTools});
  EXPECT_THAT(no_user.status().message(), HasSubstr("offers tools in the first user message"));
}

TEST(ToolCallsTest, FormatsWithoutToolCallingAndBadToolsAreRefused) {
  const auto tok = Make();
  // (The [INST] formats refuse them alike: inst_chat_format_test.cc.)
  for (const ChatFormat format : {ChatFormat::kLlama3}) {
    auto tools = EncodeChat(*tok, format, {{{"user", "a"}}}, {.start = true, .tools = kTools});
    EXPECT_EQ(tools.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(tools.status().message(), HasSubstr("chat.tools: the "));
    EXPECT_THAT(tools.status().message(), HasSubstr("has no tool calling"));
    auto result = EncodeChat(*tok, format, {{{"user", "a"}, {"tool", "b"}}}, {.start = true});
    EXPECT_THAT(result.status().message(), HasSubstr("chat.messages[1].role: 'tool'"));
  }
  const auto refusal = [](std::vector<ChatTool> tools) {
    return std::string(CheckTools(tools).message());
  };
  EXPECT_THAT(refusal({{.name = "a b"}}), HasSubstr("chat.tools[0].name: must be 1 to 64"));
  EXPECT_THAT(refusal({{.name = ""}}), HasSubstr("chat.tools[0].name"));
  EXPECT_THAT(refusal({{.name = std::string(65, 'a')}}), HasSubstr("chat.tools[0].name"));
  EXPECT_THAT(refusal({{.name = "a"}, {.name = "a"}}), HasSubstr("'a' is named twice"));
  EXPECT_THAT(refusal({{.name = "a", .parameters = "[]"}}),
              HasSubstr("chat.tools[0].parameters: not a JSON object"));
  EXPECT_THAT(refusal(std::vector<ChatTool>(129, ChatTool{.name = "a"})),
              HasSubstr("129 tools is over the limit of 128"));
  EXPECT_TRUE(CheckTools(kTools).ok());
}

// The parser's output for `reply` fed in two pieces split at `split`.
ToolCallParser::Output Parse(ChatFormat format, std::string_view reply, size_t split) {
  ToolCallParser parser(format, {"get_weather", "now"});
  ToolCallParser::Output out = parser.Feed(reply.substr(0, split));
  ToolCallParser::Output second = parser.Feed(reply.substr(split));
  ToolCallParser::Output rest = parser.Finish();
  for (ToolCallParser::Output* more : {&second, &rest}) {
    out.text += more->text;
    out.calls.insert(out.calls.end(), more->calls.begin(), more->calls.end());
  }
  return out;
}

// Every split of `reply` gives `text` and calls of these names and (compact) arguments.
void ExpectParse(ChatFormat format, std::string_view reply, std::string_view text,
                 const std::vector<std::pair<std::string, std::string>>& calls) {
  for (size_t split = 0; split <= reply.size(); ++split) {
    const ToolCallParser::Output out = Parse(format, reply, split);
    ASSERT_EQ(out.text, text) << "split at " << split << " of " << reply;
    ASSERT_EQ(out.calls.size(), calls.size()) << reply;
    for (size_t i = 0; i < calls.size(); ++i) {
      EXPECT_EQ(out.calls[i].name, calls[i].first);
      EXPECT_EQ(out.calls[i].arguments, calls[i].second);
      EXPECT_THAT(out.calls[i].id, ::testing::MatchesRegex("call_[A-Za-z0-9]{24}"));
    }
  }
}

TEST(ToolCallsTest, ChatMlCallsLeaveTheStreamedText) {
  const std::string call =
      "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"n\": "
      "[1, 2]}}\n</tool_call>";
  const std::pair<std::string, std::string> parsed = {"get_weather",
                                                      R"({"city":"Paris","n":[1,2]})"};
  ExpectParse(ChatFormat::kChatMl, call, "", {parsed});
  ExpectParse(ChatFormat::kChatMl, "Let me look.\n" + call + "\n" + call + "\n", "Let me look.",
              {parsed, parsed});
  ExpectParse(ChatFormat::kChatMl, call + "\n\nDone. \n", "Done.", {parsed});
  // Arguments written as a string holding the object, as some fine-tunes do.
  ExpectParse(ChatFormat::kChatMl,
              "<tool_call>{\"name\": \"now\", \"arguments\": \"{\\\"tz\\\": \\\"UTC\\\"}\"}"
              "</tool_call>",
              "", {{"now", R"({"tz":"UTC"})"}});
  // Not calls: they stay text as written.
  ExpectParse(ChatFormat::kChatMl, "a < b <tool <\n", "a < b <tool <\n", {});
  const std::string unknown = "<tool_call>{\"name\": \"rm\", \"arguments\": {}}</tool_call>";
  ExpectParse(ChatFormat::kChatMl, "x " + unknown, "x" + unknown, {});
  ExpectParse(ChatFormat::kChatMl, "<tool_call>{\"name\": \"now\"", "<tool_call>{\"name\": \"now\"",
              {});
  ExpectParse(ChatFormat::kChatMl, "<tool_call>{\"name\": \"now\", \"arguments\": 3}</tool_call>",
              "<tool_call>{\"name\": \"now\", \"arguments\": 3}</tool_call>", {});

  // Text streams as it comes; only what may be a tag's start is held.
  ToolCallParser parser(ChatFormat::kChatMl, {"now"});
  EXPECT_EQ(parser.Feed("Hello").text, "Hello");
  EXPECT_EQ(parser.Feed(" there <tool").text, " there");
  EXPECT_EQ(parser.Feed("box>").text, " <toolbox>");
  EXPECT_FALSE(parser.made_calls());
}

TEST(ToolCallsTest, Llama3ReplyThatIsOneObjectIsACall) {
  ExpectParse(ChatFormat::kLlama31,
              " {\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\"}}", "",
              {{"get_weather", R"({"city":"Oslo"})"}});
  ExpectParse(ChatFormat::kLlama32, "{\"name\": \"now\", \"arguments\": {}}", "", {{"now", "{}"}});
  ExpectParse(ChatFormat::kLlama31, "{\"name\": \"now\", \"parameters\": {}} and more",
              "{\"name\": \"now\", \"parameters\": {}} and more", {});
  ExpectParse(ChatFormat::kLlama31, "It is {sunny}.", "It is {sunny}.", {});
  ExpectParse(ChatFormat::kLlama31, "  \n", "  \n", {});
  // A reply that does not open with "{" streams at once.
  ToolCallParser parser(ChatFormat::kLlama31, {"now"});
  EXPECT_EQ(parser.Feed("  ").text, "");
  EXPECT_EQ(parser.Feed("Hi {").text, "  Hi {");
}

// Mistral (tokenizer v3): the tools before the last user message, calls after [TOOL_CALLS],
// results between [TOOL_RESULTS] markers, all as JSON arrays and objects.
// `text` fed to `parser` in two pieces cut at `split`, and the reply finished.
ToolCallParser::Output FeedInTwo(ToolCallParser& parser, std::string_view text, size_t split) {
  ToolCallParser::Output out = parser.Feed(text.substr(0, split));
  for (ToolCallParser::Output more : {parser.Feed(text.substr(split)), parser.Finish()}) {
    out.text += more.text;
    out.calls.insert(out.calls.end(), more.calls.begin(), more.calls.end());
  }
  return out;
}

// A Mistral conversation's opening where it offers now() before the user's message.
std::vector<int32_t> MistralOffersNow() {
  return Join({{kMistralBos, kAvailableTools},
               Bytes(R"([{"type": "function", "function": {"name": "now", "parameters": )"
                     R"({"type": "object"}}}])"),
               {kAvailableToolsEnd, kInst}});
}

TEST(ToolCallsTest, MistralWritesToolsCallsAndResultsBetweenItsMarkers) {
  const auto tok = MistralTokenizer();
  const std::vector<ChatTool> now = {kTools[1]};
  auto ids = EncodeChat(*tok, ChatFormat::kMistral,
                        {{{"user", "Time?"},
                          {"assistant", "", {{"A1b2C3d4E", "now", "{}"}}},
                          {"tool", "12:00", {}, "A1b2C3d4E"}}},
                        {.start = true, .tools = now});
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_EQ(*ids, Join({MistralOffersNow(),
                        Bytes("Time?"),
                        {kInstEnd, kToolCalls},
                        Bytes(R"([{"name": "now", "arguments": {}, "id": "A1b2C3d4E"}])"),
                        {kMistralEos, kToolResults},
                        Bytes(R"({"content": "12:00", "call_id": "A1b2C3d4E"})"),
                        {kToolResultsEnd}}));
  EXPECT_TRUE(HasToolCalls(ChatFormat::kMistral));
  EXPECT_TRUE(OffersToolCalls(*tok, ChatFormat::kMistral));
  EXPECT_FALSE(OffersToolCalls(*DeepSeekTokenizer(""), ChatFormat::kDeepSeek));
  EXPECT_TRUE(OffersToolCalls(*ChatTokenizer(), ChatFormat::kChatMl));
  EXPECT_TRUE(OffersToolCalls(*ChatTokenizer(), ChatFormat::kLlama31));
  EXPECT_FALSE(OffersToolCalls(*ChatTokenizer(), ChatFormat::kLlama3));
  EXPECT_FALSE(OffersToolCalls(*ChatTokenizer(), ChatFormat::kMistral));  // no markers
  EXPECT_EQ(MistralToolMarkersOf(*tok)->tool_calls, kToolCalls);
  EXPECT_FALSE(MistralToolMarkersOf(*ChatTokenizer()).has_value());
  EXPECT_THAT(NewCallId(ChatFormat::kMistral), ::testing::MatchesRegex("[A-Za-z0-9]{9}"));
  EXPECT_TRUE(CheckCallId(ChatFormat::kChatMl, "anything", "f").ok());
}

// The Mistral reply's first token says whether it is calls; the array is taken whole, or
// left as text.
TEST(ToolCallsTest, MistralRepliesOpenedByTheMarkerAreCalls) {
  const std::string reply =
      R"( [{"name": "get_weather", "arguments": {"city": "Paris"}}, {"name": "now", )"
      R"("arguments": {}}])";
  const auto parse = [&](std::string_view text, size_t split, bool marker, bool open = false) {
    ToolCallParser parser(ChatFormat::kMistral, {"get_weather", "now"}, open, kToolCalls);
    if (!open) parser.FirstToken(marker ? kToolCalls : 'x');
    parser.FirstToken(kToolCalls);  // a later message's first token changes nothing
    return FeedInTwo(parser, text, split);
  };
  for (size_t split = 0; split <= reply.size(); ++split) {
    for (const bool open : {false, true}) {
      const ToolCallParser::Output out = parse(reply, split, true, open);
      ASSERT_EQ(out.text, "") << split;
      ASSERT_EQ(out.calls.size(), 2U) << split;
      EXPECT_EQ(out.calls[0].name, "get_weather");
      EXPECT_EQ(out.calls[0].arguments, R"({"city":"Paris"})");
      EXPECT_EQ(out.calls[1].name, "now");
      EXPECT_THAT(out.calls[1].id, ::testing::MatchesRegex("[A-Za-z0-9]{9}"));
    }
    // Without the marker the same text is text; an array that is not all calls stays text.
    EXPECT_EQ(parse(reply, split, false).text, reply);
    EXPECT_TRUE(parse(reply, split, false).calls.empty());
  }
  const std::string unknown = R"( [{"name": "now", "arguments": {}}, {"name": "rm"}])";
  EXPECT_EQ(parse(unknown, 3, true).text, unknown);
  EXPECT_EQ(parse(R"({"name": "now", "arguments": {}})", 3, true).calls.size(), 0U);
  // Text streams at once once the first token was another.
  ToolCallParser parser(ChatFormat::kMistral, {"now"}, false, kToolCalls);
  parser.FirstToken('I');
  EXPECT_EQ(parser.Feed("It is [noon]").text, "It is [noon]");
}

// Tokenizer v11 (Mistral Small 3.2, Devstral, Magistral) writes each call by name after the
// reply's text, as mistral-common's InstructTokenizerV11 does; results are v7's.
TEST(ToolCallsTest, MistralV11WritesEachCallByNameAfterTheReplysText) {
  const auto tok = MistralTokenizer(/*v11=*/true);
  const std::vector<ChatTool> now = {kTools[1]};
  auto ids = EncodeChat(
      *tok, ChatFormat::kMistral,
      {{{"user", "Weather?"},
        {"assistant",
         "Checking. ",
         {{"A1b2C3d4E", "get_weather", R"({"city":"Paris"})"}, {"B1b2C3d4E", "now", "{}"}}},
        {"tool", "18C", {}, "A1b2C3d4E"},
        {"tool", "12:00", {}, "B1b2C3d4E"}}},
      {.start = true, .tools = now});
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_EQ(*ids, Join({MistralOffersNow(),
                        Bytes("Weather?"),
                        {kInstEnd},
                        Bytes("Checking."),
                        {kToolCalls},
                        Bytes("get_weather"),
                        {kCallId},
                        Bytes("A1b2C3d4E"),
                        {kArgs},
                        Bytes(R"({"city": "Paris"})"),
                        {kToolCalls},
                        Bytes("now"),
                        {kCallId},
                        Bytes("B1b2C3d4E"),
                        {kArgs},
                        Bytes("{}"),
                        {kMistralEos, kToolResults},
                        Bytes("A1b2C3d4E"),
                        {kToolContent},
                        Bytes("18C"),
                        {kToolResultsEnd, kToolResults},
                        Bytes("B1b2C3d4E"),
                        {kToolContent},
                        Bytes("12:00"),
                        {kToolResultsEnd}}));
  EXPECT_THAT(NamedCallMarkerIds(*MistralToolMarkersOf(*tok)),
              ::testing::ElementsAre(kToolCalls, kArgs, kCallId));
  EXPECT_TRUE(NamedCallMarkerIds(*MistralToolMarkersOf(*MistralTokenizer())).empty());
  // Arguments that are no object, and ids Mistral cannot write, are refused as in v3.
  EXPECT_THAT(EncodeChat(*tok, ChatFormat::kMistral,
                         {{{"user", "Hi"},
                           {"assistant", "", {{"A1b2C3d4E", "now", "[]"}}},
                           {"tool", "1", {}, "A1b2C3d4E"}}},
                         {.start = true})
                  .status()
                  .message(),
              HasSubstr("chat.messages[1].tool_calls[0].arguments"));
  EXPECT_FALSE(EncodeChat(*tok, ChatFormat::kMistral,
                          {{{"user", "Hi"},
                            {"assistant", "", {{"call_1", "now", "{}"}}},
                            {"tool", "1", {}, "call_1"}}},
                          {.start = true})
                   .ok());
}

// Tokenizer v13 (Magistral Small 1.2: a template with [ARGS] and no [CALL_ID]): no ids in
// calls or results, and the tools before the conversation's first user message.
TEST(ToolCallsTest, MistralV13WritesNoIdsAndOffersToolsFirst) {
  const auto tok =
      MistralTokenizer(/*v11=*/true, "[INST]{{ '[TOOL_CALLS]' + name + '[ARGS]' + arguments }}");
  ASSERT_TRUE(MistralToolMarkersOf(*tok)->v13);
  EXPECT_FALSE(MistralToolMarkersOf(*tok)->call_id.has_value());
  EXPECT_FALSE(MistralToolMarkersOf(*MistralTokenizer(true))->v13);  // no template: v11
  EXPECT_FALSE(MistralToolMarkersOf(*MistralTokenizer(true, "[ARGS] [CALL_ID]"))->v13);
  const std::vector<ChatTool> now = {kTools[1]};
  auto ids = EncodeChat(*tok, ChatFormat::kMistral,
                        {{{"user", "Time?"},
                          {"assistant", "", {{"call_1", "now", "{}"}}},
                          {"tool", "12:00", {}, "call_1"}}},
                        {.start = true, .tools = now});
  ASSERT_TRUE(ids.ok()) << ids.status();  // ids it does not write need no Mistral shape
  EXPECT_EQ(*ids, Join({MistralOffersNow(),
                        Bytes("Time?"),
                        {kInstEnd, kToolCalls},
                        Bytes("now"),
                        {kArgs},
                        Bytes("{}"),
                        {kMistralEos, kToolResults},
                        Bytes("12:00"),
                        {kToolResultsEnd}}));
  auto later = EncodeChat(*tok, ChatFormat::kMistral,
                          {{{"user", "Time?"}, {"assistant", "Noon."}, {"user", "Thanks."}}},
                          {.start = true, .tools = now});
  ASSERT_TRUE(later.ok()) << later.status();
  EXPECT_EQ(*later, Join({MistralOffersNow(),
                          Bytes("Time?"),
                          {kInstEnd},
                          Bytes("Noon."),
                          {kMistralEos, kInst},
                          Bytes("Thanks."),
                          {kInstEnd}}));
  // An appended turn relies on its session's tools.
  auto appended =
      EncodeChat(*tok, ChatFormat::kMistral, {{{"user", "More?"}}}, {.start = false, .tools = now});
  ASSERT_TRUE(appended.ok()) << appended.status();
  EXPECT_EQ(*appended, Join({{kInst}, Bytes("More?"), {kInstEnd}}));
  EXPECT_THAT(NamedCallMarkerIds(*MistralToolMarkersOf(*tok)),
              ::testing::ElementsAre(kToolCalls, kArgs));
}

// The template's default system message writes its markers as control tokens (Magistral's
// asks for a [THINK] thought); a client's system message that spells them is text.
TEST(ToolCallsTest, MagistralsDefaultSystemMessageWritesItsThoughtTags) {
  const auto tok = MagistralTokenizer();
  auto ids = EncodeChat(*tok, ChatFormat::kMistral, {{{"user", "Hi"}}},
                        {.start = true, .default_system = "Use [THINK]x[/THINK]."});
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_EQ(*ids, Join({{kMistralBos, kSystemPrompt},
                        Bytes("Use "),
                        {kThinkTag},
                        Bytes("x"),
                        {kThinkEndTag},
                        Bytes("."),
                        {kSystemPromptEnd, kInst},
                        Bytes("Hi"),
                        {kInstEnd}}));
  auto client = EncodeChat(*tok, ChatFormat::kMistral,
                           {{{"system", "Use [THINK]x[/THINK]."}, {"user", "Hi"}}},
                           {.start = true, .default_system = "unused"});
  ASSERT_TRUE(client.ok()) << client.status();
  EXPECT_EQ(*client, Join({{kMistralBos, kSystemPrompt},
                           Bytes("Use [THINK]x[/THINK]."),
                           {kSystemPromptEnd, kInst},
                           Bytes("Hi"),
                           {kInstEnd}}));
}

// The reply's text spells v11's markers (StreamDecoder's `spelled`); its text streams up to the
// first [TOOL_CALLS] and the calls from there are taken whole, or left as written.
TEST(ToolCallsTest, MistralV11CallsFollowTheReplysText) {
  const std::string reply = R"(Let me check.[TOOL_CALLS]get_weather[ARGS]{"city": "Paris"})"
                            R"([TOOL_CALLS]now[CALL_ID]Zz9Yy8Xx7[ARGS]{})";
  const auto parse = [](std::string_view text, size_t split, bool open = false,
                        std::string_view opened = "") {
    ToolCallParser parser(ChatFormat::kMistral, {"get_weather", "now"}, open, kToolCalls, false,
                          /*named_calls=*/true, opened);
    parser.FirstToken(kToolCalls);  // changes nothing: the markers are in the text
    return FeedInTwo(parser, text, split);
  };
  for (size_t split = 0; split <= reply.size(); ++split) {
    const ToolCallParser::Output out = parse(reply, split);
    ASSERT_EQ(out.text, "Let me check.") << split;
    ASSERT_EQ(out.calls.size(), 2U) << split;
    EXPECT_EQ(out.calls[0].name, "get_weather");
    EXPECT_EQ(out.calls[0].arguments, R"({"city":"Paris"})");
    EXPECT_THAT(out.calls[0].id, ::testing::MatchesRegex("[A-Za-z0-9]{9}"));
    EXPECT_EQ(out.calls[1].name, "now");
    EXPECT_EQ(out.calls[1].id, "Zz9Yy8Xx7");  // the model's own id, which it can write
  }
  // Text before a possible marker is held with the whitespace before it.
  ToolCallParser streaming(ChatFormat::kMistral, {"now"}, false, kToolCalls, false, true);
  EXPECT_EQ(streaming.Feed("It is [TOOL").text, "It is");
  EXPECT_EQ(streaming.Feed("S] noon").text, " [TOOLS] noon");
  // Calls that do not all parse stay text as written.
  for (const std::string bad : {"Hi[TOOL_CALLS]rm[ARGS]{}", "[TOOL_CALLS]now{}",
                                "[TOOL_CALLS]now[ARGS]{}[TOOL_CALLS]now[ARGS][1]"}) {
    const ToolCallParser::Output out = parse(bad, 4);
    EXPECT_TRUE(out.calls.empty()) << bad;
    EXPECT_EQ(out.text, bad) << bad;
  }
  // Opened by the prompt: [TOOL_CALLS] alone, or with a named tool's name and [ARGS] too.
  EXPECT_EQ(parse(R"(now[ARGS]{})", 2, true).calls.size(), 1U);
  const ToolCallParser::Output named =
      parse(R"({"city": "Oslo"})", 3, true, R"(get_weather[ARGS])");
  ASSERT_EQ(named.calls.size(), 1U);
  EXPECT_EQ(named.calls[0].arguments, R"({"city":"Oslo"})");
  EXPECT_EQ(parse("{bad", 2, true, "now[ARGS]").text, "{bad");  // only what the reply wrote
}

TEST(ToolCallsTest, StreamDecoderSpellsOnlyTheMarkersItIsGiven) {
  const auto tok = MistralTokenizer(/*v11=*/true);
  StreamDecoder decoder(*tok, -1, {kToolCalls, kArgs});
  std::string text;
  for (const int32_t id : std::vector<int32_t>{'a', kToolCalls, 'n', kArgs, kInst, '{', '}'}) {
    text += decoder.Push(id);
  }
  EXPECT_EQ(text + decoder.Flush(), "a[TOOL_CALLS]n[ARGS]{}");
  StreamDecoder plain(*tok);
  EXPECT_EQ(plain.Push(kToolCalls), "");
}

}  // namespace
}  // namespace ringserve::tokenizer
