// Loading checkpoints of every format into the same canonical Checkpoint.
#include "worker/model/checkpoint.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <variant>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/model_io/test_util.h"
#include "tests/unit/shared_dir.h"
#include "worker/model/gguf_loader.h"
#include "worker/model/llama2c_loader.h"
#include "worker/model/presets.h"
#include "worker/model/tiny_model.h"

namespace ringserve::model {
namespace {

using ::testing::HasSubstr;

// Every canonical tensor of `c` holds exactly TestValues (after encoding to its dtype).
void ExpectTestValues(const Checkpoint& ckpt, const ModelConfig& c) {
  for (const auto& [name, shape] : testing::CanonicalShapes(c)) {
    auto t = ckpt.FindWithShape(name, shape);
    ASSERT_TRUE(t.ok()) << t.status();
    const std::vector<uint8_t> want =
        EncodeTensorData((*t)->dtype, testing::TestValues(name, (*t)->NumElements()));
    ASSERT_EQ((*t)->bytes, want.size()) << name;
    EXPECT_EQ(std::memcmp((*t)->data, want.data(), want.size()), 0) << name;
  }
}

class GgufCheckpoint : public ::testing::TestWithParam<kernels::DType> {};

TEST_P(GgufCheckpoint, LoadsConfigAndTensors) {
  ModelConfig c = testing::SmallConfig();
  c.tied_embeddings = GetParam() != kernels::DType::kF32;  // both variants covered
  const std::string path = testing::MakeTempDir() + "/small.gguf";
  ASSERT_TRUE(testing::SmallGgufWriter(c, GetParam()).WriteFile(path).ok());
  auto ckpt = OpenCheckpoint(path);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  const ModelConfig& got = (*ckpt)->config;
  EXPECT_EQ((*ckpt)->format, "gguf");
  EXPECT_EQ(got.dim, 32);
  EXPECT_EQ(got.hidden_dim, 64);
  EXPECT_EQ(got.num_layers, 2);
  EXPECT_EQ(got.num_heads, 4);
  EXPECT_EQ(got.num_kv_heads, 2);
  EXPECT_EQ(got.head_dim, 8);
  EXPECT_EQ(got.rotary_dim, 8);
  EXPECT_EQ(got.vocab_size, 40);
  EXPECT_EQ(got.max_seq_len, 16);
  EXPECT_FLOAT_EQ(got.rms_eps, 1e-6F);
  EXPECT_FLOAT_EQ(got.rope_theta, 500000.0F);
  EXPECT_EQ(got.rope_layout, kernels::RopeLayout::kAdjacentPairs);
  EXPECT_EQ(got.tied_embeddings, c.tied_embeddings);
  ASSERT_TRUE((*ckpt)->vocabulary.has_value());
  EXPECT_EQ((*ckpt)->vocabulary->tokens.size(), 40U);
  EXPECT_EQ((*(*ckpt)->Find("blk.0.attn_q.weight"))->dtype, GetParam());
  ExpectTestValues(**ckpt, c);
}

INSTANTIATE_TEST_SUITE_P(AllDTypes, GgufCheckpoint,
                         ::testing::Values(kernels::DType::kF32, kernels::DType::kF16,
                                           kernels::DType::kBF16, kernels::DType::kQ8_0));

TEST(GgufCheckpoint, RopeFreqsTensorAndLlama3Keys) {
  const ModelConfig c = testing::SmallConfig();
  GgufWriter w = testing::SmallGgufWriter(c, kernels::DType::kF32);
  const std::vector<float> divisors = {1, 1, 2.5, 8};
  ASSERT_TRUE(w.AddTensor("rope_freqs.weight", {4}, kernels::DType::kF32, divisors).ok());
  std::vector<uint8_t> bytes = w.Build();
  auto file = GgufFile::Parse(bytes, "mem.gguf");
  ASSERT_TRUE(file.ok()) << file.status();
  auto config = ModelConfigFromGguf(**file);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->rope_freq_divisors, divisors);
  EXPECT_EQ(config->rope_scaling.type, RopeType::kDefault);

  GgufWriter w3 = testing::SmallGgufWriter(c, kernels::DType::kF32);
  w3.SetString("llama.rope.scaling.type", "llama3");
  w3.SetFloat32("llama.rope.scaling.factor", 32.0F);
  w3.SetUint32("llama.rope.scaling.original_context_length", 4096);
  bytes = w3.Build();
  file = GgufFile::Parse(bytes, "mem.gguf");
  ASSERT_TRUE(file.ok()) << file.status();
  config = ModelConfigFromGguf(**file);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->rope_scaling.type, RopeType::kLlama3);
  EXPECT_FLOAT_EQ(config->rope_scaling.factor, 32.0F);
  EXPECT_EQ(config->rope_scaling.original_max_position, 4096);
}

absl::StatusOr<ModelConfig> ConfigWithKeys(const std::function<void(GgufWriter&)>& keys) {
  const ModelConfig c = testing::SmallConfig();
  GgufWriter w = testing::SmallGgufWriter(c, kernels::DType::kF32);
  keys(w);
  const std::vector<uint8_t> bytes = w.Build();
  RS_ASSIGN_OR_RETURN(auto file, GgufFile::Parse(bytes, "mem.gguf"));
  return ModelConfigFromGguf(*file);
}

// llama.cpp's attention.sliding_window key: a window over every layer.
TEST(GgufCheckpoint, SlidingWindowKeyAppliesToEveryLayer) {
  auto config =
      ConfigWithKeys([](GgufWriter& w) { w.SetUint32("llama.attention.sliding_window", 8); });
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->sliding_window, 8);
  EXPECT_EQ(config->LayerWindow(1), 8);
  config = ConfigWithKeys([](GgufWriter&) {});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->sliding_window, 0);
}

// Qwen2.5's GGUF with YaRN: type, factor and the original context as convert_hf_to_gguf
// writes them; the context served becomes factor times the original.
TEST(GgufCheckpoint, YarnKeysExtendTheContext) {
  auto config = ConfigWithKeys([](GgufWriter& w) {
    w.SetString("llama.rope.scaling.type", "yarn");
    w.SetFloat32("llama.rope.scaling.factor", 4.0F);
    w.SetUint32("llama.rope.scaling.original_context_length", 16);
  });
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->rope_scaling.type, RopeType::kYarn);
  EXPECT_FLOAT_EQ(config->rope_scaling.factor, 4.0F);
  EXPECT_EQ(config->rope_scaling.original_max_position, 16);
  EXPECT_FLOAT_EQ(config->rope_scaling.beta_fast, 32.0F);
  EXPECT_FLOAT_EQ(config->rope_scaling.beta_slow, 1.0F);
  EXPECT_EQ(config->max_seq_len, 64);
  EXPECT_NEAR(RopeAttentionFactor(config->rope_scaling), 0.1 * std::log(4.0) + 1, 1e-12);

  // Without an original context the file's own is the original; betas and an attention
  // factor when the file names them.
  config = ConfigWithKeys([](GgufWriter& w) {
    w.SetString("llama.rope.scaling.type", "yarn");
    w.SetFloat32("llama.rope.scaling.factor", 2.0F);
    w.SetFloat32("llama.rope.scaling.yarn_beta_fast", 16.0F);
    w.SetFloat32("llama.rope.scaling.yarn_beta_slow", 2.0F);
    w.SetFloat32("llama.rope.scaling.attn_factor", 1.5F);
  });
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->rope_scaling.original_max_position, 16);
  EXPECT_EQ(config->max_seq_len, 32);
  EXPECT_FLOAT_EQ(config->rope_scaling.beta_fast, 16.0F);
  EXPECT_FLOAT_EQ(config->rope_scaling.beta_slow, 2.0F);
  EXPECT_DOUBLE_EQ(RopeAttentionFactor(config->rope_scaling), 1.5);
}

// llama.cpp's reading: a factor without a type is linear, under either key name; "none"
// and a factor of 1 are no scaling.
TEST(GgufCheckpoint, LinearScalingKeys) {
  for (const char* key : {"llama.rope.scaling.factor", "llama.rope.scale_linear"}) {
    auto config = ConfigWithKeys([&](GgufWriter& w) { w.SetFloat32(key, 4.0F); });
    ASSERT_TRUE(config.ok()) << config.status();
    EXPECT_EQ(config->rope_scaling.type, RopeType::kLinear) << key;
    EXPECT_FLOAT_EQ(config->rope_scaling.factor, 4.0F) << key;
    EXPECT_EQ(config->max_seq_len, 16) << "linear keeps the file's context";
  }
  auto typed = ConfigWithKeys([](GgufWriter& w) {
    w.SetString("llama.rope.scaling.type", "linear");
    w.SetFloat32("llama.rope.scaling.factor", 2.0F);
  });
  ASSERT_TRUE(typed.ok()) << typed.status();
  EXPECT_EQ(typed->rope_scaling.type, RopeType::kLinear);
  for (auto keys : std::vector<std::function<void(GgufWriter&)>>{
           [](GgufWriter& w) { w.SetFloat32("llama.rope.scaling.factor", 1.0F); },
           [](GgufWriter& w) {
             w.SetString("llama.rope.scaling.type", "none");
             w.SetFloat32("llama.rope.scaling.factor", 4.0F);
           }}) {
    auto config = ConfigWithKeys(keys);
    ASSERT_TRUE(config.ok()) << config.status();
    EXPECT_EQ(config->rope_scaling.type, RopeType::kDefault);
  }
  auto longrope = ConfigWithKeys([](GgufWriter& w) {
    w.SetString("llama.rope.scaling.type", "longrope");
    w.SetFloat32("llama.rope.scaling.factor", 4.0F);
  });
  EXPECT_EQ(longrope.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(longrope.status().message(), HasSubstr("'longrope'"));
}

TEST(GgufCheckpoint, OtherArchitectureIsUnimplemented) {
  GgufWriter w;
  w.SetString("general.architecture", "gemma");
  const std::vector<uint8_t> bytes = w.Build();
  auto file = GgufFile::Parse(bytes, "q.gguf");
  ASSERT_TRUE(file.ok());
  auto ckpt = CheckpointFromGguf(**file);
  EXPECT_EQ(ckpt.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(ckpt.status().message(), HasSubstr("'gemma'"));
  EXPECT_THAT(ckpt.status().message(), HasSubstr("q.gguf"));
}

// A random GGUF of `preset`'s family at a small size (64 wide, 4 heads of `head_dim`, 2 KV
// heads, 2 layers); its path, or empty after a failure.
std::string SmallPresetGguf(const std::string& preset, int head_dim) {
  absl::StatusOr<ModelConfig> config = PresetConfig(preset);
  EXPECT_TRUE(config.ok()) << config.status();
  if (!config.ok()) return "";
  config->dim = 64;
  config->num_heads = 4;
  config->num_kv_heads = 2;
  config->head_dim = head_dim;
  config->rotary_dim = head_dim;
  config->hidden_dim = 96;
  config->num_layers = 2;
  config->vocab_size = 300;
  const std::string path = absl::StrCat(::testing::TempDir(), preset, "_small.gguf");
  const absl::Status written = WriteRandomModel(path, *config, kernels::DType::kF32);
  EXPECT_TRUE(written.ok()) << written;
  return written.ok() ? path : "";
}

// ringserve-model make-random writes a preset's rope scaling, and it reads back the same:
// Llama 3.2's llama3 scaling, and YaRN with the context it extends.
TEST(GgufCheckpoint, RandomModelsKeepTheirRopeScaling) {
  const std::string llama = SmallPresetGguf("llama-3.2-1b", /*head_dim=*/16);
  ASSERT_FALSE(llama.empty());
  auto ckpt = OpenCheckpoint(llama);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  absl::StatusOr<ModelConfig> preset = PresetConfig("llama-3.2-1b");
  ASSERT_TRUE(preset.ok());
  const RopeScaling& got = (*ckpt)->config.rope_scaling;
  EXPECT_EQ(got.type, RopeType::kLlama3);
  EXPECT_EQ(got.factor, preset->rope_scaling.factor);
  EXPECT_EQ(got.original_max_position, preset->rope_scaling.original_max_position);

  ModelConfig yarn = testing::SmallConfig();
  yarn.architecture = "qwen3";
  yarn.qk_norm = true;
  yarn.rope_scaling.type = RopeType::kYarn;
  yarn.rope_scaling.factor = 4;
  yarn.rope_scaling.original_max_position = 16;
  yarn.rope_scaling.beta_fast = 24;
  yarn.max_seq_len = 64;
  ASSERT_TRUE(yarn.Validate().ok());
  yarn.vocab_size = 300;
  const std::string path = absl::StrCat(::testing::TempDir(), "yarn_small.gguf");
  ASSERT_TRUE(WriteRandomModel(path, yarn, kernels::DType::kF32).ok());
  ckpt = OpenCheckpoint(path);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  const ModelConfig& read = (*ckpt)->config;
  EXPECT_EQ(read.rope_scaling.type, RopeType::kYarn);
  EXPECT_EQ(read.rope_scaling.factor, 4.0F);
  EXPECT_EQ(read.rope_scaling.original_max_position, 16);
  EXPECT_EQ(read.rope_scaling.beta_fast, 24.0F);
  EXPECT_NEAR(RopeAttentionFactor(read.rope_scaling), RopeAttentionFactor(yarn.rope_scaling), 1e-6);
  EXPECT_EQ(read.max_seq_len, 64);
}

// make-random --preset mistral-7b keeps its sliding window; a window on some layers only has
// no GGUF key and is refused rather than written as a window on all.
TEST(GgufCheckpoint, RandomModelsKeepTheirSlidingWindow) {
  const std::string mistral = SmallPresetGguf("mistral-7b", /*head_dim=*/16);
  ASSERT_FALSE(mistral.empty());
  auto ckpt = OpenCheckpoint(mistral);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  EXPECT_EQ((*ckpt)->config.sliding_window, 4096);
  EXPECT_TRUE((*ckpt)->config.sliding_layers.empty());

  ModelConfig some = testing::SmallConfig();
  some.vocab_size = 300;
  some.sliding_window = 4;
  some.sliding_layers = {false, true};
  const absl::Status refused = WriteRandomModel(
      absl::StrCat(::testing::TempDir(), "some_layers.gguf"), some, kernels::DType::kF32);
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.message(), HasSubstr("sliding window"));
}

// A Qwen3 GGUF (ringserve-model make-random --preset qwen3-0.6b, here at a small size):
// per-head Q/K norms, heads wider than dim / num_heads (attention.key_length), NeoX rope.
TEST(GgufCheckpoint, Qwen3HasQkNormsAndItsOwnHeadDim) {
  const std::string path = SmallPresetGguf("qwen3-0.6b", /*head_dim=*/32);
  ASSERT_FALSE(path.empty());
  auto ckpt = OpenCheckpoint(path);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  const ModelConfig& got = (*ckpt)->config;
  EXPECT_EQ(got.architecture, "qwen3");
  EXPECT_TRUE(got.qk_norm);
  EXPECT_FALSE(got.attention_bias);
  EXPECT_EQ(got.head_dim, 32);
  EXPECT_EQ(got.rotary_dim, 32);
  EXPECT_EQ(got.rope_layout, kernels::RopeLayout::kHalves);
  EXPECT_TRUE((*ckpt)->FindWithShape("blk.1.attn_q_norm.weight", {32}).ok());
  EXPECT_TRUE((*ckpt)->FindWithShape("blk.0.attn_q.weight", {128, 64}).ok());
  EXPECT_TRUE((*ckpt)->FindWithShape("blk.0.attn_output.weight", {64, 128}).ok());

  // The published shape: 0.6B parameters, 0.44B of them outside the (tied) embedding.
  absl::StatusOr<ModelConfig> full = PresetConfig("qwen3-0.6b");
  ASSERT_TRUE(full.ok() && full->Validate().ok());
  EXPECT_EQ(full->NumParameters(), 596049920);
  EXPECT_EQ(full->NumParameters() - int64_t{full->vocab_size} * full->dim, 440467456);
}

// A Qwen2 GGUF (ringserve-model make-random --preset qwen2.5-0.5b, here at a small size):
// Q/K/V biases, NeoX rope (halves), its own metadata prefix. Every bias is required.
TEST(GgufCheckpoint, Qwen2HasAttentionBiasesAndHalvesRope) {
  const std::string path = SmallPresetGguf("qwen2.5-0.5b", /*head_dim=*/16);
  ASSERT_FALSE(path.empty());
  auto ckpt = OpenCheckpoint(path);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  EXPECT_EQ((*ckpt)->config.architecture, "qwen2");
  EXPECT_TRUE((*ckpt)->config.attention_bias);
  EXPECT_EQ((*ckpt)->config.rope_layout, kernels::RopeLayout::kHalves);
  EXPECT_FLOAT_EQ((*ckpt)->config.rope_theta, 1e6F);
  EXPECT_TRUE((*ckpt)->FindWithShape("blk.1.attn_k.bias", {32}).ok());

  auto file = GgufFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  GgufWriter without;  // the same file less one bias
  for (const std::string key :
       {"general.architecture", "qwen2.context_length", "qwen2.embedding_length",
        "qwen2.feed_forward_length", "qwen2.block_count", "qwen2.attention.head_count",
        "qwen2.attention.head_count_kv"}) {
    const GgufValue* v = (*file)->Find(key);
    ASSERT_NE(v, nullptr) << key;
    if (const auto* s = std::get_if<std::string>(&v->value)) {
      without.SetString(key, *s);
    } else {
      without.SetUint32(key, static_cast<uint32_t>(std::get<uint64_t>(v->value)));
    }
  }
  for (const GgufTensorInfo& t : (*file)->tensors()) {
    if (t.name == "blk.1.attn_v.bias") continue;
    without.AddRawTensor(t.name, t.ggml_type, {t.shape.rbegin(), t.shape.rend()},
                         {(*file)->bytes().begin() + static_cast<ptrdiff_t>(t.offset),
                          (*file)->bytes().begin() + static_cast<ptrdiff_t>(t.offset + t.bytes)});
  }
  const std::vector<uint8_t> bytes = without.Build();
  auto parsed = GgufFile::Parse(bytes, "less.gguf");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  auto less = CheckpointFromGguf(**parsed);
  EXPECT_THAT(less.status().message(), HasSubstr("blk.1.attn_v.bias"));
}

struct Llama2cCase {
  bool version1;
  bool tied;
  bool rope_tables;
};

class Llama2cCheckpoint : public ::testing::TestWithParam<Llama2cCase> {};

TEST_P(Llama2cCheckpoint, LoadsViewsIntoTheFile) {
  ModelConfig c = testing::SmallConfig();
  c.tied_embeddings = GetParam().tied;
  const std::string path = testing::MakeTempDir() + "/model.bin";
  testing::WriteBytes(path, testing::Llama2cImage(c, GetParam().version1, GetParam().rope_tables));
  auto ckpt = OpenCheckpoint(path);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  EXPECT_EQ((*ckpt)->format, "llama2c");
  EXPECT_EQ((*ckpt)->config.tied_embeddings, c.tied_embeddings);
  EXPECT_EQ((*ckpt)->config.vocab_size, 40);
  EXPECT_EQ((*ckpt)->config.max_seq_len, 16);
  EXPECT_EQ((*ckpt)->config.rope_layout, kernels::RopeLayout::kAdjacentPairs);
  EXPECT_FALSE((*ckpt)->vocabulary.has_value());  // no tokenizer beside it
  EXPECT_EQ((*ckpt)->tensors().size(), testing::CanonicalShapes(c).size());
  ExpectTestValues(**ckpt, c);
}

INSTANTIATE_TEST_SUITE_P(Variants, Llama2cCheckpoint,
                         ::testing::Values(Llama2cCase{false, true, true},
                                           Llama2cCase{false, true, false},
                                           Llama2cCase{false, false, true},
                                           Llama2cCase{true, true, false},
                                           Llama2cCase{true, false, false}));

TEST(SharedStories260K, BinAndGgufAgree) {
  const std::string dir = SharedDataDir() + "/models";
  if (!std::filesystem::exists(dir + "/stories260K.bin")) GTEST_SKIP() << "no shared models";
  auto bin = OpenCheckpoint(dir + "/stories260K.bin");
  ASSERT_TRUE(bin.ok()) << bin.status();
  auto gguf = OpenCheckpoint(dir + "/stories260K-f32.gguf");
  ASSERT_TRUE(gguf.ok()) << gguf.status();
  const ModelConfig& a = (*bin)->config;
  const ModelConfig& b = (*gguf)->config;
  EXPECT_EQ(a.dim, 64);
  EXPECT_EQ(a.hidden_dim, 172);
  EXPECT_EQ(a.num_layers, 5);
  EXPECT_EQ(a.num_heads, 8);
  EXPECT_EQ(a.num_kv_heads, 4);
  EXPECT_EQ(a.vocab_size, 512);
  EXPECT_EQ(a.max_seq_len, 512);
  EXPECT_EQ(a.NumParameters(), 260032);
  EXPECT_TRUE(a.tied_embeddings);
  EXPECT_FALSE(b.tied_embeddings);  // the converter writes the classifier out
  for (auto field :
       {&ModelConfig::dim, &ModelConfig::hidden_dim, &ModelConfig::num_layers,
        &ModelConfig::num_heads, &ModelConfig::num_kv_heads, &ModelConfig::head_dim,
        &ModelConfig::vocab_size, &ModelConfig::max_seq_len, &ModelConfig::rotary_dim}) {
    EXPECT_EQ(a.*field, b.*field);
  }
  EXPECT_EQ(a.rms_eps, b.rms_eps);
  EXPECT_EQ(a.rope_theta, b.rope_theta);
  EXPECT_EQ(a.rope_layout, b.rope_layout);
  for (const HostTensor& t : (*bin)->tensors()) {
    auto u = (*gguf)->FindWithShape(t.name, t.shape);
    ASSERT_TRUE(u.ok()) << u.status();
    ASSERT_EQ((*u)->bytes, t.bytes);
    EXPECT_EQ(std::memcmp((*u)->data, t.data, t.bytes), 0) << t.name;
  }
  const HostTensor* out = *(*gguf)->Find("output.weight");
  const HostTensor* emb = *(*bin)->Find("token_embd.weight");
  EXPECT_EQ(std::memcmp(out->data, emb->data, emb->bytes), 0);
  ASSERT_TRUE((*gguf)->vocabulary.has_value());
  EXPECT_EQ((*gguf)->vocabulary->tokens.size(), 512U);
  EXPECT_EQ((*gguf)->vocabulary->bos_id, 1);
  if ((*bin)->vocabulary.has_value()) {  // tok512.bin, picked for its size
    EXPECT_EQ((*bin)->vocabulary->tokens.size(), 512U);
  }
}

TEST(TinyModel, IsDeterministicAndLoads) {
  const std::vector<uint8_t> image = TinyModelImage();
  EXPECT_EQ(image, TinyModelImage());
  const std::string path = testing::MakeTempDir() + "/tiny.gguf";
  ASSERT_TRUE(WriteTinyModel(path).ok());
  auto ckpt = OpenCheckpoint(path);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  const ModelConfig& c = (*ckpt)->config;
  EXPECT_EQ(c.dim, 64);
  EXPECT_EQ(c.num_layers, 4);
  EXPECT_EQ(c.num_kv_heads, 4);
  EXPECT_EQ(c.max_seq_len, 2048);
  EXPECT_TRUE(c.tied_embeddings);
  EXPECT_GE(c.vocab_size, 512);
  EXPECT_LE(c.vocab_size, 1024);
  ASSERT_TRUE((*ckpt)->vocabulary.has_value());
  const tokenizer::Vocabulary& v = *(*ckpt)->vocabulary;
  EXPECT_EQ(v.tokens.size(), static_cast<size_t>(c.vocab_size));
  EXPECT_EQ(v.tokens[3], "<0x00>");
  EXPECT_EQ(v.types[3], tokenizer::TokenType::kByte);
  EXPECT_EQ(v.tokens[258], "<0xFF>");
  EXPECT_NE(std::find(v.tokens.begin(), v.tokens.end(), "\xE2\x96\x81the"), v.tokens.end());
  const HostTensor* norm = *(*ckpt)->Find("blk.3.ffn_norm.weight");
  EXPECT_EQ(static_cast<const float*>(norm->data)[0], 1.0F);
}

TEST(ModelConfig, ValidateNamesTheField) {
  ModelConfig c = testing::SmallConfig();
  c.num_kv_heads = 3;
  EXPECT_THAT(c.Validate().message(), HasSubstr("num_kv_heads"));
  c = testing::SmallConfig();
  c.rotary_dim = 7;
  EXPECT_THAT(c.Validate().message(), HasSubstr("rotary_dim"));
  ModelConfig d;
  d.dim = 30;
  d.hidden_dim = 1;
  d.num_layers = 1;
  d.num_heads = 4;
  d.num_kv_heads = 4;
  d.vocab_size = 1;
  d.max_seq_len = 1;
  EXPECT_THAT(d.Validate().message(), HasSubstr("dim"));
  d.vocab_size = 0;
  EXPECT_THAT(d.Validate().message(), HasSubstr("vocab_size"));
}

}  // namespace
}  // namespace ringserve::model
