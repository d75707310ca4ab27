// tokenizer.json reading, from small fixtures written by the test.
#include "worker/tokenizer/tokenizer_json.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "tests/unit/tokenizer/json_fixtures.h"
#include "tests/unit/tokenizer/test_util.h"
#include "worker/tokenizer/stream_decoder.h"
#include "worker/tokenizer/tokenizer.h"
#include "worker/tokenizer/unicode.h"

namespace ringserve::tokenizer {
namespace {

using json = nlohmann::json;
using testing::ByteLevelFixture;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::Not;
using testing::SentencePieceFixture;

std::string WriteTemp(const std::string& name, const std::string& text) {
  const std::string path = (std::filesystem::temp_directory_path() / name).string();
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

std::unique_ptr<Tokenizer> FromJson(const json& j, const std::string& file) {
  absl::StatusOr<Vocabulary> v = ReadTokenizerJson(WriteTemp(file, j.dump()));
  EXPECT_TRUE(v.ok()) << v.status();
  if (!v.ok()) return nullptr;
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok = Tokenizer::Create(*std::move(v));
  EXPECT_TRUE(tok.ok()) << tok.status();
  return tok.ok() ? *std::move(tok) : nullptr;
}

// A chat message's content continues its header's text: no dummy-prefix space before it.
TEST(TokenizerJsonTest, ContinuedTextTakesNoDummyPrefix) {
  std::unique_ptr<Tokenizer> tok = FromJson(SentencePieceFixture(), "rs_tok_sp_cont.json");
  ASSERT_NE(tok, nullptr);
  EXPECT_THAT(tok->Encode("ab", {.add_bos = false, .add_eos = false}), ElementsAre(264));  // "▁ab"
  EXPECT_THAT(tok->Encode("ab", {.add_bos = false, .add_eos = false, .continues_text = true}),
              ElementsAre(263));
}

TEST(TokenizerJsonTest, ByteLevelBpe) {
  std::unique_ptr<Tokenizer> tok = FromJson(ByteLevelFixture(), "rs_tok_bl.json");
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->vocab().model, TokenizerModel::kByteLevelBpe);
  EXPECT_EQ(tok->vocab().pre_tokenizer, "gpt2");
  EXPECT_FALSE(tok->vocab().add_bos);
  EXPECT_EQ(tok->eos_id(), 259);
  EXPECT_THAT(tok->Encode(" the"), ElementsAre(258));
  EXPECT_THAT(tok->Encode("the"), ElementsAre('t', 257));
  EXPECT_THAT(tok->Encode("<|endoftext|>", testing::Options(std::nullopt, true)), ElementsAre(259));
  EXPECT_THAT(tok->Encode("<|endoftext|>"), Not(Contains(259)));  // plain text
  std::mt19937 rng(5);
  for (int i = 0; i < 300; ++i) {  // (c) byte-level round-trips exactly
    const std::string text = testing::RandomText(rng, 40);
    ASSERT_EQ(tok->Decode(tok->Encode(text)), text);
  }
  const std::string bad = "a\xFF\xC3 b";  // invalid UTF-8 survives byte-level exactly
  EXPECT_EQ(tok->Decode(tok->Encode(bad)), "a\xEF\xBF\xBD\xEF\xBF\xBD b");
}

// Qwen3-Embedding's post-processor ends every text with <|endoftext|>: a new context gets it
// appended (its embedding is read there), a chat's text or an explicit add_eos = false not.
TEST(TokenizerJsonTest, ATemplatesEndOfTextIsAppended) {
  json j = ByteLevelFixture();
  j["post_processor"] = {
      {"type", "TemplateProcessing"},
      {"single", json::array({{{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                              {{"SpecialToken", {{"id", "<|endoftext|>"}, {"type_id", 0}}}}})}};
  std::unique_ptr<Tokenizer> tok = FromJson(j, "rs_tok_bl_eos.json");
  ASSERT_NE(tok, nullptr);
  EXPECT_TRUE(tok->vocab().add_eos);
  EXPECT_FALSE(tok->vocab().add_bos);
  EXPECT_THAT(tok->Encode(" the"), ElementsAre(258, 259));
  EXPECT_THAT(tok->Encode(" the", {.add_bos = std::nullopt, .add_eos = false}), ElementsAre(258));
  // Without the template, nothing is appended.
  std::unique_ptr<Tokenizer> plain = FromJson(ByteLevelFixture(), "rs_tok_bl_plain.json");
  ASSERT_NE(plain, nullptr);
  EXPECT_FALSE(plain->vocab().add_eos);
  EXPECT_THAT(plain->Encode(" the"), ElementsAre(258));
}

TEST(TokenizerJsonTest, ByteLevelStreamMatchesDecode) {
  std::unique_ptr<Tokenizer> tok = FromJson(ByteLevelFixture(), "rs_tok_bl2.json");
  ASSERT_NE(tok, nullptr);
  std::mt19937 rng(11);
  std::uniform_int_distribution<int32_t> id(0, tok->vocab_size() - 1);
  for (int i = 0; i < 300; ++i) {  // (d) on byte-level pieces
    std::vector<int32_t> ids(25);
    for (int32_t& x : ids) x = id(rng);
    StreamDecoder stream(*tok);
    std::string text;
    for (int32_t x : ids) {
      const std::string piece = stream.Push(x);
      ASSERT_TRUE(IsValidUtf8(piece));
      text += piece;
    }
    ASSERT_EQ(text + stream.Flush(), tok->Decode(ids));
  }
}

TEST(TokenizerJsonTest, SentencePieceBpeFollowsMergeRanks) {
  std::unique_ptr<Tokenizer> tok = FromJson(SentencePieceFixture(), "rs_tok_spm.json");
  ASSERT_NE(tok, nullptr);
  const Vocabulary& v = tok->vocab();
  EXPECT_EQ(v.model, TokenizerModel::kSentencePiece);
  EXPECT_TRUE(v.add_bos);
  EXPECT_TRUE(v.add_space_prefix);
  EXPECT_EQ(v.bos_id, 1);
  EXPECT_EQ(v.unk_id, 0);
  EXPECT_EQ(v.types[3], TokenType::kByte);
  EXPECT_THAT(tok->Encode("ab"), ElementsAre(1, 264));
  EXPECT_THAT(tok->Encode("ab b"), ElementsAre(1, 264, 259, 261));
  EXPECT_THAT(tok->Encode("c", testing::Options(false)), ElementsAre(259, 3 + 'c'));
  EXPECT_EQ(tok->Decode(tok->Encode("ab b\xC3\xA9")), "ab b\xC3\xA9");
}

// What each token adds to a reply: a piece's dummy-prefix space kept (it follows other
// text), byte tokens as their byte, and nothing for control and unknown tokens.
TEST(TokenizerJsonTest, ReplyBytesOfTokens) {
  std::unique_ptr<Tokenizer> tok = FromJson(SentencePieceFixture(), "rs_tok_spm_bytes.json");
  ASSERT_NE(tok, nullptr);
  const std::vector<std::string> bytes = tok->ReplyBytesOfTokens();
  ASSERT_EQ(bytes.size(), static_cast<size_t>(tok->vocab_size()));
  EXPECT_EQ(bytes[0], "");  // <unk>
  EXPECT_EQ(bytes[1], "");  // <s>
  EXPECT_EQ(bytes[2], "");  // </s>
  EXPECT_EQ(bytes[3 + 'c'], "c");
  EXPECT_EQ(bytes[264], " ab");
  for (int32_t id = 3; id < tok->vocab_size(); ++id) {
    std::string one;
    tok->AppendTokenBytes(id, -1, &one);
    EXPECT_EQ(bytes[static_cast<size_t>(id)], one) << id;
  }
}

TEST(TokenizerJsonTest, RecognisesLlama3Pattern) {
  json j = ByteLevelFixture();
  j["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers",
       json::array({{{"type", "Split"},
                     {"pattern",
                      {{"Regex",
                        "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
                        "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}}}},
                    {{"type", "ByteLevel"}, {"use_regex", false}}})}};
  absl::StatusOr<Vocabulary> v = ReadTokenizerJson(WriteTemp("rs_tok_l3.json", j.dump()));
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->pre_tokenizer, "llama-bpe");
  j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "\\w+";
  EXPECT_FALSE(ReadTokenizerJson(WriteTemp("rs_tok_bad.json", j.dump())).ok());
}

// Mistral's Tekken checkpoints (Nemo, Small 3, Ministral) split digits apart and words
// before their capitals, so a merge across either boundary never applies.
TEST(TokenizerJsonTest, RecognisesTekkenPattern) {
  json j = ByteLevelFixture();
  j["model"]["vocab"]["12"] = 260;
  j["model"]["vocab"]["eH"] = 261;
  j["model"]["merges"].push_back("1 2");
  j["model"]["merges"].insert(j["model"]["merges"].begin(), "e H");
  j["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers",
       json::array(
           {{{"type", "Split"},
             {"pattern",
              {{"Regex",
                "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}"
                "\\p{Lo}\\p{M}]+|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+["
                "\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/"
                "]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}}},
             {"behavior", "Isolated"}},
            {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}})}};
  std::unique_ptr<Tokenizer> tok = FromJson(j, "rs_tok_tekken.json");
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->vocab().pre_tokenizer, "tekken");
  EXPECT_THAT(tok->Encode("12"), ElementsAre('1', '2'));
  EXPECT_THAT(tok->Encode("heHe"), ElementsAre(257, 'H', 'e'));
  j["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}};
  tok = FromJson(j, "rs_tok_tekken_gpt2.json");  // the same vocabulary under GPT-2's split
  ASSERT_NE(tok, nullptr);
  EXPECT_THAT(tok->Encode("12"), ElementsAre(260));
  EXPECT_THAT(tok->Encode("heHe"), ElementsAre('h', 261, 'e'));
}

// (f) malformed files are errors, never crashes.
TEST(TokenizerJsonTest, MalformedFilesAreErrors) {
  const char* cases[] = {
      "",
      "{",
      "[]",
      "null",
      "{\"model\": 1}",
      "{\"model\": {\"type\": \"Unigram\"}}",
      "{\"model\": {\"type\": \"BPE\", \"vocab\": []}}",
      "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": \"x\"}}}",
      "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -4}}}",
      "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 99999999999}}}",
      "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [3]}}",
      "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}, \"added_tokens\": [{}]}",
      "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}}",
  };
  for (const char* text : cases) {
    EXPECT_FALSE(ParseTokenizerJson(text, "t.json").ok()) << text;
  }
  std::string good = ByteLevelFixture().dump();
  std::mt19937 rng(3);
  for (int i = 0; i < 300; ++i) {
    std::string bad = good.substr(0, rng() % good.size());
    absl::StatusOr<Vocabulary> v = ParseTokenizerJson(bad, "t.json");
    if (v.ok()) (void)Tokenizer::Create(*std::move(v));
  }
  EXPECT_FALSE(ReadTokenizerJson("/nonexistent/tokenizer.json").ok());
}

// A few holes become unused tokens; a few bytes claiming an id in the millions (the fuzzer
// found one: 3.8 KB that took 2 GB) are refused.
TEST(TokenizerJsonTest, SparseIdsAreBoundedByTheDefinedTokens) {
  json holes = ByteLevelFixture();
  const int64_t top = static_cast<int64_t>(holes["model"]["vocab"].size()) + 10;
  holes["model"]["vocab"]["zz"] = top;
  absl::StatusOr<Vocabulary> ok = ParseTokenizerJson(holes.dump(), "t.json");
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->tokens.size(), static_cast<size_t>(top + 1));
  EXPECT_THAT(ok->tokens, Contains(absl::StrCat("[UNUSED_", top - 1, "]")));
  json sparse = ByteLevelFixture();
  sparse["model"]["vocab"]["zz"] = 7777162;
  const absl::StatusOr<Vocabulary> refused = ParseTokenizerJson(sparse.dump(), "t.json");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.status().message()), ::testing::HasSubstr("ids reach 7777162"));
}

}  // namespace
}  // namespace ringserve::tokenizer
