// The deepseek chat format (R1's distills) on a byte-level vocabulary where its role markers
// and thought tags are user-defined tokens, as the distills add them: exact ids of what the
// template writes, the thought it opens and the earlier thoughts it drops, and refusals.
#include "worker/tokenizer/deepseek_chat.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/unit/tokenizer/chat_vocabulary.h"
#include "worker/tokenizer/chat_format.h"

namespace ringserve::tokenizer {
namespace {

using ::testing::HasSubstr;
using namespace testing;  // NOLINT(google-build-using-namespace): the ids and Bytes()

// R1's template in its later form: the generation prompt opens the thought.
constexpr char kR1Template[] =
    "{{ bos_token }}{{ ns.system_prompt }}{% for message in messages %}{% if message['role'] == "
    "'user' %}{{ '<｜User｜>' + message['content'] }}{% endif %}{% if message['role'] == "
    "'assistant' %}{% set content = message['content'] %}{% if '</think>' in content %}{% set "
    "content = content.split('</think>')[-1] %}{% endif %}{{ '<｜Assistant｜>' + content + "
    "'<｜end▁of▁sentence｜>' }}{% endif %}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<｜Assistant｜><think>\\n' }}{% endif %}";
// The first R1 template: the model opens its own thought.
constexpr char kFirstR1Template[] =
    "{% if '</think>' in content %}{{ '<｜Assistant｜>' + content }}{% endif %}";

TEST(DeepSeekChatTest, TheTemplateIsToldAndItsMarkersAreFound) {
  EXPECT_EQ(DetectChatFormat(kR1Template), ChatFormat::kDeepSeek);
  EXPECT_EQ(ChatFormatNamed("deepseek"), ChatFormat::kDeepSeek);
  const auto tok = DeepSeekTokenizer(kR1Template);
  EXPECT_EQ(AutoChatFormat(*tok), ChatFormat::kDeepSeek);
  EXPECT_EQ(EndOfTurnId(*tok, ChatFormat::kDeepSeek), kDeepSeekEos);
  EXPECT_FALSE(ChatStopId(*tok, ChatFormat::kDeepSeek).has_value());  // it is the EOS
  EXPECT_EQ(ThinkingOf(*tok, ChatFormat::kDeepSeek), Thinking::kAlways);
  EXPECT_EQ(ThinkingOf(*DeepSeekTokenizer(kFirstR1Template), ChatFormat::kDeepSeek),
            Thinking::kOptional);
  EXPECT_EQ(ThinkingOf(*DeepSeekTokenizer("<｜Assistant｜>"), ChatFormat::kDeepSeek),
            Thinking::kNone);
  EXPECT_FALSE(CanRender(*ChatTokenizer(), ChatFormat::kDeepSeek));
}

TEST(DeepSeekChatTest, TurnsFollowTheirMarkersAndEarlierThoughtsAreDropped) {
  const auto tok = DeepSeekTokenizer(kR1Template);
  const std::vector<ChatMessage> conversation = {
      {"system", "Be brief."},
      {"user", "Hi"},
      {"assistant", "<think>\nGreet back.\n</think>\n\nHello."},
      {"user", "2+2?"}};
  auto ids = EncodeChat(*tok, ChatFormat::kDeepSeek, conversation, {.start = true});
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_EQ(*ids, Join({{kDeepSeekBos},
                        Bytes("Be brief."),
                        {kDeepSeekUserId},
                        Bytes("Hi"),
                        {kDeepSeekAssistantId},
                        Bytes("\n\nHello."),
                        {kDeepSeekEos, kDeepSeekUserId},
                        Bytes("2+2?"),
                        {kDeepSeekAssistantId, kThink},
                        Bytes("\n")}));
  // A thought switched off is closed at once; an appended turn follows the reply's EOS.
  auto closed =
      EncodeChat(*tok, ChatFormat::kDeepSeek, {{{"user", "Hi"}}}, {.start = false, .think = false});
  ASSERT_TRUE(closed.ok()) << closed.status();
  EXPECT_EQ(*closed, Join({{kDeepSeekUserId},
                           Bytes("Hi"),
                           {kDeepSeekAssistantId, kThink},
                           Bytes("\n\n"),
                           {kThinkEnd},
                           Bytes("\n\n")}));
  // A continued reply follows the opened thought, its own thought kept.
  auto continued = EncodeChat(*tok, ChatFormat::kDeepSeek,
                              {{{"user", "Hi"}, {"assistant", "Greet.\n</think>\n\nHel"}}},
                              {.start = false, .continue_final = true});
  ASSERT_TRUE(continued.ok()) << continued.status();
  EXPECT_EQ(*continued, Join({{kDeepSeekUserId},
                              Bytes("Hi"),
                              {kDeepSeekAssistantId, kThink},
                              Bytes("\nGreet.\n"),
                              {kThinkEnd},
                              Bytes("\n\nHel")}));
  // The first template leaves the thought to the model unless it is switched off.
  const auto first = DeepSeekTokenizer(kFirstR1Template);
  EXPECT_EQ(*EncodeChat(*first, ChatFormat::kDeepSeek, {{{"user", "Hi"}}}, {.start = false}),
            Join({{kDeepSeekUserId}, Bytes("Hi"), {kDeepSeekAssistantId}}));
}

TEST(DeepSeekChatTest, WhatTheFormatCannotWriteIsRefused) {
  const auto tok = DeepSeekTokenizer(kR1Template);
  const auto refusal = [&](const std::vector<ChatMessage>& messages, bool start,
                           const std::vector<ChatTool>& tools = {}) {
    auto ids = EncodeChat(*tok, ChatFormat::kDeepSeek, messages, {.start = start, .tools = tools});
    EXPECT_EQ(ids.status().code(), absl::StatusCode::kInvalidArgument);
    return std::string(ids.status().message());
  };
  EXPECT_THAT(refusal({{"system", "Late."}, {"user", "Hi"}}, false),
              HasSubstr("chat.messages[0]: the deepseek chat format writes a system message only"));
  EXPECT_THAT(refusal({{"user", "Hi"}, {"system", "Late."}}, true),
              HasSubstr("chat.messages[1]: the deepseek chat format takes a system message first"));
  EXPECT_THAT(refusal({{"user", "Hi"}}, true, {{.name = "now"}}),
              HasSubstr("chat.tools: the deepseek chat format has no tool calling"));
  EXPECT_THAT(refusal({{"user", "Hi"}, {"tool", "1"}}, true),
              HasSubstr("chat.messages[1].role: 'tool'"));
}

}  // namespace
}  // namespace ringserve::tokenizer
