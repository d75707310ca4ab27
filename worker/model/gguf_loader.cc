#include "worker/model/gguf_loader.h"

#include <climits>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/model/gguf_vocab.h"

namespace ringserve::model {
namespace {

// An integer hyper-parameter that must fit an int and be positive; `fallback` when absent
// (nullopt = required).
absl::StatusOr<int> GetDim(const GgufFile& file, const std::string& key,
                           std::optional<int> fallback = std::nullopt) {
  if (file.Find(key) == nullptr && fallback.has_value()) return *fallback;
  RS_ASSIGN_OR_RETURN(const int64_t v, file.GetInt(key));
  if (v <= 0 || v > INT_MAX) {
    return absl::InvalidArgumentError(
        absl::StrCat(file.name(), ": ", key, " = ", v, " is out of range"));
  }
  return static_cast<int>(v);
}

absl::StatusOr<double> GetFloatOr(const GgufFile& file, const std::string& key, double fallback) {
  if (file.Find(key) == nullptr) return fallback;
  return file.GetFloat(key);
}

const GgufTensorInfo* FindTensor(const GgufFile& file, const std::string& name) {
  for (const auto& t : file.tensors()) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

// The rope scaling a file names, as llama.cpp reads it: rope.scaling.type (none, linear,
// yarn; llama3 as ringserve writes it), its factor (or the older rope.scale_linear), and
// linear when a factor comes without a type. Llama 3 files from llama.cpp usually carry
// rope_freqs.weight instead (read in CheckpointFromGguf). A yarn attn_factor is the whole
// attention factor, as the config.json it was converted from says.
absl::Status ReadRopeScaling(const GgufFile& file, const std::string& arch, ModelConfig* c) {
  const std::string p = arch + ".rope.";
  std::string type = "linear";
  if (file.Find(p + "scaling.type") != nullptr) {
    // Read in place: GCC's -O2 -fsanitize=thread build misreads a moved-out string as maybe
    // uninitialized.
    const absl::StatusOr<std::string> named = file.GetString(p + "scaling.type");
    if (!named.ok()) return named.status();
    type = *named;
  }
  RopeScaling& s = c->rope_scaling;
  const double default_factor = type == "llama3" ? s.factor : 1.0;
  RS_ASSIGN_OR_RETURN(const double linear, GetFloatOr(file, p + "scale_linear", default_factor));
  RS_ASSIGN_OR_RETURN(const double factor, GetFloatOr(file, p + "scaling.factor", linear));
  if (type == "none" || (type == "linear" && (factor == 1.0 || factor == 0.0))) {
    return absl::OkStatus();  // (llama.cpp reads a factor of 0 as none)
  }
  s.factor = static_cast<float>(factor);
  if (type == "linear") {
    s.type = RopeType::kLinear;
    return absl::OkStatus();
  }
  if (type != "llama3" && type != "yarn") {
    return absl::UnimplementedError(
        absl::StrCat(file.name(), ": ", p, "scaling.type '", type,
                     "' is not supported (linear, llama3 and yarn are)"));
  }
  s.type = type == "yarn" ? RopeType::kYarn : RopeType::kLlama3;
  RS_ASSIGN_OR_RETURN(s.original_max_position,
                      GetDim(file, p + "scaling.original_context_length",
                             s.type == RopeType::kYarn ? c->max_seq_len : s.original_max_position));
  if (s.type == RopeType::kYarn) {
    RS_ASSIGN_OR_RETURN(const double fast, GetFloatOr(file, p + "scaling.yarn_beta_fast", 0));
    RS_ASSIGN_OR_RETURN(const double slow, GetFloatOr(file, p + "scaling.yarn_beta_slow", 0));
    RS_ASSIGN_OR_RETURN(const double attention, GetFloatOr(file, p + "scaling.attn_factor", 0));
    if (fast != 0) s.beta_fast = static_cast<float>(fast);
    if (slow != 0) s.beta_slow = static_cast<float>(slow);
    s.attention_factor = static_cast<float>(attention);
    c->max_seq_len = ScaledContextLength(s, c->max_seq_len);
  }
  return absl::OkStatus();
}

absl::StatusOr<int> VocabSize(const GgufFile& file, const std::string& arch) {
  if (const GgufTensorInfo* t = FindTensor(file, "token_embd.weight"); t != nullptr) {
    if (t->shape.size() != 2 || t->shape[0] > INT_MAX) {
      return absl::InvalidArgumentError(
          absl::StrCat(file.name(), ": tensor 'token_embd.weight' is not a [vocab, dim] matrix"));
    }
    return static_cast<int>(t->shape[0]);
  }
  if (file.Find(arch + ".vocab_size") != nullptr) return GetDim(file, arch + ".vocab_size");
  RS_ASSIGN_OR_RETURN(const auto tokens, file.GetStringArray("tokenizer.ggml.tokens"));
  return static_cast<int>(tokens.size());
}

// rope_freqs.weight: one F32 divisor per rotated frequency (llama.cpp's Llama 3 form).
absl::Status ReadRopeFreqs(const GgufFile& file, ModelConfig* c) {
  const GgufTensorInfo* t = FindTensor(file, "rope_freqs.weight");
  if (t == nullptr) return absl::OkStatus();
  if (t->ggml_type != kGgmlTypeF32 || t->shape.size() != 1 || t->shape[0] != c->rotary_dim / 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        file.name(), ": tensor 'rope_freqs.weight' must be F32 [", c->rotary_dim / 2, "]"));
  }
  c->rope_freq_divisors.resize(t->shape[0]);
  std::memcpy(c->rope_freq_divisors.data(), file.bytes().data() + t->offset, t->bytes);
  // The divisors already encode Llama 3's scaling.
  if (c->rope_scaling.type == RopeType::kLlama3) c->rope_scaling.type = RopeType::kDefault;
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ModelConfig> ModelConfigFromGguf(const GgufFile& file) {
  RS_ASSIGN_OR_RETURN(const std::string arch, file.GetString("general.architecture"));
  if (arch != "llama" && arch != "mistral" && arch != "qwen2" && arch != "qwen3") {
    return absl::UnimplementedError(
        absl::StrCat(file.name(), ": architecture '", arch,
                     "' is not supported (llama, mistral, qwen2, qwen3 are)"));
  }
  const std::string p = arch + ".";
  ModelConfig c;
  c.architecture = arch;
  RS_ASSIGN_OR_RETURN(c.dim, GetDim(file, p + "embedding_length"));
  RS_ASSIGN_OR_RETURN(c.hidden_dim, GetDim(file, p + "feed_forward_length"));
  RS_ASSIGN_OR_RETURN(c.num_layers, GetDim(file, p + "block_count"));
  RS_ASSIGN_OR_RETURN(c.num_heads, GetDim(file, p + "attention.head_count"));
  RS_ASSIGN_OR_RETURN(c.num_kv_heads, GetDim(file, p + "attention.head_count_kv", c.num_heads));
  RS_ASSIGN_OR_RETURN(c.head_dim, GetDim(file, p + "attention.key_length", 0));
  RS_ASSIGN_OR_RETURN(c.rotary_dim, GetDim(file, p + "rope.dimension_count", 0));
  RS_ASSIGN_OR_RETURN(c.max_seq_len, GetDim(file, p + "context_length"));
  RS_ASSIGN_OR_RETURN(const double eps,
                      GetFloatOr(file, p + "attention.layer_norm_rms_epsilon", 1e-5));
  RS_ASSIGN_OR_RETURN(const double theta, GetFloatOr(file, p + "rope.freq_base", 10000.0));
  c.rms_eps = static_cast<float>(eps);
  c.rope_theta = static_cast<float>(theta);
  // llama.cpp permutes a Llama's Q and K rows so that rotated pairs sit side by side; a
  // Qwen2's or Qwen3's keep Hugging Face's order, which rotates the halves of each head (NeoX).
  c.rope_layout = arch == "qwen2" || arch == "qwen3" ? kernels::RopeLayout::kHalves
                                                     : kernels::RopeLayout::kAdjacentPairs;
  c.attention_bias = FindTensor(file, "blk.0.attn_q.bias") != nullptr;
  c.qk_norm = FindTensor(file, "blk.0.attn_q_norm.weight") != nullptr;
  RS_RETURN_IF_ERROR(ReadRopeScaling(file, arch, &c));
  // llama.cpp's key for a window over every layer (converted Llama-family files seldom have it).
  RS_ASSIGN_OR_RETURN(c.sliding_window, GetDim(file, p + "attention.sliding_window", 0));
  RS_ASSIGN_OR_RETURN(c.vocab_size, VocabSize(file, arch));
  c.tied_embeddings = FindTensor(file, "output.weight") == nullptr;
  if (absl::Status s = c.Validate(); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(file.name(), ": ", s.message()));
  }
  RS_RETURN_IF_ERROR(ReadRopeFreqs(file, &c));
  return c;
}

absl::StatusOr<std::unique_ptr<Checkpoint>> CheckpointFromGguf(GgufFile& file) {
  auto ckpt = std::make_unique<Checkpoint>();
  ckpt->source_path = file.name();
  ckpt->format = "gguf";
  RS_ASSIGN_OR_RETURN(ckpt->config, ModelConfigFromGguf(file));
  for (const GgufTensorInfo& info : file.tensors()) {
    RS_RETURN_IF_ERROR(CheckBiasIsServed(file.name(), info.name));
    if (!info.supported) {
      return absl::InvalidArgumentError(
          absl::StrCat(file.name(), ": tensor '", info.name, "' has unsupported type ",
                       GgmlTypeName(info.ggml_type), " (", info.ggml_type,
                       "); ringserve reads F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, "
                       "Q2_K to Q6_K, IQ4_NL and IQ4_XS"));
    }
    ckpt->AddTensor({info.name, info.dtype, info.shape, file.bytes().data() + info.offset,
                     static_cast<size_t>(info.bytes), info.packing});
  }
  if (file.Find("tokenizer.ggml.model") != nullptr) {
    RS_ASSIGN_OR_RETURN(ckpt->vocabulary, VocabularyFromGguf(file));
    if (ckpt->vocabulary->tokens.size() > static_cast<size_t>(ckpt->config.vocab_size)) {
      return absl::InvalidArgumentError(
          absl::StrCat(file.name(), ": the tokenizer has ", ckpt->vocabulary->tokens.size(),
                       " tokens but token_embd.weight only ", ckpt->config.vocab_size, " rows"));
    }
  }
  RS_RETURN_IF_ERROR(ckpt->ValidateTensors());
  if (auto mapping = file.ReleaseMapping(); mapping != nullptr) {
    ckpt->KeepMapped(std::move(mapping));
  }
  return ckpt;
}

absl::StatusOr<std::unique_ptr<Checkpoint>> LoadGgufCheckpoint(const std::string& path) {
  RS_ASSIGN_OR_RETURN(auto file, GgufFile::Open(path));
  return CheckpointFromGguf(*file);
}

}  // namespace ringserve::model
