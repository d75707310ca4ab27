// Zephyr's chat format on the real Llama 2 SentencePiece vocabulary (TinyLlama-1.1B-Chat's):
// the role markers are text, each turn ends with EOS, and the text after an EOS is a piece of
// its own, as Hugging Face's and llama.cpp's tokenisers encode it.
#include "worker/tokenizer/zephyr_chat.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "tests/unit/tokenizer/test_util.h"
#include "worker/tokenizer/chat_format.h"
#include "worker/tokenizer/llama2c_vocab.h"

namespace ringserve::tokenizer {
namespace {

// zephyr-7b-beta's and TinyLlama-1.1B-Chat-v1.0's template.
constexpr char kZephyrTemplate[] =
    "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + "
    "message['content'] + eos_token }}\n{% elif message['role'] == 'system' %}\n{{ "
    "'<|system|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == "
    "'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif "
    "%}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% "
    "endfor %}";

TEST(ZephyrChatTest, TheTemplateIsToldApartFromPhi3s) {
  EXPECT_EQ(DetectChatFormat(kZephyrTemplate), ChatFormat::kZephyr);
  EXPECT_EQ(DetectChatFormat("{{'<|user|>\n' + message['content'] + '<|end|>\n<|assistant|>'}}"),
            ChatFormat::kNone);
  EXPECT_EQ(ChatFormatNamed("zephyr"), ChatFormat::kZephyr);
}

TEST(ZephyrChatTest, MarkersAreTextAndTurnsEndWithEos) {
  const std::string path = testing::SharedFile("models/tokenizer.bin");
  if (path.empty()) GTEST_SKIP() << "no shared Llama 2 vocabulary";
  absl::StatusOr<Vocabulary> vocab = ReadLlama2cTokenizer(path);
  ASSERT_TRUE(vocab.ok()) << vocab.status();
  absl::StatusOr<std::unique_ptr<Tokenizer>> created = Tokenizer::Create(*std::move(vocab));
  ASSERT_TRUE(created.ok()) << created.status();
  const Tokenizer& tok = **created;
  const int32_t bos = tok.vocab().bos_id, eos = tok.vocab().eos_id;
  const auto piece = [&](const std::string& text) {
    return tok.Encode(text, {.add_bos = false, .add_eos = false, .parse_special = false});
  };
  const auto join = [](std::initializer_list<std::vector<int32_t>> parts) {
    std::vector<int32_t> out;
    for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
    return out;
  };
  const std::vector<ChatMessage> conversation = {
      {"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello."}, {"user", "And you?"}};
  auto ids = EncodeChat(tok, ChatFormat::kZephyr, conversation, {.start = true});
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_EQ(*ids, join({{bos},
                        piece("<|system|>\nBe brief."),
                        {eos},
                        piece("\n<|user|>\nHi"),
                        {eos},
                        piece("\n<|assistant|>\nHello."),
                        {eos},
                        piece("\n<|user|>\nAnd you?"),
                        {eos},
                        piece("\n<|assistant|>\n")}));
  // After an EOS the text opens with SentencePiece's dummy-prefix space, then the newline.
  const std::vector<int32_t> after_eos = piece("\n<|user|>\nHi");
  ASSERT_GE(after_eos.size(), 2U);
  EXPECT_EQ(tok.vocab().tokens[after_eos[0]], "\u2581");
  EXPECT_EQ(tok.vocab().tokens[after_eos[1]], "<0x0A>");
  // An appended turn follows the reply's EOS; a continued reply follows the prompt's text.
  EXPECT_EQ(*EncodeChat(tok, ChatFormat::kZephyr, {{{"user", "Bye"}}}, {.start = false}),
            join({piece("\n<|user|>\nBye"), {eos}, piece("\n<|assistant|>\n")}));
  auto continued = EncodeChat(tok, ChatFormat::kZephyr, {{{"user", "Hi"}, {"assistant", "Sure"}}},
                              {.start = true, .continue_final = true});
  ASSERT_TRUE(continued.ok()) << continued.status();
  EXPECT_EQ(*continued, join({{bos},
                              piece("<|user|>\nHi"),
                              {eos},
                              piece("\n<|assistant|>\n"),
                              tok.Encode("Sure", {.add_bos = false,
                                                  .add_eos = false,
                                                  .parse_special = false,
                                                  .continues_text = true})}));
  EXPECT_EQ(EndOfTurnId(tok, ChatFormat::kZephyr), eos);
  // No tools in this format.
  const std::vector<ChatTool> tools = {{.name = "now"}};
  EXPECT_EQ(
      EncodeChat(tok, ChatFormat::kZephyr, {{{"user", "Hi"}}}, {.tools = tools}).status().code(),
      absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace ringserve::tokenizer
