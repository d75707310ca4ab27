// GgufWriter -> GgufFile round trips for every metadata type and tensor dtype, and
// vocabulary-only files (generated and the shared llama.cpp ones).
#include <cmath>
#include <filesystem>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/model_io/test_util.h"
#include "tests/unit/shared_dir.h"
#include "worker/model/gguf_reader.h"
#include "worker/model/gguf_vocab.h"
#include "worker/model/gguf_writer.h"

namespace ringserve::model {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(GgufRoundTrip, EveryMetadataType) {
  GgufWriter w;
  const struct {
    GgufType type;
    GgufValue value;
  } scalars[] = {
      {GgufType::kUint8, {GgufType::kUint8, GgufType::kUint32, uint64_t{200}}},
      {GgufType::kInt8, {GgufType::kInt8, GgufType::kUint32, int64_t{-100}}},
      {GgufType::kUint16, {GgufType::kUint16, GgufType::kUint32, uint64_t{60000}}},
      {GgufType::kInt16, {GgufType::kInt16, GgufType::kUint32, int64_t{-30000}}},
      {GgufType::kUint32, {GgufType::kUint32, GgufType::kUint32, uint64_t{4000000000}}},
      {GgufType::kInt32, {GgufType::kInt32, GgufType::kUint32, int64_t{-2000000000}}},
      {GgufType::kUint64, {GgufType::kUint64, GgufType::kUint32, uint64_t{1} << 63}},
      {GgufType::kInt64, {GgufType::kInt64, GgufType::kUint32, int64_t{-(int64_t{1} << 62)}}},
      {GgufType::kFloat32, {GgufType::kFloat32, GgufType::kUint32, 0.25}},
      {GgufType::kFloat64, {GgufType::kFloat64, GgufType::kUint32, 1.0 / 3}},
      {GgufType::kBool, {GgufType::kBool, GgufType::kUint32, true}},
      {GgufType::kString, {GgufType::kString, GgufType::kUint32, std::string("h\xC3\xA9llo")}},
  };
  for (const auto& s : scalars) w.Set(absl::StrCat("k.", GgufTypeName(s.type)), s.value);
  w.Set("a.i16", {GgufType::kArray, GgufType::kInt16, std::vector<int64_t>{-1, 2, -3}});
  w.Set("a.u8", {GgufType::kArray, GgufType::kUint8, std::vector<int64_t>{0, 255}});
  w.Set("a.bool", {GgufType::kArray, GgufType::kBool, std::vector<int64_t>{1, 0, 1}});
  w.Set("a.f64", {GgufType::kArray, GgufType::kFloat64, std::vector<double>{0.5, -2.0}});
  w.SetFloat32Array("a.f32", {1.5, -0.125});
  w.SetStringArray("a.str", {"", "x", "\xE2\x96\x81y"});
  w.Set("a.empty", {GgufType::kArray, GgufType::kInt32, std::vector<int64_t>{}});
  const std::vector<uint8_t> bytes = w.Build();
  auto file = GgufFile::Parse(bytes, "mem.gguf");
  ASSERT_TRUE(file.ok()) << file.status();
  for (const auto& s : scalars) {
    const std::string key = absl::StrCat("k.", GgufTypeName(s.type));
    const GgufValue* v = (*file)->Find(key);
    ASSERT_NE(v, nullptr) << key;
    EXPECT_EQ(v->type, s.type) << key;
    EXPECT_EQ(v->value, s.value.value) << key;
  }
  EXPECT_EQ(*(*file)->GetInt("k.i8"), -100);
  EXPECT_EQ(*(*file)->GetInt("k.u32"), 4000000000);
  EXPECT_FALSE((*file)->GetInt("k.u64").ok());  // 2^63 does not fit int64
  EXPECT_DOUBLE_EQ(*(*file)->GetFloat("k.f64"), 1.0 / 3);
  EXPECT_DOUBLE_EQ(*(*file)->GetFloat("k.u16"), 60000);
  EXPECT_EQ(*(*file)->GetString("k.string"), "h\xC3\xA9llo");
  EXPECT_TRUE(*(*file)->GetBool("k.bool"));
  EXPECT_THAT(*(*file)->GetIntArray("a.i16"), ElementsAre(-1, 2, -3));
  EXPECT_THAT(*(*file)->GetIntArray("a.u8"), ElementsAre(0, 255));
  EXPECT_THAT(*(*file)->GetIntArray("a.bool"), ElementsAre(1, 0, 1));
  EXPECT_THAT(*(*file)->GetFloatArray("a.f64"), ElementsAre(0.5, -2.0));
  EXPECT_THAT(*(*file)->GetFloatArray("a.f32"), ElementsAre(1.5, -0.125));
  EXPECT_THAT(*(*file)->GetFloatArray("a.i16"), ElementsAre(-1, 2, -3));
  EXPECT_THAT(*(*file)->GetStringArray("a.str"), ElementsAre("", "x", "\xE2\x96\x81y"));
  EXPECT_TRUE((*file)->GetIntArray("a.empty")->empty());
  // Type errors and absent keys name the key.
  EXPECT_THAT((*file)->GetString("k.u8").status().message(), HasSubstr("'k.u8'"));
  EXPECT_EQ((*file)->GetInt("nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT((*file)->GetStringArray("a.f32").status().message(), HasSubstr("array of f32"));
}

float Tolerance(kernels::DType dtype, float x, float amax) {
  switch (dtype) {
    case kernels::DType::kF32:
      return 0;
    case kernels::DType::kF16:
      return std::fabs(x) * 1e-3F + 1e-7F;
    case kernels::DType::kBF16:
      return std::fabs(x) * 8e-3F;
    default:
      return amax / 127 * 0.51F + amax * 1e-3F;
  }
}

class GgufTensorRoundTrip : public ::testing::TestWithParam<kernels::DType> {};

TEST_P(GgufTensorRoundTrip, ValuesSurvive) {
  const kernels::DType dtype = GetParam();
  std::vector<float> values = testing::TestValues("t", 3 * 64);
  values[5] = 0;
  GgufWriter w(64);
  w.SetString("general.name", "x");
  ASSERT_TRUE(w.AddTensor("a", {3, 64}, dtype, values).ok());
  ASSERT_TRUE(w.AddTensor("b", {64}, kernels::DType::kF32, std::span(values).first(64)).ok());
  for (uint32_t version : {2U, 3U}) {
    const std::vector<uint8_t> bytes = w.Build(version);
    auto file = GgufFile::Parse(bytes, "mem.gguf");
    ASSERT_TRUE(file.ok()) << file.status();
    ASSERT_EQ((*file)->tensors().size(), 2U);
    const GgufTensorInfo& a = (*file)->tensors()[0];
    EXPECT_EQ(a.name, "a");
    EXPECT_TRUE(a.supported);
    EXPECT_EQ(a.dtype, dtype);
    EXPECT_THAT(a.shape, ElementsAre(3, 64));
    EXPECT_EQ(a.bytes, kernels::DTypeBytes(dtype, values.size()));
    EXPECT_EQ(a.offset % 64, 0U);
    EXPECT_EQ((*file)->tensors()[1].offset % 64, 0U);
    std::vector<float> back(values.size());
    kernels::ConvertToFloat(dtype, bytes.data() + a.offset, values.size(), back.data());
    for (size_t i = 0; i < values.size(); ++i) {
      float amax = 0;
      for (size_t j = i / 32 * 32; j < i / 32 * 32 + 32; ++j)
        amax = std::max(amax, std::fabs(values[j]));
      EXPECT_NEAR(back[i], values[i], Tolerance(dtype, values[i], amax)) << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllDTypes, GgufTensorRoundTrip,
                         ::testing::Values(kernels::DType::kF32, kernels::DType::kF16,
                                           kernels::DType::kBF16, kernels::DType::kQ8_0));

TEST(GgufWriter, Q8_0MatchesGgmlReference) {
  std::vector<float> x(32);
  for (int i = 0; i < 32; ++i) x[i] = static_cast<float>(i - 16);  // amax 16
  const std::vector<uint8_t> q = EncodeTensorData(kernels::DType::kQ8_0, x);
  ASSERT_EQ(q.size(), 34U);
  uint16_t d;
  std::memcpy(&d, q.data(), 2);
  EXPECT_EQ(d, kernels::FloatToHalf(16.0F / 127));
  EXPECT_EQ(static_cast<int8_t>(q[2]), -127);  // -16 / d
  EXPECT_EQ(static_cast<int8_t>(q[2 + 16]), 0);
  EXPECT_EQ(static_cast<int8_t>(q[2 + 31]), 119);  // round(15 * 7.9375)
  const std::vector<uint8_t> zeros =
      EncodeTensorData(kernels::DType::kQ8_0, std::vector<float>(32));
  EXPECT_EQ(zeros, std::vector<uint8_t>(34, 0));
}

TEST(GgufWriter, RejectsBadTensors) {
  GgufWriter w;
  EXPECT_FALSE(w.AddTensor("a", {2, 3}, kernels::DType::kF32, std::vector<float>(5)).ok());
  EXPECT_FALSE(w.AddTensor("a", {2, 16}, kernels::DType::kQ8_0, std::vector<float>(32)).ok());
}

TEST(GgufVocab, SentencePieceDefaults) {
  const ModelConfig c = testing::SmallConfig();
  const std::vector<uint8_t> bytes = testing::SmallGgufWriter(c, kernels::DType::kF32).Build();
  auto file = GgufFile::Parse(bytes, "mem.gguf");
  ASSERT_TRUE(file.ok()) << file.status();
  auto v = VocabularyFromGguf(**file);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->model, tokenizer::TokenizerModel::kSentencePiece);
  EXPECT_EQ(v->tokens.size(), 40U);
  EXPECT_EQ(v->scores.size(), 40U);
  EXPECT_EQ(v->bos_id, 1);
  EXPECT_EQ(v->eos_id, 2);
  EXPECT_TRUE(v->add_bos);
  EXPECT_TRUE(v->add_space_prefix);
  EXPECT_FALSE(v->add_eos);
}

TEST(GgufVocab, ByteLevelBpeOnlyVocabulary) {
  GgufWriter w;
  w.SetString("tokenizer.ggml.model", "gpt2");
  w.SetString("tokenizer.ggml.pre", "llama-bpe");
  w.SetStringArray("tokenizer.ggml.tokens", {"a", "b", "ab", "<|eot|>"});
  w.SetStringArray("tokenizer.ggml.merges", {"a b"});
  w.SetInt32Array("tokenizer.ggml.token_type", {1, 1, 1, 3});
  w.SetUint32("tokenizer.ggml.eot_token_id", 3);
  w.SetBool("tokenizer.ggml.add_bos_token", true);
  const std::vector<uint8_t> bytes = w.Build();
  auto file = GgufFile::Parse(bytes, "vocab.gguf");
  ASSERT_TRUE(file.ok()) << file.status();
  auto v = VocabularyFromGguf(**file);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->model, tokenizer::TokenizerModel::kByteLevelBpe);
  EXPECT_EQ(v->pre_tokenizer, "llama-bpe");
  EXPECT_THAT(v->merges, ElementsAre("a b"));
  EXPECT_THAT(v->eot_ids, ElementsAre(3));
  EXPECT_EQ(v->types[3], tokenizer::TokenType::kControl);
  EXPECT_TRUE(v->add_bos);
  EXPECT_FALSE(v->add_space_prefix);
}

TEST(GgufVocab, BadVocabulariesAreErrors) {
  auto check = [](GgufWriter w, const std::string& want) {
    w.SetStringArray("tokenizer.ggml.tokens", {"a", "b"});
    const std::vector<uint8_t> bytes = w.Build();
    auto file = GgufFile::Parse(bytes, "bad.gguf");
    ASSERT_TRUE(file.ok()) << file.status();
    auto v = VocabularyFromGguf(**file);
    ASSERT_FALSE(v.ok());
    EXPECT_THAT(v.status().message(), HasSubstr("bad.gguf"));
    EXPECT_THAT(v.status().message(), HasSubstr(want));
  };
  GgufWriter unknown_model;
  unknown_model.SetString("tokenizer.ggml.model", "rwkv");
  check(unknown_model, "'rwkv'");
  GgufWriter bad_scores;
  bad_scores.SetString("tokenizer.ggml.model", "llama");
  bad_scores.SetFloat32Array("tokenizer.ggml.scores", {1.0});
  check(bad_scores, "tokenizer.ggml.scores");
  GgufWriter bad_bos;
  bad_bos.SetString("tokenizer.ggml.model", "llama");
  bad_bos.SetUint32("tokenizer.ggml.bos_token_id", 7);
  check(bad_bos, "bos_token_id");
  GgufWriter no_merges;
  no_merges.SetString("tokenizer.ggml.model", "gpt2");
  check(no_merges, "merges");
}

TEST(GgufVocab, SharedLlamaCppVocabularies) {
  const std::string dir = SharedDataDir() + "/tokenizers";
  if (!std::filesystem::exists(dir)) GTEST_SKIP() << "no " << dir;
  const std::pair<const char*, tokenizer::TokenizerModel> files[] = {
      {"ggml-vocab-llama-spm.gguf", tokenizer::TokenizerModel::kSentencePiece},
      {"ggml-vocab-gpt-2.gguf", tokenizer::TokenizerModel::kByteLevelBpe},
      {"ggml-vocab-deepseek-llm.gguf", tokenizer::TokenizerModel::kByteLevelBpe},
      {"ggml-vocab-starcoder.gguf", tokenizer::TokenizerModel::kByteLevelBpe}};
  for (const auto& [name, model] : files) {
    auto file = GgufFile::Open(dir + "/" + name);
    ASSERT_TRUE(file.ok()) << file.status();
    EXPECT_TRUE((*file)->tensors().empty());
    auto v = VocabularyFromGguf(**file);
    ASSERT_TRUE(v.ok()) << v.status();
    EXPECT_EQ(v->model, model) << name;
    EXPECT_GT(v->tokens.size(), 30000U) << name;
    if (model == tokenizer::TokenizerModel::kByteLevelBpe) {
      EXPECT_FALSE(v->merges.empty());
    }
  }
}

}  // namespace
}  // namespace ringserve::model
