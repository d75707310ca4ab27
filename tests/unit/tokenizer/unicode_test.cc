// UTF-8 helpers and pre-tokeniser splits on hand-checked inputs.
#include "worker/tokenizer/unicode.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "worker/tokenizer/pretokenizer.h"

namespace ringserve::tokenizer {
namespace {

using ::testing::ElementsAre;

TEST(UnicodeTest, Categories) {
  EXPECT_TRUE(IsLetter('a'));
  EXPECT_TRUE(IsLetter(0x4E2D));  // 中
  EXPECT_TRUE(IsNumber('7'));
  EXPECT_TRUE(IsNumber(0xBD));  // ½
  EXPECT_EQ(CategoryOf('!'), CharCategory::kPunctuation);
  EXPECT_EQ(CategoryOf(0x1F680), CharCategory::kSymbol);  // 🚀
  EXPECT_TRUE(IsWhitespace(0x3000));
  EXPECT_FALSE(IsWhitespace(0x200B));
}

TEST(UnicodeTest, RepairIsPrefixStable) {
  std::string out;
  EXPECT_EQ(RepairUtf8("a\xE2\x82", false, &out), 1u);
  EXPECT_EQ(out, "a");
  out.clear();
  RepairUtf8("a\xE2\x82", true, &out);
  EXPECT_EQ(out, "a\xEF\xBF\xBD");
  out.clear();
  RepairUtf8("\xED\xA0\x80", true, &out);  // a surrogate: three maximal subparts
  EXPECT_EQ(out, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST(UnicodeTest, ByteToUnicodeRoundTrips) {
  EXPECT_EQ(ByteToUnicode(' '), "\xC4\xA0");  // Ġ
  for (int b = 0; b < 256; ++b) {
    const std::vector<Utf8Char> c = SplitUtf8(ByteToUnicode(static_cast<uint8_t>(b)));
    ASSERT_EQ(c.size(), 1u);
    EXPECT_EQ(UnicodeToByte(c[0].cp), b);
  }
}

TEST(PreTokenizerTest, Gpt2) {
  EXPECT_THAT(PreTokenize(PreTokenizer::kGpt2, "Hello world's  3 !!"),
              ElementsAre("Hello", " world", "'s", " ", " 3", " !!"));
  EXPECT_THAT(PreTokenize(PreTokenizer::kGpt2, "a  \n"), ElementsAre("a", "  \n"));
}

TEST(PreTokenizerTest, Llama3) {
  EXPECT_THAT(PreTokenize(PreTokenizer::kLlama3, "I'M 12345 ok!\n\nx"),
              ElementsAre("I", "'M", " ", "123", "45", " ok", "!\n\n", "x"));
  EXPECT_THAT(PreTokenize(PreTokenizer::kQwen2, "12"), ElementsAre("1", "2"));
}

TEST(PreTokenizerTest, DeepseekAndStarcoder) {
  EXPECT_THAT(PreTokenize(PreTokenizer::kDeepseekLlm, "Hi 中文12\n"),
              ElementsAre("Hi", " ", "中文", "12", "\n"));
  EXPECT_THAT(PreTokenize(PreTokenizer::kStarcoder, "x12"), ElementsAre("x", "1", "2"));
}

TEST(UnicodeTest, LetterCase) {
  EXPECT_EQ(CaseOf('A'), LetterCase::kUpper);
  EXPECT_EQ(CaseOf('z'), LetterCase::kLower);
  EXPECT_EQ(CaseOf(0xC9), LetterCase::kUpper);   // É
  EXPECT_EQ(CaseOf(0x1C5), LetterCase::kUpper);  // ǅ, title case
  EXPECT_EQ(CaseOf(0x4E2D), LetterCase::kNone);  // 中, caseless
  EXPECT_EQ(CaseOf('7'), LetterCase::kNone);
}

// Expected splits are what the tokenizer.json pattern gives under Python's `regex`
// module (Hugging Face's and tiktoken's semantics: leftmost-first alternation).
TEST(PreTokenizerTest, TekkenSplitsWordsBeforeCapitals) {
  auto split = [](std::string_view text) { return PreTokenize(PreTokenizer::kTekken, text); };
  EXPECT_THAT(split("helloWorld camelCase XMLHttpRequest"),
              ElementsAre("hello", "World", " camel", "Case", " XMLHttp", "Request"));
  EXPECT_THAT(split("MiXeD 12ab"), ElementsAre("Mi", "Xe", "D", " ", "1", "2", "ab"));
  EXPECT_THAT(split("I'm 2024 ok!!\n\n  x"),
              ElementsAre("I", "'m", " ", "2", "0", "2", "4", " ok", "!!\n\n", " ", " x"));
  EXPECT_THAT(split("(Hello) /path/to\n/x"),
              ElementsAre("(Hello", ")", " /", "path", "/to", "\n", "/x"));
  EXPECT_THAT(split("x = {\"a\": 1}\r\n"),
              ElementsAre("x", " =", " {\"", "a", "\":", " ", "1", "}\r\n"));
  EXPECT_THAT(split("a  b\t\n c"), ElementsAre("a", " ", " b", "\t\n", " c"));
  EXPECT_THAT(split("AB. ?? "), ElementsAre("AB", ".", " ??", " "));
}

TEST(PreTokenizerTest, TekkenKeepsAccentsAndMarksInTheirWords) {
  auto split = [](std::string_view text) { return PreTokenize(PreTokenizer::kTekken, text); };
  EXPECT_THAT(split("Über naïve ÉCOLE aÉb"), ElementsAre("Über", " naïve", " ÉCOLE", " a", "Éb"));
  EXPECT_THAT(split("नमस्ते दुनिया"), ElementsAre("नमस्ते", " दुनिया"));
  EXPECT_THAT(split("e\xCC\x81t\xC3\xA9"), ElementsAre("e\xCC\x81t\xC3\xA9"));  // e + U+0301
  EXPECT_THAT(split("ǅemal ǈ 中文字符"), ElementsAre("ǅemal", " ǈ", " 中文字符"));
}

TEST(PreTokenizerTest, Names) {
  EXPECT_EQ(*PreTokenizerFromName("gpt-2"), PreTokenizer::kGpt2);
  EXPECT_EQ(*PreTokenizerFromName("llama-bpe"), PreTokenizer::kLlama3);
  EXPECT_EQ(*PreTokenizerFromName("tekken"), PreTokenizer::kTekken);
  EXPECT_FALSE(PreTokenizerFromName("no-such").ok());
}

}  // namespace
}  // namespace ringserve::tokenizer
