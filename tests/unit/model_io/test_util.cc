#include "tests/unit/model_io/test_util.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "gtest/gtest.h"

namespace ringserve::model::testing {
namespace {

template <typename T>
void Put(std::vector<uint8_t>* out, T v) {
  const size_t at = out->size();
  out->resize(at + sizeof(T));
  std::memcpy(out->data() + at, &v, sizeof(T));
}

// resize + memcpy: GCC 12 reports false array-bounds errors on vector::insert here.
void Append(std::vector<uint8_t>* out, const void* p, size_t n) {
  if (n == 0) return;
  const size_t at = out->size();
  out->resize(at + n);
  std::memcpy(out->data() + at, p, n);
}

void PutFloats(std::vector<uint8_t>* out, const std::vector<float>& v) {
  Append(out, v.data(), v.size() * sizeof(float));
}

int64_t Count(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string HfName(const std::string& canonical) {
  if (canonical == "token_embd.weight") return "model.embed_tokens.weight";
  if (canonical == "output_norm.weight") return "model.norm.weight";
  if (canonical == "output.weight") return "lm_head.weight";
  static const std::pair<const char*, const char*> kMap[] = {
      {"attn_q", "self_attn.q_proj"},
      {"attn_k", "self_attn.k_proj"},
      {"attn_v", "self_attn.v_proj"},
      {"attn_output", "self_attn.o_proj"},
      {"ffn_gate", "mlp.gate_proj"},
      {"ffn_up", "mlp.up_proj"},
      {"ffn_down", "mlp.down_proj"},
      {"attn_norm", "input_layernorm"},
      {"ffn_norm", "post_attention_layernorm"},
      {"attn_q_norm", "self_attn.q_norm"},
      {"attn_k_norm", "self_attn.k_norm"}};
  // blk.N.kind.weight or blk.N.kind.bias
  const size_t a = canonical.find('.', 4);
  const size_t b = canonical.rfind('.');
  const std::string layer = canonical.substr(4, a - 4);
  const std::string kind = canonical.substr(a + 1, b - a - 1);
  for (const auto& [k, hf] : kMap) {
    if (kind == k) return absl::StrCat("model.layers.", layer, ".", hf, canonical.substr(b));
  }
  return canonical;
}

}  // namespace

std::string MakeTempDir() {
  // mkdtemp: a new directory every time. A name from the pid could be one an earlier run
  // left behind (pids are reused), files and all.
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string dir = absl::StrCat(::testing::TempDir(), "/model_io_",
                                 info != nullptr ? info->name() : "x", "_XXXXXX");
  if (::mkdtemp(dir.data()) == nullptr) {
    ADD_FAILURE() << "mkdtemp " << dir << ": " << std::strerror(errno);
  }
  return dir;
}

void WriteBytes(const std::string& path, std::span<const uint8_t> bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

void WriteText(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::trunc);
  f << text;
}

ModelConfig SmallConfig() {
  ModelConfig c;
  c.dim = 32;
  c.hidden_dim = 64;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.vocab_size = 40;
  c.max_seq_len = 16;
  c.tied_embeddings = true;
  EXPECT_TRUE(c.Validate().ok());
  return c;
}

ShapeList CanonicalShapes(const ModelConfig& c) {
  const int64_t q = c.num_heads * c.head_dim, kv = c.num_kv_heads * c.head_dim;
  ShapeList out = {{"token_embd.weight", {c.vocab_size, c.dim}}, {"output_norm.weight", {c.dim}}};
  if (!c.tied_embeddings) out.push_back({"output.weight", {c.vocab_size, c.dim}});
  for (int l = 0; l < c.num_layers; ++l) {
    const std::string p = absl::StrCat("blk.", l, ".");
    out.push_back({p + "attn_norm.weight", {c.dim}});
    out.push_back({p + "attn_q.weight", {q, c.dim}});
    out.push_back({p + "attn_k.weight", {kv, c.dim}});
    out.push_back({p + "attn_v.weight", {kv, c.dim}});
    if (c.attention_bias) {
      out.push_back({p + "attn_q.bias", {q}});
      out.push_back({p + "attn_k.bias", {kv}});
      out.push_back({p + "attn_v.bias", {kv}});
    }
    if (c.qk_norm) {
      out.push_back({p + "attn_q_norm.weight", {c.head_dim}});
      out.push_back({p + "attn_k_norm.weight", {c.head_dim}});
    }
    out.push_back({p + "attn_output.weight", {c.dim, q}});
    out.push_back({p + "ffn_norm.weight", {c.dim}});
    out.push_back({p + "ffn_gate.weight", {c.hidden_dim, c.dim}});
    out.push_back({p + "ffn_up.weight", {c.hidden_dim, c.dim}});
    out.push_back({p + "ffn_down.weight", {c.dim, c.hidden_dim}});
  }
  return out;
}

float TestValue(const std::string& name, int64_t index) {
  uint64_t h = 1469598103934665603ULL;
  for (char ch : name) h = (h ^ static_cast<uint8_t>(ch)) * 1099511628211ULL;
  h ^= static_cast<uint64_t>(index) * 0x9E3779B97F4A7C15ULL;
  h ^= h >> 29;
  return static_cast<float>(static_cast<int64_t>(h % 2001) - 1000) / 1000.0F * 0.5F;
}

std::vector<float> TestValues(const std::string& name, int64_t count) {
  std::vector<float> v(count);
  for (int64_t i = 0; i < count; ++i) v[i] = TestValue(name, i);
  return v;
}

GgufWriter SmallGgufWriter(const ModelConfig& c, kernels::DType dtype) {
  GgufWriter w;
  w.SetString("general.architecture", "llama");
  w.SetUint32("llama.context_length", c.max_seq_len);
  w.SetUint32("llama.embedding_length", c.dim);
  w.SetUint32("llama.feed_forward_length", c.hidden_dim);
  w.SetUint32("llama.block_count", c.num_layers);
  w.SetUint32("llama.attention.head_count", c.num_heads);
  w.SetUint32("llama.attention.head_count_kv", c.num_kv_heads);
  w.SetFloat32("llama.attention.layer_norm_rms_epsilon", 1e-6F);
  w.SetFloat32("llama.rope.freq_base", 500000.0F);
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
  while (tokens.size() < static_cast<size_t>(c.vocab_size)) {
    tokens.push_back(absl::StrCat("\xE2\x96\x81t", tokens.size()));
  }
  w.SetString("tokenizer.ggml.model", "llama");
  w.SetStringArray("tokenizer.ggml.tokens", tokens);
  w.SetFloat32Array("tokenizer.ggml.scores", std::vector<double>(tokens.size(), -1.0));
  w.SetUint32("tokenizer.ggml.bos_token_id", 1);
  w.SetUint32("tokenizer.ggml.eos_token_id", 2);
  for (const auto& [name, shape] : CanonicalShapes(c)) {
    const bool vector = shape.size() == 1;  // norms stay F32, as llama.cpp writes them
    EXPECT_TRUE(w.AddTensor(name, shape, vector ? kernels::DType::kF32 : dtype,
                            TestValues(name, Count(shape)))
                    .ok());
  }
  return w;
}

std::vector<uint8_t> Llama2cImage(const ModelConfig& c, bool version1, bool rope_tables) {
  std::vector<uint8_t> out;
  const int32_t vocab = c.tied_embeddings || version1 ? c.vocab_size : -c.vocab_size;
  const int32_t header[7] = {c.dim,          c.hidden_dim, c.num_layers, c.num_heads,
                             c.num_kv_heads, vocab,        c.max_seq_len};
  if (version1) {
    Put<uint32_t>(&out, 0x616b3432);
    Put<int32_t>(&out, 1);
  }
  for (int32_t v : header) Put(&out, v);
  if (version1) {
    Put<uint8_t>(&out, c.tied_embeddings ? 1 : 0);
    out.resize(256, 0);
  }
  const ShapeList shapes = CanonicalShapes(c);
  auto kind = [&](const std::string& k) {
    for (const auto& [name, shape] : shapes) {
      if (name == k + ".weight") PutFloats(&out, TestValues(name, Count(shape)));
    }
    for (int l = 0; l < c.num_layers; ++l) {
      for (const auto& [name, shape] : shapes) {
        if (name == absl::StrCat("blk.", l, ".", k, ".weight")) {
          PutFloats(&out, TestValues(name, Count(shape)));
        }
      }
    }
  };
  const std::vector<std::string> order =
      version1 ? std::vector<std::string>{"attn_norm", "ffn_norm", "output_norm", "token_embd",
                                          "attn_q",    "attn_k",   "attn_v",      "attn_output",
                                          "ffn_gate",  "ffn_down", "ffn_up"}
               : std::vector<std::string>{"token_embd", "attn_norm",   "attn_q",     "attn_k",
                                          "attn_v",     "attn_output", "ffn_norm",   "ffn_gate",
                                          "ffn_down",   "ffn_up",      "output_norm"};
  for (const auto& k : order) kind(k);
  if (!version1 && rope_tables) {
    PutFloats(&out, std::vector<float>(c.max_seq_len * c.head_dim, 0.25F));
  }
  if (!c.tied_embeddings) kind("output");
  return out;
}

std::vector<StTensor> HfTensors(const ModelConfig& c, const std::string& dtype) {
  std::vector<StTensor> out;
  const kernels::DType d = dtype == "F16"    ? kernels::DType::kF16
                           : dtype == "BF16" ? kernels::DType::kBF16
                                             : kernels::DType::kF32;
  for (const auto& [name, shape] : CanonicalShapes(c)) {
    out.push_back(
        {HfName(name), dtype, shape, EncodeTensorData(d, TestValues(name, Count(shape)))});
  }
  return out;
}

std::string HfConfigJson(const ModelConfig& c, const std::string& extra) {
  const char* arch = c.architecture == "qwen2"   ? "Qwen2ForCausalLM"
                     : c.architecture == "qwen3" ? "Qwen3ForCausalLM"
                                                 : "LlamaForCausalLM";
  return absl::StrCat(
      R"({"architectures": [")", arch, R"("], "hidden_size": )", c.dim, R"(, "head_dim": )",
      c.head_dim, R"(, "intermediate_size": )", c.hidden_dim, R"(, "num_hidden_layers": )",
      c.num_layers, R"(, "num_attention_heads": )", c.num_heads, R"(, "num_key_value_heads": )",
      c.num_kv_heads, R"(, "vocab_size": )", c.vocab_size, R"(, "max_position_embeddings": )",
      c.max_seq_len, R"(, "rms_norm_eps": 1e-05, "rope_theta": 500000.0, "tie_word_embeddings": )",
      c.tied_embeddings ? "true" : "false", extra, "}");
}

}  // namespace ringserve::model::testing
