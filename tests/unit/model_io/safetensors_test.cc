// Hugging Face directories written by the test: single file, shards, tied and untied,
// F32/F16/BF16, Llama 3 rope_scaling, misaligned data.
#include <cstring>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/model_io/test_util.h"
#include "worker/model/checkpoint.h"
#include "worker/model/safetensors_loader.h"

namespace ringserve::model {
namespace {

using ::testing::HasSubstr;

void ExpectValues(const Checkpoint& ckpt, const ModelConfig& c, kernels::DType dtype) {
  for (const auto& [name, shape] : testing::CanonicalShapes(c)) {
    auto t = ckpt.FindWithShape(name, shape);
    ASSERT_TRUE(t.ok()) << t.status();
    EXPECT_EQ((*t)->dtype, dtype);
    const std::vector<uint8_t> want =
        EncodeTensorData(dtype, testing::TestValues(name, (*t)->NumElements()));
    ASSERT_EQ((*t)->bytes, want.size());
    EXPECT_EQ(std::memcmp((*t)->data, want.data(), want.size()), 0) << name;
    EXPECT_EQ(reinterpret_cast<uintptr_t>((*t)->data) % kernels::DTypeBytes(dtype, 1), 0U);
  }
}

struct StCase {
  const char* dtype;
  kernels::DType kind;
  bool tied;
  int extra_header_bytes;
};

class SafetensorsDir : public ::testing::TestWithParam<StCase> {};

TEST_P(SafetensorsDir, SingleFile) {
  ModelConfig c = testing::SmallConfig();
  c.tied_embeddings = GetParam().tied;
  const std::string dir = testing::MakeTempDir();
  testing::WriteText(dir + "/config.json", testing::HfConfigJson(c));
  auto tensors = testing::HfTensors(c, GetParam().dtype);
  tensors.push_back({"model.layers.0.self_attn.rotary_emb.inv_freq",
                     "F32",
                     {4},
                     std::vector<uint8_t>(16)});  // unused, skipped
  testing::WriteBytes(dir + "/model.safetensors",
                      testing::SafetensorsImage(tensors, GetParam().extra_header_bytes));
  auto ckpt = OpenCheckpoint(dir);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  EXPECT_EQ((*ckpt)->format, "safetensors");
  const ModelConfig& got = (*ckpt)->config;
  EXPECT_EQ(got.dim, 32);
  EXPECT_EQ(got.num_kv_heads, 2);
  EXPECT_EQ(got.head_dim, 8);
  EXPECT_EQ(got.vocab_size, 40);
  EXPECT_EQ(got.rope_layout, kernels::RopeLayout::kHalves);
  EXPECT_FLOAT_EQ(got.rope_theta, 500000.0F);
  EXPECT_FLOAT_EQ(got.rms_eps, 1e-5F);
  EXPECT_EQ(got.tied_embeddings, c.tied_embeddings);
  EXPECT_EQ(got.rope_scaling.type, RopeType::kDefault);
  ExpectValues(**ckpt, c, GetParam().kind);
  EXPECT_FALSE((*ckpt)->Find("output.weight").ok() && c.tied_embeddings);
}

INSTANTIATE_TEST_SUITE_P(Variants, SafetensorsDir,
                         ::testing::Values(StCase{"F32", kernels::DType::kF32, true, 0},
                                           StCase{"F32", kernels::DType::kF32, false, 3},
                                           StCase{"F16", kernels::DType::kF16, false, 0},
                                           StCase{"BF16", kernels::DType::kBF16, true, 1}));

// A Qwen2 directory: the Q/K/V biases are read (as blk.N.attn_{q,k,v}.bias), and any other
// bias is refused rather than skipped.
TEST(SafetensorsDir, Qwen2BiasesAreReadAndOthersRefused) {
  ModelConfig c = testing::SmallConfig();
  c.architecture = "qwen2";
  c.attention_bias = true;
  const std::string dir = testing::MakeTempDir();
  testing::WriteText(dir + "/config.json", testing::HfConfigJson(c));
  auto tensors = testing::HfTensors(c, "BF16");
  testing::WriteBytes(dir + "/model.safetensors", testing::SafetensorsImage(tensors, 0));
  auto ckpt = OpenCheckpoint(dir);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  EXPECT_EQ((*ckpt)->config.architecture, "qwen2");
  EXPECT_TRUE((*ckpt)->config.attention_bias);
  ExpectValues(**ckpt, c, kernels::DType::kBF16);

  tensors.push_back(
      {"model.layers.0.self_attn.o_proj.bias", "BF16", {32}, std::vector<uint8_t>(64)});
  const std::string other = testing::MakeTempDir();
  testing::WriteText(other + "/config.json", testing::HfConfigJson(c));
  testing::WriteBytes(other + "/model.safetensors", testing::SafetensorsImage(tensors, 0));
  auto refused = OpenCheckpoint(other);
  EXPECT_THAT(refused.status().message(), HasSubstr("o_proj.bias"));
}

// A base model's directory (an embedding model saved without its head: e5-mistral's
// MistralModel): names without "model.", no lm_head; the embeddings stand in for the head.
TEST(SafetensorsDir, ABaseModelLoadsWithItsEmbeddingsAsTheHead) {
  ModelConfig c = testing::SmallConfig();
  c.tied_embeddings = false;
  const std::string dir = testing::MakeTempDir();
  std::string config = testing::HfConfigJson(c);
  config.replace(config.find("LlamaForCausalLM"), 16, "MistralModel");
  testing::WriteText(dir + "/config.json", config);
  std::vector<testing::StTensor> tensors;
  for (testing::StTensor& t : testing::HfTensors(c, "F32")) {
    if (t.name == "lm_head.weight") continue;
    if (t.name.starts_with("model.")) t.name = t.name.substr(6);
    tensors.push_back(std::move(t));
  }
  testing::WriteBytes(dir + "/model.safetensors", testing::SafetensorsImage(tensors, 0));
  auto ckpt = OpenCheckpoint(dir);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  EXPECT_EQ((*ckpt)->config.architecture, "llama");
  EXPECT_TRUE((*ckpt)->config.tied_embeddings);
  c.tied_embeddings = true;
  ExpectValues(**ckpt, c, kernels::DType::kF32);
}

// A Qwen3 directory: per-head Q/K norms (self_attn.{q,k}_norm, head_dim wide) and a
// head_dim other than hidden_size / heads, with its "attention_bias": false spelled out.
TEST(SafetensorsDir, Qwen3ReadsItsQkNormsAndHeadDim) {
  ModelConfig c = testing::SmallConfig();
  c.architecture = "qwen3";
  c.qk_norm = true;
  c.head_dim *= 2;
  const std::string dir = testing::MakeTempDir();
  testing::WriteText(
      dir + "/config.json",
      testing::HfConfigJson(c, R"(, "attention_bias": false, "model_type": "qwen3")"));
  testing::WriteBytes(dir + "/model.safetensors",
                      testing::SafetensorsImage(testing::HfTensors(c, "BF16"), 0));
  auto ckpt = OpenCheckpoint(dir);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  EXPECT_EQ((*ckpt)->config.architecture, "qwen3");
  EXPECT_TRUE((*ckpt)->config.qk_norm);
  EXPECT_FALSE((*ckpt)->config.attention_bias);
  EXPECT_EQ((*ckpt)->config.head_dim, c.head_dim);
  EXPECT_EQ((*ckpt)->config.rope_layout, kernels::RopeLayout::kHalves);
  EXPECT_TRUE((*ckpt)->FindWithShape("blk.1.attn_k_norm.weight", {c.head_dim}).ok());
  ExpectValues(**ckpt, c, kernels::DType::kBF16);
}

TEST(SafetensorsDir, ShardedWithIndex) {
  ModelConfig c = testing::SmallConfig();
  c.tied_embeddings = false;
  const std::string dir = testing::MakeTempDir();
  testing::WriteText(dir + "/config.json", testing::HfConfigJson(c));
  const auto tensors = testing::HfTensors(c, "BF16");
  const size_t half = tensors.size() / 2;
  const std::vector<testing::StTensor> a(tensors.begin(), tensors.begin() + half);
  const std::vector<testing::StTensor> b(tensors.begin() + half, tensors.end());
  testing::WriteBytes(dir + "/model-00001-of-00002.safetensors", testing::SafetensorsImage(a));
  testing::WriteBytes(dir + "/model-00002-of-00002.safetensors", testing::SafetensorsImage(b, 5));
  std::string map;
  for (size_t i = 0; i < tensors.size(); ++i) {
    absl::StrAppend(&map, i ? "," : "", "\"", tensors[i].name, "\":\"model-0000", i < half ? 1 : 2,
                    "-of-00002.safetensors\"");
  }
  testing::WriteText(dir + "/model.safetensors.index.json",
                     absl::StrCat("{\"metadata\":{\"total_size\":1},\"weight_map\":{", map, "}}"));
  auto ckpt = OpenCheckpoint(dir);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  ExpectValues(**ckpt, c, kernels::DType::kBF16);
}

TEST(SafetensorsConfig, Llama3RopeScalingAndHeadDim) {
  ModelConfig c = testing::SmallConfig();
  auto got = ModelConfigFromHfJson(
      testing::HfConfigJson(c, R"(, "head_dim": 16, "rope_scaling": {"rope_type": "llama3",
        "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192}, "bos_token_id": 1, "eos_token_id": [2, 3])"),
      "config.json");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->rope_scaling.type, RopeType::kLlama3);
  EXPECT_FLOAT_EQ(got->rope_scaling.factor, 32.0F);
  EXPECT_FLOAT_EQ(got->rope_scaling.low_freq_factor, 1.0F);
  EXPECT_FLOAT_EQ(got->rope_scaling.high_freq_factor, 4.0F);
  EXPECT_EQ(got->rope_scaling.original_max_position, 8192);
  EXPECT_EQ(got->head_dim, 16);
  EXPECT_EQ(got->rotary_dim, 16);

  auto old_key = ModelConfigFromHfJson(
      testing::HfConfigJson(c, R"(, "rope_scaling": {"type": "llama3", "factor": 8.0})"), "c");
  ASSERT_TRUE(old_key.ok()) << old_key.status();
  EXPECT_EQ(old_key->rope_scaling.type, RopeType::kLlama3);
}

// Qwen2.5's documented YaRN setting: max_position_embeddings stays at the original context,
// and the context served is factor times it.
TEST(SafetensorsConfig, YarnRopeScalingExtendsTheContext) {
  const ModelConfig c = testing::SmallConfig();  // max_position_embeddings 16
  auto yarn = ModelConfigFromHfJson(
      testing::HfConfigJson(c, R"(, "rope_scaling": {"type": "yarn", "factor": 4.0,
        "original_max_position_embeddings": 16})"),
      "c");
  ASSERT_TRUE(yarn.ok()) << yarn.status();
  EXPECT_EQ(yarn->rope_scaling.type, RopeType::kYarn);
  EXPECT_FLOAT_EQ(yarn->rope_scaling.factor, 4.0F);
  EXPECT_EQ(yarn->rope_scaling.original_max_position, 16);
  EXPECT_FLOAT_EQ(yarn->rope_scaling.beta_fast, 32.0F);
  EXPECT_FLOAT_EQ(yarn->rope_scaling.beta_slow, 1.0F);
  EXPECT_TRUE(yarn->rope_scaling.truncate);
  EXPECT_EQ(yarn->max_seq_len, 64);

  // A config whose max_position_embeddings is already the extended one keeps it.
  auto extended = ModelConfigFromHfJson(
      testing::HfConfigJson(c, R"(, "rope_scaling": {"rope_type": "yarn", "factor": 2.0,
        "original_max_position_embeddings": 4, "beta_fast": 8, "beta_slow": 0.5,
        "truncate": false, "attention_factor": 1.25})"),
      "c");
  ASSERT_TRUE(extended.ok()) << extended.status();
  EXPECT_EQ(extended->max_seq_len, 16);
  EXPECT_FLOAT_EQ(extended->rope_scaling.beta_fast, 8.0F);
  EXPECT_FLOAT_EQ(extended->rope_scaling.beta_slow, 0.5F);
  EXPECT_FALSE(extended->rope_scaling.truncate);
  EXPECT_DOUBLE_EQ(RopeAttentionFactor(extended->rope_scaling), 1.25);

  auto linear = ModelConfigFromHfJson(
      testing::HfConfigJson(c, R"(, "rope_scaling": {"type": "linear", "factor": 4.0})"), "c");
  ASSERT_TRUE(linear.ok()) << linear.status();
  EXPECT_EQ(linear->rope_scaling.type, RopeType::kLinear);
  EXPECT_EQ(linear->max_seq_len, 16);

  // Refused, each saying why.
  struct Refused {
    const char* rope;
    absl::StatusCode code;
    const char* says;
  };
  for (const Refused& r : {
           Refused{R"({"rope_type": "dynamic", "factor": 2.0})", absl::StatusCode::kUnimplemented,
                   "'dynamic'"},
           Refused{R"({"rope_type": "longrope", "factor": 2.0})", absl::StatusCode::kUnimplemented,
                   "'longrope'"},
           Refused{R"({"rope_type": "yarn"})", absl::StatusCode::kInvalidArgument, "'factor'"},
           Refused{R"({"rope_type": "linear", "factor": "2"})", absl::StatusCode::kInvalidArgument,
                   "'factor'"},
           Refused{R"({"rope_type": "yarn", "factor": -1.0})", absl::StatusCode::kInvalidArgument,
                   "factor > 0"},
           Refused{R"({"rope_type": "yarn", "factor": 2.0, "truncate": 1})",
                   absl::StatusCode::kInvalidArgument, "'truncate'"},
       }) {
    auto got = ModelConfigFromHfJson(
        testing::HfConfigJson(c, absl::StrCat(R"(, "rope_scaling": )", r.rope)), "c");
    EXPECT_EQ(got.status().code(), r.code) << r.rope;
    EXPECT_THAT(got.status().message(), HasSubstr(r.says)) << r.rope;
  }
}

// Sliding windows as transformers reads them: Mistral's on every layer (null from v0.2 on),
// Qwen2's only with use_sliding_window and from max_window_layers on, "layer_types" where the
// file lists them; a Llama has none. The context stays the file's.
TEST(SafetensorsConfig, SlidingWindowsAsTransformersReadsThem) {
  ModelConfig c = testing::SmallConfig();  // 2 layers
  c.max_seq_len = 64;
  const auto as = [&](const char* architecture, const std::string& extra) {
    std::string text = testing::HfConfigJson(c, extra);
    text.replace(text.find("LlamaForCausalLM"), 16, architecture);
    return ModelConfigFromHfJson(text, "c");
  };
  auto v01 = as("MistralForCausalLM", R"(, "sliding_window": 16)");
  ASSERT_TRUE(v01.ok()) << v01.status();
  EXPECT_EQ(v01->sliding_window, 16);
  EXPECT_TRUE(v01->sliding_layers.empty());
  EXPECT_EQ(v01->LayerWindow(0), 16);
  EXPECT_EQ(v01->LayerWindow(1), 16);
  EXPECT_EQ(v01->max_seq_len, 64);
  auto v02 = as("MistralForCausalLM", R"(, "sliding_window": null)");
  ASSERT_TRUE(v02.ok()) << v02.status();
  EXPECT_EQ(v02->sliding_window, 0);
  auto llama = as("LlamaForCausalLM", R"(, "sliding_window": 16, "use_sliding_window": true)");
  ASSERT_TRUE(llama.ok()) << llama.status();
  EXPECT_EQ(llama->sliding_window, 0);
  EXPECT_THAT(as("MistralForCausalLM", R"(, "sliding_window": -3)").status().message(),
              HasSubstr("sliding_window"));

  auto qwen_off =
      as("Qwen2ForCausalLM", R"(, "sliding_window": 4096, "use_sliding_window": false)");
  ASSERT_TRUE(qwen_off.ok()) << qwen_off.status();
  EXPECT_EQ(qwen_off->sliding_window, 0);
  auto qwen_on = as("Qwen2ForCausalLM",
                    R"(, "sliding_window": 8, "use_sliding_window": true, "max_window_layers": 1)");
  ASSERT_TRUE(qwen_on.ok()) << qwen_on.status();
  EXPECT_EQ(qwen_on->sliding_window, 8);
  EXPECT_EQ(qwen_on->LayerWindow(0), 0);
  EXPECT_EQ(qwen_on->LayerWindow(1), 8);
  // transformers' default max_window_layers (28) leaves a 2-layer model without a window.
  auto qwen_default =
      as("Qwen3ForCausalLM", R"(, "sliding_window": 8, "use_sliding_window": true)");
  ASSERT_TRUE(qwen_default.ok()) << qwen_default.status();
  EXPECT_EQ(qwen_default->LayerWindow(1), 0);
  EXPECT_THAT(as("Qwen2ForCausalLM", R"(, "use_sliding_window": true, "sliding_window": null)")
                  .status()
                  .message(),
              HasSubstr("sliding_window"));

  auto listed =
      as("MistralForCausalLM",
         R"(, "sliding_window": 16, "layer_types": ["sliding_attention", "full_attention"])");
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_EQ(listed->LayerWindow(0), 16);
  EXPECT_EQ(listed->LayerWindow(1), 0);
  for (const char* bad :
       {R"(, "sliding_window": 16, "layer_types": ["full_attention"])",
        R"(, "sliding_window": 16, "layer_types": ["chunked_attention", "full_attention"])",
        R"(, "sliding_window": 16, "layer_types": "sliding_attention")"}) {
    auto refused = as("MistralForCausalLM", bad);
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(refused.status().message(), HasSubstr("layer_types")) << bad;
  }
}

// transformers >= 5 writes rope_theta and the scaling under "rope_parameters" and neither
// at the top level.
TEST(SafetensorsConfig, RopeParametersOfTransformers5) {
  const ModelConfig c = testing::SmallConfig();
  std::string base = testing::HfConfigJson(c);
  base.replace(base.find("\"rope_theta\": 500000.0, "), 24, "");
  auto with_extra = [&](const std::string& extra) {
    return base.substr(0, base.size() - 1) + extra + "}";
  };
  auto scaled = ModelConfigFromHfJson(
      with_extra(R"(, "rope_parameters": {"rope_type": "llama3", "rope_theta": 250000.0,
        "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192})"),
      "config.json");
  ASSERT_TRUE(scaled.ok()) << scaled.status();
  EXPECT_FLOAT_EQ(scaled->rope_theta, 250000.0F);
  EXPECT_EQ(scaled->rope_scaling.type, RopeType::kLlama3);
  EXPECT_FLOAT_EQ(scaled->rope_scaling.factor, 8.0F);
  EXPECT_EQ(scaled->rope_scaling.original_max_position, 8192);

  auto plain = ModelConfigFromHfJson(
      with_extra(R"(, "rope_parameters": {"rope_type": "default", "rope_theta": 500000.0})"), "c");
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_FLOAT_EQ(plain->rope_theta, 500000.0F);
  EXPECT_EQ(plain->rope_scaling.type, RopeType::kDefault);

  auto bad = ModelConfigFromHfJson(with_extra(R"(, "rope_parameters": 3)"), "c");
  EXPECT_THAT(bad.status().message(), HasSubstr("rope_parameters"));
}

TEST(SafetensorsConfig, BadConfigsNameTheField) {
  const ModelConfig c = testing::SmallConfig();
  auto gemma = ModelConfigFromHfJson(R"({"architectures": ["GemmaForCausalLM"], "hidden_size": 8})",
                                     "dir/config.json");
  EXPECT_EQ(gemma.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(gemma.status().message(), HasSubstr("GemmaForCausalLM"));
  for (const char* unsupported : {"attention_bias", "mlp_bias"}) {
    auto biased = ModelConfigFromHfJson(
        testing::HfConfigJson(c).insert(1, absl::StrCat("\"", unsupported, "\": true, ")),
        "dir/config.json");
    EXPECT_EQ(biased.status().code(), absl::StatusCode::kUnimplemented) << unsupported;
    EXPECT_THAT(biased.status().message(), HasSubstr(unsupported));
  }
  auto broken = ModelConfigFromHfJson("{not json", "dir/config.json");
  EXPECT_THAT(broken.status().message(), HasSubstr("dir/config.json"));
  std::string text = testing::HfConfigJson(c);
  text.replace(text.find("\"hidden_size\": 32"), 17, "\"hidden_size\": -1");
  auto negative = ModelConfigFromHfJson(text, "dir/config.json");
  EXPECT_THAT(negative.status().message(), HasSubstr("hidden_size"));
}

TEST(SafetensorsNames, MapToCanonical) {
  int layer = 0;
  EXPECT_EQ(CanonicalTensorName("model.layers.11.mlp.down_proj.weight", &layer),
            "blk.11.ffn_down.weight");
  EXPECT_EQ(layer, 11);
  EXPECT_EQ(CanonicalTensorName("model.layers.0.post_attention_layernorm.weight", &layer),
            "blk.0.ffn_norm.weight");
  EXPECT_EQ(CanonicalTensorName("lm_head.weight", &layer), "output.weight");
  EXPECT_EQ(layer, -1);
  EXPECT_EQ(CanonicalTensorName("model.layers.x.mlp.down_proj.weight", &layer), "");
  EXPECT_EQ(CanonicalTensorName("model.layers.0.self_attn.rotary_emb.inv_freq", &layer), "");
  EXPECT_EQ(CanonicalTensorName("model.layers.3.self_attn.k_proj.bias", &layer),
            "blk.3.attn_k.bias");
  EXPECT_EQ(CanonicalTensorName("model.layers.3.self_attn.o_proj.bias", &layer), "");
  // A base model's (no "model." prefix).
  EXPECT_EQ(CanonicalTensorName("layers.2.self_attn.q_proj.weight", &layer), "blk.2.attn_q.weight");
  EXPECT_EQ(layer, 2);
  EXPECT_EQ(CanonicalTensorName("embed_tokens.weight", &layer), "token_embd.weight");
  EXPECT_EQ(CanonicalTensorName("norm.weight", &layer), "output_norm.weight");
  EXPECT_EQ(CanonicalTensorName("model.lm_head.weight", &layer), "");
}

}  // namespace
}  // namespace ringserve::model
