// PEFT LoRA adapters: values, scales (alpha / r, rsLoRA, per-module patterns), the Q/K
// permutation for checkpoints whose rope rotates adjacent pairs, and every refusal.
#include "worker/model/lora_adapter.h"

#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/peft_adapter.h"
#include "tests/support/safetensors_image.h"
#include "tests/unit/model_io/test_util.h"
#include "worker/model/gguf_writer.h"
#include "worker/model/safetensors_loader.h"

namespace ringserve::model {
namespace {

using ::ringserve::testing::PeftAdapterSpec;
using ::ringserve::testing::WritePeftAdapter;
using ::testing::HasSubstr;

ModelConfig HalvesConfig() {
  ModelConfig c = testing::SmallConfig();
  c.rope_layout = kernels::RopeLayout::kHalves;
  return c;
}

// lora_A and lora_B of one module, as the file holds them.
struct FileMatrices {
  std::vector<float> a, b;
};

FileMatrices ReadModule(const std::string& dir, const std::string& module) {
  auto file = MappedFile::Open(dir + "/adapter_model.safetensors");
  EXPECT_TRUE(file.ok()) << file.status();
  auto entries = ParseSafetensors((*file)->bytes(), "adapter");
  EXPECT_TRUE(entries.ok()) << entries.status();
  FileMatrices m;
  for (const SafetensorsEntry& e : *entries) {
    const auto* data = static_cast<const float*>(e.tensor.data);
    const std::vector<float> values(data, data + e.tensor.NumElements());
    if (e.tensor.name == "base_model.model." + module + ".lora_A.weight") m.a = values;
    if (e.tensor.name == "base_model.model." + module + ".lora_B.weight") m.b = values;
  }
  return m;
}

PeftAdapterSpec Spec(int rank, double alpha, std::vector<std::string> targets,
                     std::string extra_config = "") {
  PeftAdapterSpec spec;
  spec.rank = rank;
  spec.alpha = alpha;
  if (!targets.empty()) spec.targets = std::move(targets);
  spec.extra_config = std::move(extra_config);
  return spec;
}

TEST(LoraAdapterTest, ReadsMatricesWithScaleFoldedIntoBTransposed) {
  const ModelConfig c = HalvesConfig();
  const std::string dir = testing::MakeTempDir();
  WritePeftAdapter(dir, c, Spec(4, 8, {"q_proj", "down_proj"}));
  auto adapter = LoadLoraAdapter("math", dir, c);
  ASSERT_TRUE(adapter.ok()) << adapter.status();
  EXPECT_EQ(adapter->name, "math");
  EXPECT_EQ(adapter->rank, 4);
  ASSERT_EQ(adapter->layers.size(), static_cast<size_t>(c.num_layers));
  for (int layer = 0; layer < c.num_layers; ++layer) {
    for (int t = 0; t < kNumLoraTargets; ++t) {
      const auto target = static_cast<LoraTarget>(t);
      const LoraMatrices& m = adapter->layers[layer][t];
      const bool targeted = target == LoraTarget::kQ || target == LoraTarget::kDown;
      EXPECT_EQ(m.rank, targeted ? 4 : 0) << layer << " " << LoraTargetName(target);
      if (!targeted) continue;
      const auto [out, in] = LoraTargetShape(c, target);
      const FileMatrices file = ReadModule(
          dir, absl::StrCat("model.layers.", layer,
                            target == LoraTarget::kQ ? ".self_attn.q_proj" : ".mlp.down_proj"));
      EXPECT_EQ(m.a, file.a);
      ASSERT_EQ(m.b_t.size(), static_cast<size_t>(out * 4));
      for (int64_t o = 0; o < out; ++o) {
        for (int r = 0; r < 4; ++r) ASSERT_EQ(m.b_t[r * out + o], 2.0F * file.b[o * 4 + r]);
      }
    }
  }
}

TEST(LoraAdapterTest, RsLoraAndPerModulePatterns) {
  const ModelConfig c = HalvesConfig();
  const std::string dir = testing::MakeTempDir();
  // rank 4 everywhere but layer 1's v_proj (rank_pattern cannot change a file's shapes, so
  // the pattern names the rank the file has); alpha 32 for every o_proj.
  WritePeftAdapter(dir, c,
                   Spec(4, 16, {"v_proj", "o_proj"},
                        R"(, "use_rslora": true, "rank_pattern": {"layers.1.self_attn.v_proj": 4},
               "alpha_pattern": {"o_proj": 32})"));
  auto adapter = LoadLoraAdapter("a", dir, c);
  ASSERT_TRUE(adapter.ok()) << adapter.status();
  const FileMatrices o = ReadModule(dir, "model.layers.0.self_attn.o_proj");
  const FileMatrices v = ReadModule(dir, "model.layers.0.self_attn.v_proj");
  const auto& layer0 = adapter->layers[0];
  // rsLoRA: alpha / sqrt(r).
  EXPECT_FLOAT_EQ(layer0[static_cast<int>(LoraTarget::kO)].b_t[0], 32.0F / 2.0F * o.b[0]);
  EXPECT_FLOAT_EQ(layer0[static_cast<int>(LoraTarget::kV)].b_t[0], 16.0F / 2.0F * v.b[0]);
}

// The same adapter on a checkpoint converted to rotate adjacent pairs: B's Q and K rows
// follow the conversion's permutation (row 2i + j of a head <- HF row j * d/2 + i); the other
// projections do not move.
TEST(LoraAdapterTest, PermutesQueryAndKeyRowsForAdjacentPairRope) {
  const ModelConfig halves = HalvesConfig();
  ModelConfig pairs = halves;
  pairs.rope_layout = kernels::RopeLayout::kAdjacentPairs;
  const std::string dir = testing::MakeTempDir();
  WritePeftAdapter(dir, halves, Spec(2, 8, {}));
  auto hf = LoadLoraAdapter("a", dir, halves);
  auto converted = LoadLoraAdapter("a", dir, pairs);
  ASSERT_TRUE(hf.ok() && converted.ok());
  const int d = halves.head_dim;
  for (int t = 0; t < kNumLoraTargets; ++t) {
    const auto target = static_cast<LoraTarget>(t);
    const LoraMatrices& want = hf->layers[1][t];
    const LoraMatrices& got = converted->layers[1][t];
    EXPECT_EQ(got.a, want.a);
    const int64_t out = LoraTargetShape(halves, target).first;
    const bool permuted = target == LoraTarget::kQ || target == LoraTarget::kK;
    for (int r = 0; r < 2; ++r) {
      for (int64_t row = 0; row < out; ++row) {
        const int64_t head = row / d * d;
        const int64_t i = row % d / 2;
        const int64_t j = row % 2;
        const int64_t from = permuted ? head + j * (d / 2) + i : row;
        ASSERT_EQ(got.b_t[r * out + row], want.b_t[r * out + from])
            << LoraTargetName(target) << " row " << row;
      }
    }
  }
}

struct Refusal {
  std::string what;
  std::string extra_config;
  std::vector<testing::StTensor> tensors;  // replace the file's tensors when not empty
  absl::StatusCode code;
  std::string message;
};

std::vector<uint8_t> F32(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return EncodeTensorData(kernels::DType::kF32, std::vector<float>(n, 0.5F));
}

TEST(LoraAdapterTest, RefusesWhatItDoesNotApply) {
  const ModelConfig c = HalvesConfig();
  const std::string q = "base_model.model.model.layers.0.self_attn.q_proj";
  const int64_t dim = c.dim;
  const std::vector<Refusal> cases = {
      {"dora", R"(, "use_dora": true)", {}, absl::StatusCode::kUnimplemented, "use_dora"},
      {"bias", R"(, "bias": "all")", {}, absl::StatusCode::kUnimplemented, "bias"},
      {"fan_in_fan_out",
       R"(, "fan_in_fan_out": true)",
       {},
       absl::StatusCode::kUnimplemented,
       "fan_in_fan_out"},
      {"modules_to_save",
       R"(, "modules_to_save": ["lm_head"])",
       {},
       absl::StatusCode::kUnimplemented,
       "modules_to_save"},
      {"prefix tuning",
       R"(, "peft_type": "PREFIX_TUNING")",
       {},
       absl::StatusCode::kUnimplemented,
       "peft_type"},
      {"lm_head",
       "",
       {{"base_model.model.lm_head.lora_A.weight", "F32", {4, dim}, F32({4, dim})}},
       absl::StatusCode::kUnimplemented,
       "lm_head"},
      {"embeddings",
       "",
       {{"base_model.model.model.embed_tokens.lora_embedding_A", "F32", {4, 40}, F32({4, 40})}},
       absl::StatusCode::kUnimplemented,
       "lora_embedding"},
      {"unknown tensor",
       "",
       {{"base_model.model.model.layers.0.self_attn.rotary.weight", "F32", {2}, F32({2})}},
       absl::StatusCode::kInvalidArgument,
       "not a LoRA matrix"},
      {"A without B",
       "",
       {{q + ".lora_A.weight", "F32", {4, dim}, F32({4, dim})}},
       absl::StatusCode::kInvalidArgument,
       "without lora_B"},
      {"rank differs from r",
       "",
       {{q + ".lora_A.weight", "F32", {2, dim}, F32({2, dim})},
        {q + ".lora_B.weight", "F32", {dim, 2}, F32({dim, 2})}},
       absl::StatusCode::kInvalidArgument,
       "needs [4, 32]"},
      {"layer past the model",
       "",
       {{"base_model.model.model.layers.9.mlp.up_proj.lora_A.weight",
         "F32",
         {4, dim},
         F32({4, dim})}},
       absl::StatusCode::kInvalidArgument,
       "layer 9"},
      {"integer dtype",
       "",
       {{q + ".lora_A.weight", "I32", {4, dim}, F32({4, dim})}},
       absl::StatusCode::kInvalidArgument,
       "dtype"},
      {"rank too large",
       R"(, "rank_pattern": {"q_proj": 4096})",
       {},
       absl::StatusCode::kInvalidArgument,
       "rank 4096"},
  };
  for (const Refusal& r : cases) {
    SCOPED_TRACE(r.what);
    const std::string dir = testing::MakeTempDir();
    WritePeftAdapter(dir, c, Spec(4, 8, {}, r.extra_config));
    if (!r.tensors.empty()) {
      testing::WriteBytes(dir + "/adapter_model.safetensors", testing::SafetensorsImage(r.tensors));
    }
    auto adapter = LoadLoraAdapter("a", dir, c);
    ASSERT_FALSE(adapter.ok());
    EXPECT_EQ(adapter.status().code(), r.code) << adapter.status();
    EXPECT_THAT(adapter.status().message(), HasSubstr(r.message));
  }
}

// llama.cpp's LoRA GGUF: the same matrices as the PEFT files they were converted from, B
// already in the converted model's Q/K order (so not permuted again), scale alpha / r.
TEST(LoraAdapterTest, ReadsLlamaCppGgufAdapters) {
  ModelConfig pairs = testing::SmallConfig();
  pairs.rope_layout = kernels::RopeLayout::kAdjacentPairs;
  const std::string dir = testing::MakeTempDir();
  auto write = [&](const std::string& path, const std::string& type, const std::string& extra) {
    GgufWriter w;
    w.SetString("general.architecture", "llama");
    w.SetString("general.type", type);
    w.SetString("adapter.type", "lora");
    w.SetFloat32("adapter.lora.alpha", 8.0F);
    for (int layer = 0; layer < pairs.num_layers; ++layer) {
      for (const auto& [tensor, target] :
           {std::pair{"attn_q", LoraTarget::kQ}, std::pair{"ffn_down", LoraTarget::kDown}}) {
        const auto [out, in] = LoraTargetShape(pairs, target);
        const std::string base = absl::StrCat("blk.", layer, ".", tensor, ".weight");
        EXPECT_TRUE(w.AddTensor(base + ".lora_a", {4, in}, kernels::DType::kF32,
                                testing::TestValues(base + "a", 4 * in))
                        .ok());
        EXPECT_TRUE(w.AddTensor(base + ".lora_b", {out, 4}, kernels::DType::kF16,
                                testing::TestValues(base + "b", out * 4))
                        .ok());
      }
    }
    if (!extra.empty()) {
      EXPECT_TRUE(w.AddTensor(extra, {4, pairs.dim}, kernels::DType::kF32,
                              std::vector<float>(4 * pairs.dim, 0.5F))
                      .ok());
    }
    EXPECT_TRUE(w.WriteFile(path).ok());
  };
  const std::string path = dir + "/adapter.gguf";
  write(path, "adapter", "");
  auto adapter = LoadLoraAdapter("g", path, pairs);
  ASSERT_TRUE(adapter.ok()) << adapter.status();
  EXPECT_EQ(adapter->rank, 4);
  const auto [out, in] = LoraTargetShape(pairs, LoraTarget::kQ);
  const LoraMatrices& q = adapter->layers[1][static_cast<int>(LoraTarget::kQ)];
  EXPECT_EQ(q.a, testing::TestValues("blk.1.attn_q.weighta", 4 * in));
  const std::vector<float> b = testing::TestValues("blk.1.attn_q.weightb", out * 4);
  for (int64_t o = 0; o < out; ++o) {
    for (int r = 0; r < 4; ++r) {
      // The file holds B in f16: the value as stored, times alpha / r = 2.
      const float stored = kernels::HalfToFloat(kernels::FloatToHalf(b[o * 4 + r]));
      ASSERT_EQ(q.b_t[r * out + o], 2.0F * stored) << o << " " << r;
    }
  }
  EXPECT_EQ(adapter->layers[0][static_cast<int>(LoraTarget::kK)].rank, 0);

  const std::string model = dir + "/model.gguf";
  write(model, "model", "");
  EXPECT_EQ(LoadLoraAdapter("g", model, pairs).status().code(), absl::StatusCode::kInvalidArgument);
  const std::string head = dir + "/head.gguf";
  write(head, "adapter", "output.weight.lora_a");
  EXPECT_EQ(LoadLoraAdapter("g", head, pairs).status().code(), absl::StatusCode::kUnimplemented);
  const std::string stray = dir + "/stray.gguf";
  write(stray, "adapter", "blk.0.attn_norm.weight");
  EXPECT_EQ(LoadLoraAdapter("g", stray, pairs).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(LoadLoraAdapter("g", dir + "/missing.gguf", pairs).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(LoraAdapterTest, MissingFilesAreNotFound) {
  const ModelConfig c = HalvesConfig();
  const std::string dir = testing::MakeTempDir();
  EXPECT_EQ(LoadLoraAdapter("a", dir, c).status().code(), absl::StatusCode::kNotFound);
  testing::WriteText(dir + "/adapter_config.json", R"({"r": 4, "lora_alpha": 8})");
  EXPECT_EQ(LoadLoraAdapter("a", dir, c).status().code(), absl::StatusCode::kNotFound);
  testing::WriteText(dir + "/adapter_config.json", "not json");
  EXPECT_EQ(LoadLoraAdapter("a", dir, c).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace ringserve::model
