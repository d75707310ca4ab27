// Streamed tool calls: a reply's calls, held to their grammar, go out as deltas (the name
// first, then the arguments' text piece by piece) however the reply is cut into messages, and
// each whole call then has its deltas' id and arguments.
#include "worker/tokenizer/call_streamer.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "worker/tokenizer/tool_calls.h"

namespace ringserve::tokenizer {
namespace {

// What a client puts together from the deltas: each call's id, name and arguments by index.
struct Assembled {
  std::map<int, ToolCall> calls;
  std::vector<ToolCall> whole;
  std::string text;
};

// `reply` fed in pieces of `piece` bytes (Mistral: after its [TOOL_CALLS] marker).
Assembled Stream(ChatFormat format, std::string_view reply, size_t piece) {
  constexpr int32_t kMarker = 7;
  ToolCallParser parser(format, {"get_weather", "now"},
                        /*calls_open=*/format == ChatFormat::kMistral, kMarker, /*stream=*/true);
  Assembled got;
  const auto take = [&](ToolCallParser::Output out) {
    for (const ToolCallDelta& delta : out.deltas) {
      ToolCall& call = got.calls[delta.index];
      EXPECT_TRUE(delta.id.empty() || call.id.empty()) << "a call is named once";
      if (!delta.id.empty()) {
        call.id = delta.id;
        call.name = delta.name;
      } else {
        EXPECT_FALSE(call.id.empty()) << "arguments come after the call's name";
      }
      call.arguments += delta.arguments;
    }
    got.whole.insert(got.whole.end(), out.calls.begin(), out.calls.end());
    got.text += out.text;
  };
  for (size_t at = 0; at < reply.size(); at += piece) take(parser.Feed(reply.substr(at, piece)));
  take(parser.Finish());
  return got;
}

// Every piece size gives the same calls, whose deltas put together are the whole calls.
void ExpectStreamed(ChatFormat format, std::string_view reply,
                    const std::vector<std::pair<std::string, std::string>>& calls,
                    std::string_view text = "") {
  for (size_t piece = 1; piece <= reply.size(); ++piece) {
    SCOPED_TRACE(piece);
    const Assembled got = Stream(format, reply, piece);
    ASSERT_EQ(got.calls.size(), calls.size());
    ASSERT_EQ(got.whole.size(), calls.size());
    for (size_t i = 0; i < calls.size(); ++i) {
      const ToolCall& streamed = got.calls.at(static_cast<int>(i));
      EXPECT_EQ(streamed.name, calls[i].first);
      EXPECT_EQ(streamed.arguments, calls[i].second);
      EXPECT_EQ(got.whole[i].id, streamed.id);
      EXPECT_EQ(got.whole[i].name, streamed.name);
      EXPECT_EQ(got.whole[i].arguments, streamed.arguments);
    }
    EXPECT_EQ(got.text, text);
  }
}

TEST(CallStreamerTest, ChatMlCallsStreamTheirArgumentsAsWritten) {
  const std::string nested = R"({"city": "Pa\"ris}", "days": [1, {"at": "]"}], "x": null})";
  ExpectStreamed(ChatFormat::kChatMl,
                 "Let me look.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": " + nested +
                     "}\n</tool_call>\n<tool_call>\n{\"name\": \"now\", \"arguments\": {}}\n"
                     "</tool_call>",
                 {{"get_weather", nested}, {"now", "{}"}}, "Let me look.");
}

TEST(CallStreamerTest, LlamaAndMistralCallsStreamAlike) {
  ExpectStreamed(ChatFormat::kLlama31,
                 R"({"name": "get_weather", "parameters": {"city": "Paris", "n": 2}})",
                 {{"get_weather", R"({"city": "Paris", "n": 2})"}});
  ExpectStreamed(ChatFormat::kMistral,
                 R"( [{"name": "now", "arguments": {}}, )"
                 R"({"name": "get_weather", "arguments": {"city": "Rome"}}])",
                 {{"now", "{}"}, {"get_weather", R"({"city": "Rome"})"}});
}

// A reply cut short inside a call: its deltas went out, no whole call follows, and its text is
// the reply's text.
TEST(CallStreamerTest, ACallCutShortHasDeltasAndNoWholeCall) {
  const std::string reply = R"(<tool_call>
{"name": "get_weather", "arguments": {"city": "Par)";
  const Assembled got = Stream(ChatFormat::kChatMl, reply, 5);
  ASSERT_EQ(got.calls.size(), 1U);
  EXPECT_EQ(got.calls.at(0).arguments, R"({"city": "Par)");
  EXPECT_TRUE(got.whole.empty());
  EXPECT_EQ(got.text, reply);
}

// Text that leaves the calls' shape (a tool the request does not offer, another key) streams
// nothing, and the parser keeps its own judgement of the call.
TEST(CallStreamerTest, TextOutsideTheShapeStreamsNothing) {
  for (const std::string body :
       {R"({"name": "rm", "arguments": {}})", R"({"arguments": {}, "name": "now"})"}) {
    const Assembled got = Stream(ChatFormat::kChatMl, "<tool_call>\n" + body + "\n</tool_call>", 3);
    EXPECT_TRUE(got.calls.empty()) << body;
  }
  // Arguments written as a string holding an object: streamed as written, but the whole call
  // has the object the parser read from it.
  const Assembled quoted = Stream(ChatFormat::kChatMl,
                                  "<tool_call>\n{\"name\": \"now\", \"arguments\": "
                                  "\"{\\\"tz\\\": 1}\"}\n</tool_call>",
                                  4);
  ASSERT_EQ(quoted.whole.size(), 1U);
  EXPECT_EQ(quoted.calls.at(0).arguments, R"("{\"tz\": 1}")");
  EXPECT_EQ(quoted.whole[0].arguments, R"({"tz":1})");
  // The second, parsed though not streamed, keeps the parser's re-serialized arguments.
  const Assembled unordered = Stream(
      ChatFormat::kChatMl, "<tool_call>\n{\"arguments\": {}, \"name\": \"now\"}\n</tool_call>", 4);
  ASSERT_EQ(unordered.whole.size(), 1U);
  EXPECT_EQ(unordered.whole[0].arguments, "{}");

  // A streamer followed directly: each stretch restarts, indices go on.
  CallStreamer streamer(ChatFormat::kChatMl, {"now"});
  std::vector<ToolCallDelta> out;
  const std::string held = "\n{\"name\": \"now\", \"arguments\": 5";
  streamer.Scan(held, out);
  ASSERT_EQ(out.size(), 1U);
  EXPECT_EQ(out[0].arguments, "5");
  EXPECT_FALSE(streamer.stretch()[0].complete);  // a number may go on until what follows it
  streamer.Scan(held + "}\n", out);
  EXPECT_EQ(out.size(), 1U);
  EXPECT_TRUE(streamer.stretch()[0].complete);
  streamer.Restart();
  streamer.Scan("{\"name\": \"now\", ", out);
  EXPECT_EQ(out.back().index, 1);
}

}  // namespace
}  // namespace ringserve::tokenizer
