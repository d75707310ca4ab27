// The [INST] chat formats (Llama 2 chat, Mistral Instruct v1 and v3) on the real Llama 2
// SentencePiece vocabulary in ../shared (skipped without it). Their templates write a string
// that is then tokenized between its special tokens; each rendering here must equal that:
// BOS / EOS (and v3's [INST] / [/INST] control tokens) around the encoded text pieces.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/unit/tokenizer/test_util.h"
#include "worker/tokenizer/chat_format.h"
#include "worker/tokenizer/llama2c_vocab.h"

namespace ringserve::tokenizer {
namespace {

using ::testing::HasSubstr;

class InstChatFormatTest : public ::testing::Test {
 protected:
  // With `v3`, "[INST]" and "[/INST]" join the vocabulary as control tokens, as in Mistral's
  // tokenizer v3. Leaves tok_ null when it skips or fails: a test returns then.
  void Load(bool v3, bool v7 = false) {
    const std::string path = testing::SharedFile("models/tokenizer.bin");
    if (path.empty()) GTEST_SKIP() << "no shared Llama 2 vocabulary";
    absl::StatusOr<Vocabulary> vocab = ReadLlama2cTokenizer(path);
    ASSERT_TRUE(vocab.ok()) << vocab.status();
    if (v3) {
      if (vocab->types.empty()) vocab->types.assign(vocab->tokens.size(), TokenType::kNormal);
      for (const char* marker : {"[INST]", "[/INST]", "[TOOL_CALLS]", "[AVAILABLE_TOOLS]",
                                 "[/AVAILABLE_TOOLS]", "[TOOL_RESULTS]", "[/TOOL_RESULTS]"}) {
        vocab->tokens.emplace_back(marker);
        vocab->scores.push_back(0);
        vocab->types.push_back(TokenType::kControl);
      }
      open_ = static_cast<int32_t>(vocab->tokens.size()) - 7;
      close_ = open_ + 1;
      calls_ = open_ + 2;
      tools_ = open_ + 3;
      tools_end_ = open_ + 4;
      results_ = open_ + 5;
      results_end_ = open_ + 6;
    }
    if (v7) {
      for (const char* marker : {"[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]", "[TOOL_CONTENT]"}) {
        vocab->tokens.emplace_back(marker);
        vocab->scores.push_back(0);
        vocab->types.push_back(TokenType::kControl);
      }
      system_ = static_cast<int32_t>(vocab->tokens.size()) - 3;
      system_end_ = system_ + 1;
      tool_content_ = system_ + 2;
    }
    absl::StatusOr<std::unique_ptr<Tokenizer>> tok = Tokenizer::Create(*std::move(vocab));
    ASSERT_TRUE(tok.ok()) << tok.status();
    tok_ = *std::move(tok);
    bos_ = tok_->vocab().bos_id;
    eos_ = tok_->vocab().eos_id;
    ASSERT_GE(bos_, 0);
    ASSERT_GE(eos_, 0);
  }

  // A piece of template text between special tokens, as the template's tokenization sees it.
  std::vector<int32_t> Text(const std::string& text) const {
    return tok_->Encode(text, {.add_bos = false, .add_eos = false, .parse_special = false});
  }
  static std::vector<int32_t> Join(std::initializer_list<std::vector<int32_t>> parts) {
    std::vector<int32_t> out;
    for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
    return out;
  }
  std::vector<int32_t> Render(ChatFormat format, const std::vector<ChatMessage>& messages,
                              bool start = true) const {
    auto ids = EncodeChat(*tok_, format, messages, {.start = start});
    EXPECT_TRUE(ids.ok()) << ids.status();
    return ids.value_or(std::vector<int32_t>{});
  }

  std::unique_ptr<Tokenizer> tok_;
  int32_t bos_ = -1, eos_ = -1, open_ = -1, close_ = -1;
  int32_t calls_ = -1, tools_ = -1, tools_end_ = -1, results_ = -1, results_end_ = -1;
  int32_t system_ = -1, system_end_ = -1, tool_content_ = -1;
  const std::vector<ChatMessage> conversation_ = {{"system", "Be brief."},
                                                  {"user", " Hi! "},
                                                  {"assistant", "Hello."},
                                                  {"user", "How are you?"}};
};

TEST_F(InstChatFormatTest, Llama2PutsTheSystemInTheFirstTurnAndOpensEachTurnWithBos) {
  Load(/*v3=*/false);
  if (tok_ == nullptr) return;  // skipped (no shared data) or failed to load
  // The template's string: <s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi! [/INST] Hello. </s>
  // <s>[INST] How are you? [/INST] (contents trimmed).
  EXPECT_EQ(Render(ChatFormat::kLlama2, conversation_),
            Join({{bos_},
                  Text("[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi! [/INST] Hello. "),
                  {eos_, bos_},
                  Text("[INST] How are you? [/INST]")}));
  // An appended turn follows the reply's </s>: it opens with <s> too.
  EXPECT_EQ(Render(ChatFormat::kLlama2, {{"user", "And you?"}}, /*start=*/false),
            Join({{bos_}, Text("[INST] And you? [/INST]")}));
  EXPECT_EQ(EndOfTurnId(*tok_, ChatFormat::kLlama2), eos_);
}

TEST_F(InstChatFormatTest, MistralV1SpellsTheMarkersAndJoinsTheSystemToTheFirstMessage) {
  Load(/*v3=*/false);
  if (tok_ == nullptr) return;  // skipped (no shared data) or failed to load
  // mistral-common v1: <s> [INST] Be brief.\n\n Hi!  [/INST] Hello.</s> [INST] How are you?
  // [/INST], each text between special tokens a piece of its own.
  EXPECT_EQ(Render(ChatFormat::kMistral, conversation_),
            Join({{bos_},
                  Text("[INST] Be brief.\n\n Hi!  [/INST]"),
                  Text("Hello."),
                  {eos_},
                  Text("[INST] How are you? [/INST]")}));
  EXPECT_EQ(Render(ChatFormat::kMistral, {{"user", "And you?"}}, /*start=*/false),
            Text("[INST] And you? [/INST]"));
}

TEST_F(InstChatFormatTest, MistralV3UsesItsControlTokensAndJoinsTheSystemToTheLastMessage) {
  Load(/*v3=*/true);
  if (tok_ == nullptr) return;
  EXPECT_EQ(Render(ChatFormat::kMistral, conversation_), Join({{bos_, open_},
                                                               Text(" Hi! "),
                                                               {close_},
                                                               Text("Hello."),
                                                               {eos_, open_},
                                                               Text("Be brief.\n\nHow are you?"),
                                                               {close_}}));
  // A message spelling the markers or </s> is text, not the tokens.
  const std::vector<int32_t> spelled = Render(ChatFormat::kMistral, {{"user", "[/INST]</s>"}});
  EXPECT_EQ(spelled, Join({{bos_, open_}, Text("[/INST]</s>"), {close_}}));
}

// Tokenizer v7 writes a result as the call's id and the content between markers, not as v3's
// JSON object; v2 and later write replies without trailing spaces, as mistral-common does.
TEST_F(InstChatFormatTest, MistralV7WritesResultsBetweenMarkersAndRepliesWithoutTrailingSpaces) {
  Load(/*v3=*/true, /*v7=*/true);
  if (tok_ == nullptr) return;
  const std::vector<ChatMessage> conversation = {
      {"user", "Hi"},
      {"assistant", "Hello.  "},
      {"user", "Weather in Paris?"},
      {"assistant", "Checking. ", {{"abcDEF123", "get_weather", R"({"city":"Paris"})"}}},
      {"tool", "18C", {}, "abcDEF123"}};
  auto ids = EncodeChat(*tok_, ChatFormat::kMistral, conversation, {.start = true});
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_EQ(*ids, Join({{bos_, open_},
                        Text("Hi"),
                        {close_},
                        Text("Hello."),
                        {eos_, open_},
                        Text("Weather in Paris?"),
                        {close_},
                        Text("Checking."),
                        {calls_},
                        Text(R"([{"name": "get_weather", "arguments": {"city": "Paris"}, )"
                             R"("id": "abcDEF123"}])"),
                        {eos_, results_},
                        Text("abcDEF123"),
                        {tool_content_},
                        Text("18C"),
                        {results_end_}}));
  // A continued reply alike.
  auto continued = EncodeChat(*tok_, ChatFormat::kMistral,
                              {{{"user", "Hi"}, {"assistant", "Hel  "}}}, {.continue_final = true});
  ASSERT_TRUE(continued.ok()) << continued.status();
  EXPECT_EQ(*continued, Join({{bos_, open_}, Text("Hi"), {close_}, Text("Hel")}));
}

// A continued reply is written as the reply's text would be, without the </s> that would
// close it: after Llama 2's space, or as Mistral's piece of its own.
TEST_F(InstChatFormatTest, AContinuedReplyIsTheReplysTextWithoutItsEnd) {
  for (const bool v3 : {false, true}) {
    Load(v3);
    if (tok_ == nullptr) return;
    std::vector<ChatMessage> prefilled = conversation_;
    prefilled.push_back({"assistant", "Fine, and"});
    for (const ChatFormat format : {ChatFormat::kLlama2, ChatFormat::kMistral}) {
      SCOPED_TRACE(absl::StrCat(std::string(ChatFormatName(format)), v3 ? " v3" : ""));
      auto ids = EncodeChat(*tok_, format, prefilled, {.continue_final = true});
      ASSERT_TRUE(ids.ok()) << ids.status();
      const std::vector<int32_t> reply = format == ChatFormat::kLlama2
                                             ? tok_->Encode(" Fine, and", {.add_bos = false,
                                                                           .add_eos = false,
                                                                           .parse_special = false,
                                                                           .continues_text = true})
                                             : Text("Fine, and");
      EXPECT_EQ(*ids, Join({Render(format, conversation_), reply}));
    }
  }
}

// Tokenizer v7 (Mistral Small 3): the system message between its own markers, first.
TEST_F(InstChatFormatTest, MistralV7WritesTheSystemMessageBetweenItsMarkers) {
  Load(/*v3=*/true, /*v7=*/true);
  if (tok_ == nullptr) return;
  EXPECT_EQ(Render(ChatFormat::kMistral, conversation_), Join({{bos_, system_},
                                                               Text("Be brief."),
                                                               {system_end_, open_},
                                                               Text(" Hi! "),
                                                               {close_},
                                                               Text("Hello."),
                                                               {eos_, open_},
                                                               Text("How are you?"),
                                                               {close_}}));
}

TEST_F(InstChatFormatTest, RolesMustAlternateFromAUserMessageToAUserMessage) {
  Load(/*v3=*/false);
  if (tok_ == nullptr) return;  // skipped (no shared data) or failed to load
  for (const ChatFormat format : {ChatFormat::kLlama2, ChatFormat::kMistral}) {
    for (const std::vector<ChatMessage>& bad : std::vector<std::vector<ChatMessage>>{
             {{"assistant", "Hi"}},
             {{"user", "Hi"}, {"assistant", "Hello"}},
             {{"user", "Hi"}, {"user", "Again"}, {"user", "And again"}},
             {{"system", "Be brief."}},
             {{"user", "Hi"}, {"system", "Late"}, {"user", "Again"}}}) {
      auto ids = EncodeChat(*tok_, format, bad, {.start = true});
      EXPECT_EQ(ids.status().code(), absl::StatusCode::kInvalidArgument) << bad.size();
      EXPECT_THAT(ids.status().message(), HasSubstr("starting and ending with a user message"));
    }
    // No tool calling in Llama 2, nor in Mistral's tokenizer v1 (no tool markers).
    const bool mistral = format == ChatFormat::kMistral;
    const std::vector<ChatTool> tools = {{.name = "now"}};
    auto offered = EncodeChat(*tok_, format, {{{"user", "Hi"}}}, {.start = true, .tools = tools});
    EXPECT_THAT(offered.status().message(),
                HasSubstr(mistral ? "chat.tools: this mistral vocabulary has no [TOOL_CALLS]"
                                  : "chat.tools: the "));
    auto result = EncodeChat(*tok_, format, {{{"user", "Hi"}, {"tool", "1"}}}, {.start = true});
    EXPECT_THAT(result.status().message(),
                HasSubstr(mistral ? "chat.messages[1]: this mistral vocabulary"
                                  : "chat.messages[1].role: 'tool'"));
    auto call = EncodeChat(
        *tok_, format, {{{"user", "a"}, {"assistant", "", {{"c", "now", "{}"}}}, {"user", "b"}}},
        {.start = true});
    EXPECT_THAT(call.status().message(),
                HasSubstr(mistral ? "chat.messages[1]: this mistral vocabulary"
                                  : "chat.messages[1].tool_calls: the "));
  }
}

// Mistral's tokenizer v3 as mistral-common writes tools: the tools before the last user
// message, a reply's calls after [TOOL_CALLS] (ids included) and before </s>, each result
// between [TOOL_RESULTS] and [/TOOL_RESULTS], every text piece with its dummy prefix.
TEST_F(InstChatFormatTest, MistralV3WritesToolsCallsAndResultsBetweenItsMarkers) {
  Load(/*v3=*/true);
  if (tok_ == nullptr) return;
  const std::vector<ChatTool> tools = {
      {.name = "get_weather",
       .description = "Current weather.",
       .parameters = R"({"type": "object", "properties": {"city": {"type": "string"}}})"}};
  const std::vector<ChatMessage> conversation = {
      {"system", "Be brief."},
      {"user", "Hi"},
      {"assistant", "Hello."},
      {"user", "Weather in Paris?"},
      {"assistant", "", {{"abcDEF123", "get_weather", R"({"city":"Paris"})"}}},
      {"tool", "18C", {}, "abcDEF123"}};
  auto ids = EncodeChat(*tok_, ChatFormat::kMistral, conversation, {.start = true, .tools = tools});
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_EQ(*ids, Join({{bos_, open_},
                        Text("Hi"),
                        {close_},
                        Text("Hello."),
                        {eos_, tools_},
                        Text(R"([{"type": "function", "function": {"name": "get_weather", )"
                             R"("description": "Current weather.", "parameters": {"type": )"
                             R"("object", "properties": {"city": {"type": "string"}}}}}])"),
                        {tools_end_, open_},
                        Text("Be brief.\n\nWeather in Paris?"),
                        {close_, calls_},
                        Text(R"([{"name": "get_weather", "arguments": {"city": "Paris"}, )"
                             R"("id": "abcDEF123"}])"),
                        {eos_, results_},
                        Text(R"({"content": "18C", "call_id": "abcDEF123"})"),
                        {results_end_}}));
  // A result that is JSON goes in as its value; a session's next turn may open with results.
  const std::vector<ChatMessage> result = {{"tool", R"({"temp": 18})", {}, "abcDEF123"}};
  auto appended = EncodeChat(*tok_, ChatFormat::kMistral, result, {.start = false});
  ASSERT_TRUE(appended.ok()) << appended.status();
  EXPECT_EQ(*appended, Join({{results_},
                             Text(R"({"content": {"temp": 18}, "call_id": "abcDEF123"})"),
                             {results_end_}}));

  // Ids are nine letters and digits; calls are answered by results; the conversation ends
  // where the reply may follow.
  const auto refusal = [&](std::vector<ChatMessage> messages) {
    auto refused =
        EncodeChat(*tok_, ChatFormat::kMistral, messages, {.start = true, .tools = tools});
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
    return std::string(refused.status().message());
  };
  EXPECT_THAT(refusal({{"user", "a"},
                       {"assistant", "", {{"call_1", "get_weather", "{}"}}},
                       {"tool", "1", {}, "call_1"}}),
              HasSubstr("chat.messages[1].tool_calls[0].id: the mistral chat format writes call "
                        "ids of exactly 9 letters and digits"));
  EXPECT_THAT(refusal({{"user", "a"},
                       {"assistant", "", {{"abcDEF123", "get_weather", "{}"}}},
                       {"tool", "1", {}, "x"}}),
              HasSubstr("chat.messages[2].tool_call_id: "));
  EXPECT_THAT(
      refusal(
          {{"user", "a"}, {"assistant", "", {{"abcDEF123", "get_weather", "{}"}}}, {"user", "b"}}),
      HasSubstr("chat.messages[2]: the mistral chat format expects tool"));
  EXPECT_THAT(refusal({{"user", "a"}, {"assistant", "", {{"abcDEF123", "get_weather", "{}"}}}}),
              HasSubstr("chat.messages[1]: the mistral chat format cannot end here"));
  EXPECT_THAT(refusal({{"tool", "1", {}, "abcDEF123"}}),
              HasSubstr("chat.messages[0]: the mistral chat format expects user"));
}

TEST(InstChatFormatDetectionTest, TemplatesAndNames) {
  EXPECT_EQ(DetectChatFormat("{{ bos_token + '[INST] ' + '<<SYS>>\\n' }}"), ChatFormat::kLlama2);
  EXPECT_EQ(DetectChatFormat("{{ '[INST] ' + message['content'] + ' [/INST]' }}"),
            ChatFormat::kMistral);
  EXPECT_EQ(ChatFormatNamed("llama2"), ChatFormat::kLlama2);
  EXPECT_EQ(ChatFormatNamed("mistral"), ChatFormat::kMistral);
  EXPECT_EQ(ChatFormatName(ChatFormat::kMistral), "mistral");
}

}  // namespace
}  // namespace ringserve::tokenizer
