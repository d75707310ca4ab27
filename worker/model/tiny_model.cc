#include "worker/model/tiny_model.h"

#include <cmath>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/check.h"
#include "common/status_macros.h"
#include "worker/model/gguf_writer.h"

namespace ringserve::model {
namespace {

using tokenizer::TokenType;

constexpr char kSpace[] = "\xE2\x96\x81";  // U+2581, SentencePiece's space
constexpr uint64_t kSeed = 0x5eed'0f'7e57ULL;

// Common English words; each gets a "▁" prefix and all its prefixes become pieces so the
// score-driven merges of a SentencePiece BPE can reach the whole word.
constexpr const char* kWords[] = {
    "the",    "and",   "to",    "of",     "a",      "in",      "is",    "it",    "you",   "that",
    "he",     "was",   "for",   "on",     "are",    "with",    "as",    "his",   "they",  "be",
    "at",     "one",   "have",  "this",   "from",   "or",      "had",   "by",    "not",   "word",
    "but",    "what",  "some",  "we",     "can",    "out",     "other", "were",  "all",   "there",
    "when",   "up",    "use",   "your",   "how",    "said",    "an",    "each",  "she",   "which",
    "do",     "their", "time",  "if",     "will",   "way",     "about", "many",  "then",  "them",
    "would",  "write", "like",  "so",     "these",  "her",     "long",  "make",  "thing", "see",
    "him",    "two",   "has",   "look",   "more",   "day",     "could", "go",    "come",  "did",
    "my",     "sound", "no",    "most",   "people", "over",    "know",  "water", "than",  "call",
    "first",  "who",   "may",   "down",   "side",   "been",    "now",   "find",  "any",   "new",
    "work",   "part",  "take",  "get",    "place",  "made",    "live",  "where", "after", "back",
    "little", "only",  "round", "man",    "year",   "came",    "show",  "every", "good",  "me",
    "give",   "our",   "under", "name",   "very",   "through", "just",  "form",  "great", "think",
    "help",   "low",   "line",  "before", "turn",   "cause",   "same",  "mean",  "right", "boy",
    "old",    "too",   "does",  "tell",   "big",    "went",    "want",  "play",  "small", "end",
    "home",   "hand",  "house", "again",  "cat",    "dog",     "once",  "upon",  "happy", "friend",
    "story",  "model", "token", "hello",  "world"};

// Word endings, as pieces without "▁" (with their prefixes, for the same reason).
constexpr const char* kSuffixes[] = {"ing", "ed", "er", "ly", "tion", "est", "ness", "ful", "es"};

// splitmix64 + Box-Muller: portable (std::normal_distribution differs between libraries).
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  double Uniform() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return static_cast<double>((z ^ (z >> 31)) >> 11) * 0x1.0p-53;
  }
  float Normal(float stddev) {
    const double u1 = 1.0 - Uniform();
    const double u2 = Uniform();
    return static_cast<float>(stddev * std::sqrt(-2.0 * std::log(u1)) * std::cos(2 * M_PI * u2));
  }

 private:
  uint64_t state_;
};

void AddPiece(tokenizer::Vocabulary* v, absl::flat_hash_set<std::string>* seen,
              const std::string& piece) {
  if (!seen->insert(piece).second) return;
  v->tokens.push_back(piece);
  v->scores.push_back(-static_cast<float>(v->tokens.size()));  // earlier pieces merge first
  v->types.push_back(TokenType::kNormal);
}

void WriteVocabulary(const tokenizer::Vocabulary& v, GgufWriter* w) {
  w->SetString("tokenizer.ggml.model", "llama");
  w->SetStringArray("tokenizer.ggml.tokens", v.tokens);
  w->SetFloat32Array("tokenizer.ggml.scores",
                     std::vector<double>(v.scores.begin(), v.scores.end()));
  std::vector<int64_t> types;
  for (TokenType t : v.types) types.push_back(static_cast<int64_t>(t));
  w->SetInt32Array("tokenizer.ggml.token_type", std::move(types));
  w->SetUint32("tokenizer.ggml.bos_token_id", v.bos_id);
  w->SetUint32("tokenizer.ggml.eos_token_id", v.eos_id);
  w->SetUint32("tokenizer.ggml.unknown_token_id", v.unk_id);
  w->SetBool("tokenizer.ggml.add_bos_token", true);
  w->SetBool("tokenizer.ggml.add_space_prefix", true);
}

// The keys ReadRopeScaling reads back (llama.cpp's, and "llama3" as ringserve names it).
void WriteRopeScaling(const RopeScaling& s, const std::string& p, GgufWriter* w) {
  if (s.type == RopeType::kDefault) return;
  w->SetString(p + "rope.scaling.type", std::string(RopeTypeName(s.type)));
  w->SetFloat32(p + "rope.scaling.factor", s.factor);
  if (s.type == RopeType::kLinear) return;
  w->SetUint32(p + "rope.scaling.original_context_length", s.original_max_position);
  if (s.type == RopeType::kYarn) {
    w->SetFloat32(p + "rope.scaling.yarn_beta_fast", s.beta_fast);
    w->SetFloat32(p + "rope.scaling.yarn_beta_slow", s.beta_slow);
    w->SetFloat32(p + "rope.scaling.attn_factor", static_cast<float>(RopeAttentionFactor(s)));
  }
}

void WriteConfig(const ModelConfig& c, const std::string& name, GgufWriter* w) {
  // A Qwen2 is a Llama with Q/K/V biases whose rope rotates the halves of each head, a Qwen3
  // one with per-head Q/K norms instead of biases: the architecture name tells a reader.
  const std::string arch =
      c.architecture == "qwen2" || c.architecture == "qwen3" ? c.architecture : "llama";
  const std::string p = arch + ".";
  w->SetString("general.architecture", arch);
  w->SetString("general.name", name);
  w->SetUint32(p + "context_length", c.max_seq_len);
  w->SetUint32(p + "embedding_length", c.dim);
  w->SetUint32(p + "feed_forward_length", c.hidden_dim);
  w->SetUint32(p + "block_count", c.num_layers);
  w->SetUint32(p + "attention.head_count", c.num_heads);
  w->SetUint32(p + "attention.head_count_kv", c.num_kv_heads);
  w->SetUint32(p + "attention.key_length", c.head_dim);
  w->SetUint32(p + "attention.value_length", c.head_dim);
  w->SetUint32(p + "rope.dimension_count", c.head_dim);
  w->SetFloat32(p + "attention.layer_norm_rms_epsilon", c.rms_eps);
  w->SetFloat32(p + "rope.freq_base", c.rope_theta);
  WriteRopeScaling(c.rope_scaling, p, w);
  if (c.sliding_window > 0) w->SetUint32(p + "attention.sliding_window", c.sliding_window);
}

// A K-quant needs rows of whole 256-value super-blocks; for other rows llama.cpp's
// quantizer falls back to a 32-value format of about as many bits, and so does this one.
Packing FitRows(Packing packing, int64_t cols) {
  constexpr int kSuperBlock = 256;
  if (packing == Packing::kAsStored || BlockValues(packing) != kSuperBlock ||
      cols % kSuperBlock == 0) {
    return packing;  // not a K-quant, or whole super-blocks
  }
  switch (packing) {
    case Packing::kQ2_K:
    case Packing::kQ3_K:
      return Packing::kQ4_0;
    case Packing::kQ4_K:
      return Packing::kQ5_0;
    case Packing::kQ5_K:
      return Packing::kQ5_1;
    case Packing::kIQ4_XS:
      return Packing::kIQ4_NL;
    default:  // Q6_K: as Q8_0 blocks
      return Packing::kAsStored;
  }
}

// Matrices ~ N(0, 0.02^2) in `dtype`, norm gains 1 and attention biases ~ N(0, 0.1^2) in f32.
absl::Status AddWeights(const ModelConfig& c, kernels::DType dtype, MatrixPacking packing,
                        GgufWriter* w) {
  Rng rng(kSeed);
  absl::Status status;
  auto add = [&](const std::string& name, std::vector<int64_t> shape, bool norm) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    std::vector<float> values(n);
    const bool bias = absl::EndsWith(name, ".bias");
    for (float& x : values) x = norm ? 1.0F : rng.Normal(bias ? 0.1F : 0.02F);
    norm = norm || bias;  // vectors: f32, never packed
    if (!status.ok()) return;
    const bool sensitive = name == "output.weight" || absl::EndsWith(name, "attn_v.weight") ||
                           absl::EndsWith(name, "ffn_down.weight");
    const Packing p = FitRows(
        sensitive && packing.sensitive != Packing::kAsStored ? packing.sensitive : packing.packing,
        shape.back());
    status = !norm && p != Packing::kAsStored
                 ? w->AddPackedTensor(name, shape, p, values)
                 : w->AddTensor(name, shape, norm ? kernels::DType::kF32 : dtype, values);
  };
  const int64_t hd = c.head_dim;
  const int64_t q = c.num_heads * hd;
  const int64_t kv = c.num_kv_heads * hd;
  add("token_embd.weight", {c.vocab_size, c.dim}, false);
  add("output_norm.weight", {c.dim}, true);
  for (int l = 0; l < c.num_layers; ++l) {
    const std::string p = absl::StrCat("blk.", l, ".");
    add(p + "attn_norm.weight", {c.dim}, true);
    add(p + "attn_q.weight", {q, c.dim}, false);
    add(p + "attn_k.weight", {kv, c.dim}, false);
    add(p + "attn_v.weight", {kv, c.dim}, false);
    if (c.attention_bias) {
      add(p + "attn_q.bias", {q}, false);
      add(p + "attn_k.bias", {kv}, false);
      add(p + "attn_v.bias", {kv}, false);
    }
    if (c.qk_norm) {
      add(p + "attn_q_norm.weight", {hd}, true);
      add(p + "attn_k_norm.weight", {hd}, true);
    }
    add(p + "attn_output.weight", {c.dim, q}, false);
    add(p + "ffn_norm.weight", {c.dim}, true);
    add(p + "ffn_gate.weight", {c.hidden_dim, c.dim}, false);
    add(p + "ffn_up.weight", {c.hidden_dim, c.dim}, false);
    add(p + "ffn_down.weight", {c.dim, c.hidden_dim}, false);
  }
  if (!c.tied_embeddings) add("output.weight", {c.vocab_size, c.dim}, false);
  return status;
}

}  // namespace

tokenizer::Vocabulary TinyVocabulary() {
  tokenizer::Vocabulary v;
  v.model = tokenizer::TokenizerModel::kSentencePiece;
  v.tokens = {"<unk>", "<s>", "</s>"};
  v.scores = {0, 0, 0};
  v.types = {TokenType::kUnknown, TokenType::kControl, TokenType::kControl};
  v.unk_id = 0;
  v.bos_id = 1;
  v.eos_id = 2;
  for (int b = 0; b < 256; ++b) {
    v.tokens.push_back(absl::StrFormat("<0x%02X>", b));
    v.scores.push_back(0);
    v.types.push_back(TokenType::kByte);
  }
  absl::flat_hash_set<std::string> seen(v.tokens.begin(), v.tokens.end());
  AddPiece(&v, &seen, kSpace);
  for (char ch = '!'; ch <= '~'; ++ch) AddPiece(&v, &seen, std::string(1, ch));
  for (const char* word : kWords) {
    const std::string piece = absl::StrCat(kSpace, word);
    for (size_t len = sizeof(kSpace); len <= piece.size(); ++len) {
      AddPiece(&v, &seen, piece.substr(0, len));
    }
  }
  for (const std::string suffix : kSuffixes) {
    for (size_t len = 2; len <= suffix.size(); ++len) AddPiece(&v, &seen, suffix.substr(0, len));
  }
  return v;
}

ModelConfig TinyModelConfig() {
  ModelConfig c;
  c.dim = 64;
  c.hidden_dim = 172;
  c.num_layers = 4;
  c.num_heads = 8;
  c.num_kv_heads = 4;
  c.max_seq_len = 2048;
  c.vocab_size = static_cast<int>(TinyVocabulary().tokens.size());
  c.tied_embeddings = true;
  RS_CHECK(c.Validate().ok());
  return c;
}

namespace {

// Built after TinyModelConfig() so it can use it.
GgufWriter TinyModelWriter() {
  const ModelConfig c = TinyModelConfig();
  GgufWriter w;
  WriteConfig(c, "ringserve-tiny", &w);
  WriteVocabulary(TinyVocabulary(), &w);
  RS_CHECK(AddWeights(c, kernels::DType::kF32, {}, &w).ok());
  return w;
}

}  // namespace

std::vector<uint8_t> TinyModelImage() { return TinyModelWriter().Build(); }

absl::Status WriteTinyModel(const std::string& path) { return TinyModelWriter().WriteFile(path); }

absl::Status WriteRandomModel(const std::string& path, ModelConfig config, kernels::DType dtype,
                              MatrixPacking packing) {
  RS_RETURN_IF_ERROR(config.Validate());
  if (packing.packing == Packing::kAsStored && packing.sensitive != Packing::kAsStored) {
    return absl::InvalidArgumentError("random model: a mix needs a packing for most matrices");
  }
  if (packing.packing != Packing::kAsStored && dtype != kernels::DType::kQ8_0) {
    return absl::InvalidArgumentError("random model: packed matrices are read as Q8_0");
  }
  if (config.attention_bias != (config.architecture == "qwen2")) {
    return absl::InvalidArgumentError("random model: attention biases come with qwen2 only");
  }
  if (config.qk_norm != (config.architecture == "qwen3")) {
    return absl::InvalidArgumentError("random model: Q/K norms come with qwen3 only");
  }
  if (!config.sliding_layers.empty()) {
    return absl::InvalidArgumentError(
        "random model: GGUF holds a sliding window over every layer only");
  }
  if (config.rotary_dim != config.head_dim) {
    return absl::InvalidArgumentError("random model: the rope rotates whole heads");
  }
  tokenizer::Vocabulary vocab = TinyVocabulary();
  constexpr int kControlAndBytes = 3 + 256;
  if (config.vocab_size < kControlAndBytes) {
    return absl::InvalidArgumentError(absl::StrCat("random model: a vocabulary of ",
                                                   config.vocab_size, " cannot hold the ",
                                                   kControlAndBytes, " control and byte tokens"));
  }
  const auto size = static_cast<size_t>(config.vocab_size);
  if (vocab.tokens.size() > size) {  // the first pieces: each one's prefixes come before it
    vocab.tokens.resize(size);
    vocab.scores.resize(size);
    vocab.types.resize(size);
  }
  while (static_cast<int>(vocab.tokens.size()) < config.vocab_size) {
    vocab.tokens.push_back(absl::StrCat("<unused", vocab.tokens.size(), ">"));
    vocab.scores.push_back(0);
    vocab.types.push_back(TokenType::kUnused);
  }
  GgufWriter w;
  WriteConfig(config, "ringserve-random", &w);
  WriteVocabulary(vocab, &w);
  RS_RETURN_IF_ERROR(AddWeights(config, dtype, packing, &w));
  return w.WriteFile(path);
}

}  // namespace ringserve::model
