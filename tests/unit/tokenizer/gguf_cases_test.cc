// (e) llama.cpp's tokenizer reference cases (../shared/tokenizers, README.md there): each
// vocabulary's inputs must encode to llama.cpp's ids (no BOS, special text not parsed),
// and must round-trip through Decode.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "tests/unit/tokenizer/test_util.h"
#include "worker/model/gguf_reader.h"
#include "worker/model/gguf_vocab.h"
#include "worker/tokenizer/llama2c_vocab.h"
#include "worker/tokenizer/tokenizer.h"

namespace ringserve::tokenizer {
namespace {

using ::ringserve::tokenizer::testing::ReadFile;
using ::ringserve::tokenizer::testing::SharedFile;

struct Case {
  std::string text;
  std::vector<int32_t> ids;
};

std::vector<Case> ReadCases(const std::string& base) {
  const std::string inp = ReadFile(base + ".inp");
  std::istringstream out(ReadFile(base + ".out"));
  constexpr std::string_view kSep = "\n__ggml_vocab_test__\n";
  std::vector<Case> cases;
  for (size_t pos = 0; pos < inp.size();) {
    size_t end = inp.find(kSep, pos);
    if (end == std::string::npos) end = inp.size();
    Case c{inp.substr(pos, end - pos), {}};
    std::string line;
    std::getline(out, line);
    std::istringstream ids(line);
    for (int32_t id; ids >> id;) c.ids.push_back(id);
    cases.push_back(std::move(c));
    pos = end + kSep.size();
  }
  return cases;
}

class GgufCasesTest : public ::testing::TestWithParam<const char*> {};

TEST_P(GgufCasesTest, MatchesLlamaCpp) {
  const std::string path = SharedFile(std::string("tokenizers/ggml-vocab-") + GetParam() + ".gguf");
  if (path.empty()) GTEST_SKIP() << "no shared tokenizers";
  absl::StatusOr<std::unique_ptr<model::GgufFile>> file = model::GgufFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  absl::StatusOr<Vocabulary> vocab = model::VocabularyFromGguf(**file);
  ASSERT_TRUE(vocab.ok()) << vocab.status();
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok = Tokenizer::Create(*std::move(vocab));
  ASSERT_TRUE(tok.ok()) << tok.status();
  const std::vector<Case> cases = ReadCases(path);
  int matched = 0;
  for (const Case& c : cases) {
    const std::vector<int32_t> ids = (*tok)->Encode(c.text, testing::Options(false));
    EXPECT_EQ(ids, c.ids) << GetParam() << ": '" << c.text << "'";
    matched += ids == c.ids;
    if ((*tok)->vocab().model == TokenizerModel::kByteLevelBpe) {
      EXPECT_EQ((*tok)->Decode(ids), c.text);
    }
  }
  std::printf("[ %s: %d/%zu cases match llama.cpp ]\n", GetParam(), matched, cases.size());
  // (c) random round trips on this vocabulary too.
  std::mt19937 rng(42);
  std::string long_text;
  while (long_text.size() < 100000) long_text += testing::RandomText(rng, 40);
  const auto start = std::chrono::steady_clock::now();
  const std::vector<int32_t> long_ids = (*tok)->Encode(long_text);
  std::printf("[ %s: 100 KB -> %zu tokens in %.3f s ]\n", GetParam(), long_ids.size(),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  EXPECT_EQ((*tok)->Decode(long_ids), long_text);
  for (int i = 0; i < 200; ++i) {
    const std::string text = testing::RandomText(rng, 40);
    ASSERT_EQ((*tok)->Decode((*tok)->Encode(text, testing::Options(true))), text) << GetParam();
  }
}

INSTANTIATE_TEST_SUITE_P(Vocabularies, GgufCasesTest,
                         ::testing::Values("llama-spm", "gpt-2", "deepseek-llm", "starcoder"));

// The llama2.c export of the same Llama 2 vocabulary must agree with llama-spm's cases.
TEST(GgufCasesTest, Llama2cTokenizerBinMatchesLlamaSpmCases) {
  const std::string bin = SharedFile("models/tokenizer.bin");
  const std::string base = SharedFile("tokenizers/ggml-vocab-llama-spm.gguf");
  if (bin.empty() || base.empty()) GTEST_SKIP() << "no shared data";
  absl::StatusOr<Vocabulary> vocab = ReadLlama2cTokenizer(bin);
  ASSERT_TRUE(vocab.ok()) << vocab.status();
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok = Tokenizer::Create(*std::move(vocab));
  ASSERT_TRUE(tok.ok()) << tok.status();
  for (const Case& c : ReadCases(base)) {
    EXPECT_EQ((*tok)->Encode(c.text, testing::Options(false)), c.ids) << "'" << c.text << "'";
  }
}

}  // namespace
}  // namespace ringserve::tokenizer
