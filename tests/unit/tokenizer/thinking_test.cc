// Models that think before they answer: how their templates are told apart, what the
// generation prompt holds with the thought on or off, earlier replies written back without
// their thought, and a streamed reply split into thought and answer.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "tests/unit/tokenizer/chat_vocabulary.h"
#include "worker/tokenizer/chat_format.h"
#include "worker/tokenizer/thought_splitter.h"

namespace ringserve::tokenizer {
namespace {

using namespace testing;  // NOLINT(google-build-using-namespace): the ids and Bytes()

// Fragments of the templates' sources that tell the kinds apart.
constexpr char kQwen3Like[] =
    "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n"
    "</think>\\n\\n' }}{%- endif %} <|im_start|>";
constexpr char kQwqLike[] = "{{- '<|im_start|>assistant\\n<think>\\n' }}";

std::unique_ptr<Tokenizer> WithTemplate(const std::string& chat_template) {
  return ChatTokenizer(/*llama3=*/true, chat_template);
}

TEST(ThinkingTest, TemplatesSayWhetherAndHowTheModelThinks) {
  EXPECT_EQ(ThinkingOf(*WithTemplate(kQwen3Like), ChatFormat::kChatMl), Thinking::kOptional);
  EXPECT_EQ(ThinkingOf(*WithTemplate(kQwqLike), ChatFormat::kChatMl), Thinking::kAlways);
  EXPECT_EQ(ThinkingOf(*WithTemplate("<|im_start|>"), ChatFormat::kChatMl), Thinking::kNone);
  EXPECT_EQ(ThinkingOf(*WithTemplate(kQwen3Like), ChatFormat::kLlama3), Thinking::kNone);
  EXPECT_EQ(ThinkingName(Thinking::kOptional), "optional");
}

TEST(ThinkingTest, TheGenerationPromptOpensOrClosesTheThought) {
  const std::vector<ChatMessage> messages = {{"user", "Hi"}};
  const std::vector<int32_t> user = Join({{kImStart}, Bytes("user\nHi"), {kImEnd}, Bytes("\n")});
  const std::vector<int32_t> header = Join({{kImStart}, Bytes("assistant\n")});
  const auto qwen3 = WithTemplate(kQwen3Like);
  EXPECT_EQ(*EncodeChat(*qwen3, ChatFormat::kChatMl, messages, {.start = true}),
            Join({user, header}));
  EXPECT_EQ(*EncodeChat(*qwen3, ChatFormat::kChatMl, messages, {.start = true, .think = false}),
            Join({user, header, Bytes("<think>\n\n</think>\n\n")}));
  // Asked to open it (a constraint binds after it), Qwen3's prompt opens the thought as QwQ's.
  EXPECT_EQ(
      *EncodeChat(*qwen3, ChatFormat::kChatMl, messages, {.start = true, .open_thought = true}),
      Join({user, header, Bytes("<think>\n")}));
  const auto qwq = WithTemplate(kQwqLike);
  EXPECT_EQ(*EncodeChat(*qwq, ChatFormat::kChatMl, messages, {.start = true}),
            Join({user, header, Bytes("<think>\n")}));
  EXPECT_EQ(*EncodeChat(*qwq, ChatFormat::kChatMl, messages, {.start = true, .think = false}),
            Join({user, header, Bytes("<think>\n\n</think>\n\n")}));
  // Other models: the flag changes nothing.
  const auto plain = WithTemplate("<|im_start|>");
  EXPECT_EQ(*EncodeChat(*plain, ChatFormat::kChatMl, messages, {.start = true, .think = false}),
            Join({user, header}));
}

// A continued reply follows what the generation prompt writes of the thought, and keeps its
// own thought: it is the reply so far, not an earlier one.
TEST(ThinkingTest, AContinuedReplyFollowsTheThoughtsOpening) {
  const std::vector<int32_t> prompt = Join(
      {{kImStart}, Bytes("user\nHi"), {kImEnd}, Bytes("\n"), {kImStart}, Bytes("assistant\n")});
  const auto continued = [](const Tokenizer& tok, std::string_view reply, bool think) {
    const std::vector<ChatMessage> messages = {{"user", "Hi"}, {"assistant", std::string(reply)}};
    return *EncodeChat(tok, ChatFormat::kChatMl, messages,
                       {.start = true, .think = think, .continue_final = true});
  };
  const auto qwq = WithTemplate(kQwqLike);
  EXPECT_EQ(continued(*qwq, "The user", true), Join({prompt, Bytes("<think>\nThe user")}));
  const auto qwen3 = WithTemplate(kQwen3Like);
  EXPECT_EQ(continued(*qwen3, "Answer:", false),
            Join({prompt, Bytes("<think>\n\n</think>\n\nAnswer:")}));
  EXPECT_EQ(continued(*qwen3, "<think>\nPlan.\n</think>\n\nHel", true),
            Join({prompt, Bytes("<think>\nPlan.\n</think>\n\nHel")}));
}

TEST(ThinkingTest, EarlierRepliesAreWrittenBackWithoutTheirThought) {
  const auto qwen3 = WithTemplate(kQwen3Like);
  const std::vector<ChatMessage> messages = {
      {"user", "Hi"}, {"assistant", "<think>\nGreet.\n</think>\n\nHello!"}, {"user", "Bye"}};
  const std::vector<int32_t> end = {kImEnd, '\n', kImStart};
  EXPECT_EQ(*EncodeChat(*qwen3, ChatFormat::kChatMl, messages, {.start = true}),
            Join({{kImStart},
                  Bytes("user\nHi"),
                  end,
                  Bytes("assistant\nHello!"),
                  end,
                  Bytes("user\nBye"),
                  end,
                  Bytes("assistant\n")}));
  // A model that does not think keeps the reply as it is.
  const auto plain = WithTemplate("<|im_start|>");
  EXPECT_EQ(*EncodeChat(*plain, ChatFormat::kChatMl, messages, {.start = true}),
            Join({{kImStart},
                  Bytes("user\nHi"),
                  end,
                  Bytes("assistant\n<think>\nGreet.\n</think>\n\nHello!"),
                  end,
                  Bytes("user\nBye"),
                  end,
                  Bytes("assistant\n")}));
}

// Every split of `reply` in two gives this thought and answer.
void ExpectSplit(bool opened, const std::string& reply, const std::string& thought,
                 const std::string& answer) {
  for (size_t split = 0; split <= reply.size(); ++split) {
    ThoughtSplitter splitter(opened);
    ThoughtSplitter::Output out = splitter.Feed(reply.substr(0, split));
    for (ThoughtSplitter::Output more : {splitter.Feed(reply.substr(split)), splitter.Finish()}) {
      out.thought += more.thought;
      out.answer += more.answer;
    }
    ASSERT_EQ(out.thought, thought) << "split at " << split << " of " << reply;
    ASSERT_EQ(out.answer, answer) << "split at " << split << " of " << reply;
  }
}

TEST(ThinkingTest, AStreamedReplySplitsIntoThoughtAndAnswer) {
  ExpectSplit(false, "<think>\nLet me see: 2 + 2.\nIt is 4.\n</think>\n\nFour.",
              "Let me see: 2 + 2.\nIt is 4.", "Four.");
  ExpectSplit(true, "The user greets.\n</think>\n\nHello! <b>", "The user greets.", "Hello! <b>");
  ExpectSplit(false, "<think>\n\n</think>\n\nJust the answer.", "", "Just the answer.");
  ExpectSplit(false, "No thought here </think>", "", "No thought here </think>");
  ExpectSplit(false, "  <thin", "", "  <thin");
  ExpectSplit(false, "<think>\nCut short ", "Cut short", "");
  ExpectSplit(true, "", "", "");

  // The thought streams as it comes; only a possible tag and whitespace wait.
  ThoughtSplitter splitter(false);
  EXPECT_EQ(splitter.Feed("<think>\nA b").thought, "A b");
  EXPECT_EQ(splitter.Feed(" c </thi").thought, " c");
  const ThoughtSplitter::Output end = splitter.Feed("nk>\n\nD");
  EXPECT_EQ(end.thought, "");
  EXPECT_EQ(end.answer, "D");
}

// A continued reply: the client's start sets where the reply stands, and only what follows
// it comes out, however the continuation is cut.
void ExpectResumed(bool opened, const std::string& start, const std::string& rest,
                   const std::string& thought, const std::string& answer) {
  for (size_t split = 0; split <= rest.size(); ++split) {
    ThoughtSplitter splitter(opened);
    splitter.Resume(start);
    ThoughtSplitter::Output out = splitter.Feed(rest.substr(0, split));
    for (ThoughtSplitter::Output more : {splitter.Feed(rest.substr(split)), splitter.Finish()}) {
      out.thought += more.thought;
      out.answer += more.answer;
    }
    ASSERT_EQ(out.thought, thought) << start << "|" << rest << " split at " << split;
    ASSERT_EQ(out.answer, answer) << start << "|" << rest << " split at " << split;
  }
}

TEST(ThinkingTest, AResumedReplyReturnsOnlyItsContinuation) {
  // Whitespace the start ended on is the client's, though held back at the time.
  ExpectResumed(true, "I think\n", "so.\n</think>\n\nYes", "so.", "Yes");
  ExpectResumed(true, "I think", " so.</think>Yes", " so.", "Yes");
  // A tag the start began is finished by the continuation, or turns out to be text.
  ExpectResumed(false, "<thi", "nk>\nhm</think>ok", "hm", "ok");
  ExpectResumed(false, "<thi", "ng>", "", "ng>");
  ExpectResumed(false, "  ", "Hi", "", "Hi");
  // A start past the thought, or with none.
  ExpectResumed(true, "Done.</think>\n", "\nAnswer", "", "Answer");
  ExpectResumed(false, "Sure", " thing", "", " thing");
  ExpectResumed(false, "", "<think>a</think>b", "a", "b");
}

}  // namespace
}  // namespace ringserve::tokenizer
