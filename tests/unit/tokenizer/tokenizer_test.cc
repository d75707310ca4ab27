// Tokenizer tests against llama2.c's tokenizers: the stories260K greedy vectors (encoded
// prompts and decoded text from run.c), Llama 2's 32000-token vocabulary, random
// round-trips, streaming decode, and malformed tokenizer.bin files.
#include "worker/tokenizer/tokenizer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "tests/unit/tokenizer/test_util.h"
#include "worker/tokenizer/llama2c_vocab.h"
#include "worker/tokenizer/stream_decoder.h"
#include "worker/tokenizer/unicode.h"

namespace ringserve::tokenizer {
namespace {

using ::ringserve::tokenizer::testing::RandomText;
using ::ringserve::tokenizer::testing::ReadFile;
using ::ringserve::tokenizer::testing::SharedFile;
using ::testing::ElementsAre;

std::unique_ptr<Tokenizer> LoadLlama2c(const std::string& relative) {
  const std::string path = SharedFile(relative);
  if (path.empty()) return nullptr;
  absl::StatusOr<Vocabulary> vocab = ReadLlama2cTokenizer(path);
  EXPECT_TRUE(vocab.ok()) << vocab.status();
  if (!vocab.ok()) return nullptr;
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok = Tokenizer::Create(*std::move(vocab));
  EXPECT_TRUE(tok.ok()) << tok.status();
  return tok.ok() ? *std::move(tok) : nullptr;
}

// What run.c prints: its safe_printf() drops single-byte pieces that are neither
// printable nor whitespace (so a lone UTF-8 byte token never reaches the terminal).
std::string RunCStdout(const Tokenizer& tok, const std::vector<int32_t>& ids) {
  std::string out;
  for (size_t i = 0; i < ids.size(); ++i) {
    std::string piece;
    tok.AppendTokenBytes(ids[i], i == 0 ? -1 : ids[i - 1], &piece);
    const auto byte = static_cast<unsigned char>(piece.empty() ? 0 : piece[0]);
    if (piece.size() == 1 && !(std::isprint(byte) || std::isspace(byte))) continue;
    out += piece;
  }
  return out;
}

TEST(Llama2cVocabTest, NormalisesTok512) {
  const std::string path = SharedFile("models/tok512.bin");
  if (path.empty()) GTEST_SKIP() << "no shared models";
  absl::StatusOr<Vocabulary> v = ReadLlama2cTokenizer(path);
  ASSERT_TRUE(v.ok()) << v.status();
  ASSERT_EQ(v->tokens.size(), 512u);
  EXPECT_EQ(v->tokens[1], "<s>");
  EXPECT_EQ(v->tokens[2], "</s>");
  EXPECT_EQ(v->types[0], TokenType::kUnknown);
  EXPECT_EQ(v->types[1], TokenType::kControl);
  EXPECT_EQ(v->tokens[3], "<0x00>");
  EXPECT_EQ(v->types[3], TokenType::kByte);
  EXPECT_EQ(v->tokens[259].find(' '), std::string::npos);
  EXPECT_EQ(v->scores[260], -1.0f);
}

// (a) run.c's own tokenisation and output for the stories260K greedy cases.
TEST(TokenizerTest, Stories260KGreedyVectors) {
  const std::string vectors = SharedFile("vectors/stories260K-greedy.json");
  std::unique_ptr<Tokenizer> tok = LoadLlama2c("models/tok512.bin");
  if (vectors.empty() || tok == nullptr) GTEST_SKIP() << "no shared vectors";
  const nlohmann::json doc = nlohmann::json::parse(ReadFile(vectors), nullptr, false);
  ASSERT_FALSE(doc.is_discarded());
  ASSERT_EQ(doc["conventions"]["bos_id"].get<int>(), tok->bos_id());
  for (const auto& c : doc["cases"]) {
    const std::string prompt = c["prompt"].get<std::string>();
    const auto prompt_ids = c["prompt_ids"].get<std::vector<int32_t>>();
    const auto generated = c["generated_ids"].get<std::vector<int32_t>>();
    EXPECT_EQ(tok->Encode(prompt), prompt_ids) << prompt;
    // The continuation as run.c prints it: the first piece drops its space only when it
    // directly follows BOS (the empty prompt).
    StreamDecoder stream(*tok, prompt_ids.back());
    std::string text;
    for (int32_t id : generated) text += stream.Push(id);
    text += stream.Flush();
    EXPECT_EQ(text, c["text"].get<std::string>()) << prompt;
    std::vector<int32_t> all = prompt_ids;
    all.insert(all.end(), generated.begin(), generated.end());
    EXPECT_EQ(RunCStdout(*tok, all), c["run_c_stdout"].get<std::string>()) << prompt;
    EXPECT_EQ(tok->Decode(all), tok->Decode(prompt_ids) + c["text"].get<std::string>());
  }
}

// (b) Llama 2's vocabulary: ids as sentencepiece / llama.cpp give them.
TEST(TokenizerTest, Llama2VocabularyEncodesKnownSentences) {
  std::unique_ptr<Tokenizer> tok = LoadLlama2c("models/tokenizer.bin");
  if (tok == nullptr) GTEST_SKIP() << "no shared models";
  EXPECT_EQ(tok->vocab_size(), 32000);
  EXPECT_THAT(tok->Encode("Hello world"), ElementsAre(1, 15043, 3186));
  EXPECT_THAT(tok->Encode("I believe the meaning of life is"),
              ElementsAre(1, 306, 4658, 278, 6593, 310, 2834, 338));
  EXPECT_THAT(tok->Encode("", testing::Options(false)), ElementsAre());
  EXPECT_THAT(tok->Encode(" ", testing::Options(false)), ElementsAre(259));  // "▁▁"
  for (const char* s :
       {"Hello world", "  two spaces\nand a newline", "crème brûlée 🦙 中文"}) {
    EXPECT_EQ(tok->Decode(tok->Encode(s)), s);
  }
  // Special text is plain text unless asked for.
  EXPECT_NE(tok->Encode("<s>", testing::Options(false))[0], 1);
  EXPECT_THAT(tok->Encode("<s>", testing::Options(false, true)), ElementsAre(1));
  EXPECT_TRUE(tok->IsEndOfGeneration(2));
  EXPECT_TRUE(tok->IsSpecial(1));
  EXPECT_FALSE(tok->IsSpecial(15043));
  EXPECT_EQ(tok->Piece(15043), "\xE2\x96\x81Hello");
  // Control tokens decode to nothing, or (Detokenize's default) to their text; the dummy
  // prefix after BOS is dropped either way.
  const std::vector<int32_t> ids = {1, 15043, 3186, 2};
  EXPECT_EQ(tok->Decode(ids), "Hello world");
  EXPECT_EQ(tok->Decode(ids, /*control_as_text=*/true), "<s>Hello world</s>");
  EXPECT_EQ(tok->Decode(std::vector<int32_t>{-1, 1, 40000}, true), "<s>");
}

// (c) Encode -> Decode is the identity on valid UTF-8 (SentencePiece: with BOS, whose
// follower drops the dummy-prefix space).
TEST(TokenizerTest, RandomTextRoundTrips) {
  for (const char* file : {"models/tok512.bin", "models/tokenizer.bin"}) {
    std::unique_ptr<Tokenizer> tok = LoadLlama2c(file);
    if (tok == nullptr) GTEST_SKIP() << "no shared models";
    std::mt19937 rng(1234);
    for (int i = 0; i < 300; ++i) {
      const std::string text = RandomText(rng, 40);
      ASSERT_EQ(tok->Decode(tok->Encode(text)), text) << file << " case " << i;
    }
  }
}

TEST(TokenizerTest, InvalidUtf8NeverCrashesAndUsesByteTokens) {
  std::unique_ptr<Tokenizer> tok = LoadLlama2c("models/tok512.bin");
  if (tok == nullptr) GTEST_SKIP() << "no shared models";
  const std::string bad = "ok\xC3(\xFF\xE2\x82 end\xF0\x9F";
  const std::vector<int32_t> ids = tok->Encode(bad);
  EXPECT_EQ(ids[0], 1);
  EXPECT_TRUE(IsValidUtf8(tok->Decode(ids)));
}

// (d) Streaming equals Decode and never emits invalid UTF-8, even for random ids that
// split or break multi-byte characters.
TEST(StreamDecoderTest, RandomIdsMatchDecode) {
  for (const char* file : {"models/tok512.bin", "models/tokenizer.bin"}) {
    std::unique_ptr<Tokenizer> tok = LoadLlama2c(file);
    if (tok == nullptr) GTEST_SKIP() << "no shared models";
    std::mt19937 rng(99);
    std::uniform_int_distribution<int32_t> any_id(0, tok->vocab_size() - 1);
    std::uniform_int_distribution<int32_t> byte_id(3, 258);
    for (int i = 0; i < 300; ++i) {
      std::vector<int32_t> ids;
      for (int k = 0; k < 30; ++k) ids.push_back(k % 3 == 0 ? any_id(rng) : byte_id(rng));
      StreamDecoder stream(*tok);
      std::string text;
      for (int32_t id : ids) {
        const std::string piece = stream.Push(id);
        ASSERT_TRUE(IsValidUtf8(piece));
        text += piece;
      }
      text += stream.Flush();
      ASSERT_EQ(text, tok->Decode(ids));
    }
  }
}

TEST(StreamDecoderTest, HoldsSplitCharacterUntilComplete) {
  std::unique_ptr<Tokenizer> tok = LoadLlama2c("models/tok512.bin");
  if (tok == nullptr) GTEST_SKIP() << "no shared models";
  StreamDecoder stream(*tok);
  EXPECT_EQ(stream.Push(3 + 0xF0), "");
  EXPECT_EQ(stream.Push(3 + 0x9F), "");
  EXPECT_EQ(stream.Push(3 + 0xA6), "");
  EXPECT_EQ(stream.Push(3 + 0x99), "🦙");
  EXPECT_EQ(stream.Push(3 + 0xC3), "");
  EXPECT_EQ(stream.Push(3 + 'x'), "\xEF\xBF\xBDx");  // can never complete: U+FFFD
  EXPECT_EQ(stream.Push(3 + 0xE2), "");
  EXPECT_EQ(stream.Flush(), "\xEF\xBF\xBD");
}

// Prompts can be 100k tokens: merging must stay O(n log n), not O(n^2).
TEST(TokenizerTest, LongTextEncodesQuickly) {
  std::unique_ptr<Tokenizer> tok = LoadLlama2c("models/tokenizer.bin");
  if (tok == nullptr) GTEST_SKIP() << "no shared models";
  std::mt19937 rng(2024);
  std::string text;
  while (text.size() < 400000) text += RandomText(rng, 40);
  const std::string no_spaces(200000, 'x');
  const auto start = std::chrono::steady_clock::now();
  const std::vector<int32_t> ids = tok->Encode(text);
  const std::vector<int32_t> ids2 = tok->Encode(no_spaces);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(tok->Decode(ids), text);
  EXPECT_EQ(tok->Decode(ids2), no_spaces);
  std::printf("[ encoded %zu + %zu bytes into %zu tokens in %.3f s ]\n", text.size(),
              no_spaces.size(), ids.size() + ids2.size(), seconds);
  EXPECT_LT(seconds, 20.0);  // generous: shared 2-core machine
}

// (f) Every truncation and random corruption of tokenizer.bin is an error or a
// vocabulary, never a crash; errors name the file.
TEST(Llama2cVocabTest, MalformedFilesAreErrors) {
  const std::string path = SharedFile("models/tok512.bin");
  if (path.empty()) GTEST_SKIP() << "no shared models";
  const std::string data = ReadFile(path);
  auto parse = [](const std::string& bytes) {
    return ParseLlama2cTokenizer({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()},
                                 "tok.bin");
  };
  for (size_t n = 0; n < data.size(); n += 7) {
    absl::StatusOr<Vocabulary> v = parse(data.substr(0, n));
    if (!v.ok()) {
      EXPECT_NE(v.status().message().find("tok.bin"), std::string::npos);
    }
  }
  EXPECT_FALSE(parse(data.substr(0, data.size() - 1)).ok());
  std::mt19937 rng(7);
  for (int i = 0; i < 500; ++i) {
    std::string corrupt = data;
    for (int k = 0; k < 4; ++k) corrupt[rng() % corrupt.size()] = static_cast<char>(rng());
    absl::StatusOr<Vocabulary> v = parse(corrupt);
    if (v.ok()) (void)Tokenizer::Create(*std::move(v));
  }
  EXPECT_FALSE(ReadLlama2cTokenizer("/nonexistent/tokenizer.bin").ok());
}

}  // namespace
}  // namespace ringserve::tokenizer
