#include "worker/model/presets.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace ringserve::model {
namespace {

ModelConfig Make(int dim, int hidden, int layers, int heads, int kv_heads, int vocab, int max_seq,
                 float theta, bool tied) {
  ModelConfig c;
  c.dim = dim;
  c.hidden_dim = hidden;
  c.num_layers = layers;
  c.num_heads = heads;
  c.num_kv_heads = kv_heads;
  c.vocab_size = vocab;
  c.max_seq_len = max_seq;
  c.rope_theta = theta;
  c.tied_embeddings = tied;
  return c;
}

ModelConfig Llama3Scaled(ModelConfig c, float factor) {
  c.rms_eps = 1e-5F;
  c.rope_scaling.type = RopeType::kLlama3;
  c.rope_scaling.factor = factor;
  c.rope_scaling.low_freq_factor = 1.0F;
  c.rope_scaling.high_freq_factor = 4.0F;
  c.rope_scaling.original_max_position = 8192;
  return c;
}

// Qwen2: Llama with Q/K/V biases and NeoX rope.
ModelConfig Qwen2(ModelConfig c) {
  c.architecture = "qwen2";
  c.attention_bias = true;
  c.rope_layout = kernels::RopeLayout::kHalves;
  c.rms_eps = 1e-6F;
  return c;
}

// Qwen3: Llama with per-head Q/K norms (no biases), NeoX rope, and heads of 128 whatever the
// width.
ModelConfig Qwen3(ModelConfig c) {
  c.architecture = "qwen3";
  c.qk_norm = true;
  c.head_dim = 128;
  c.rotary_dim = 128;
  c.rope_layout = kernels::RopeLayout::kHalves;
  c.rms_eps = 1e-6F;
  return c;
}

}  // namespace

std::vector<std::string> PresetNames() {
  return {"tiny",         "llama-110m", "llama-3.2-1b", "llama-3-8b", "mistral-7b",
          "qwen2.5-0.5b", "qwen2.5-7b", "qwen3-0.6b",   "qwen3-8b"};
}

absl::StatusOr<ModelConfig> PresetConfig(std::string_view name) {
  // Shapes follow the published configs; max_seq_len is capped where the real model's
  // context (128k) would only size the block tables, not change per-token work.
  if (name == "tiny") return Make(64, 172, 4, 8, 4, 512, 2048, 10000.0F, true);
  if (name == "llama-110m") return Make(768, 2048, 12, 12, 12, 32000, 1024, 10000.0F, true);
  if (name == "llama-3.2-1b") {
    return Llama3Scaled(Make(2048, 8192, 16, 32, 8, 128256, 8192, 500000.0F, true), 32.0F);
  }
  if (name == "llama-3-8b") return Make(4096, 14336, 32, 32, 8, 128256, 8192, 500000.0F, false);
  if (name == "mistral-7b") {  // v0.1: a 4096-token sliding window over a 32k context
    ModelConfig c = Make(4096, 14336, 32, 32, 8, 32000, 32768, 10000.0F, false);
    c.sliding_window = 4096;
    return c;
  }
  if (name == "qwen2.5-0.5b") return Qwen2(Make(896, 4864, 24, 14, 2, 151936, 8192, 1e6F, true));
  if (name == "qwen2.5-7b") return Qwen2(Make(3584, 18944, 28, 28, 4, 152064, 8192, 1e6F, false));
  if (name == "qwen3-0.6b") return Qwen3(Make(1024, 3072, 28, 16, 8, 151936, 8192, 1e6F, true));
  if (name == "qwen3-8b") return Qwen3(Make(4096, 12288, 36, 32, 8, 151936, 8192, 1e6F, false));
  return absl::NotFoundError(absl::StrCat("unknown preset '", std::string(name),
                                          "'; known: ", absl::StrJoin(PresetNames(), ", ")));
}

}  // namespace ringserve::model
