#include "worker/model/safetensors_loader.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"
#include "worker/model/json_fields.h"
#include "worker/model/rope_scaling.h"
#include "worker/model/sliding_window.h"
#include "worker/tokenizer/tokenizer_json.h"

namespace ringserve::model {
namespace {

using json = nlohmann::json;

constexpr uint64_t kMaxHeaderBytes = uint64_t{100} << 20;  // the reference reader's limit

absl::Status Error(const std::string& name, absl::string_view what) {
  return JsonFieldError(name, what);
}

// Element size of a safetensors dtype; 0 when unknown.
size_t DtypeSize(const std::string& dtype) {
  static const std::pair<const char*, size_t> kSizes[] = {
      {"F64", 8}, {"I64", 8}, {"U64", 8},  {"F32", 4},     {"I32", 4},
      {"U32", 4}, {"F16", 2}, {"BF16", 2}, {"I16", 2},     {"U16", 2},
      {"I8", 1},  {"U8", 1},  {"BOOL", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1}};
  for (const auto& [n, size] : kSizes) {
    if (dtype == n) return size;
  }
  return 0;
}

absl::StatusOr<SafetensorsEntry> ParseEntry(const std::string& name, const std::string& key,
                                            const json& v, uint64_t data_bytes,
                                            const uint8_t* data) {
  const std::string what = absl::StrCat("tensor '", key, "'");
  if (!v.is_object() || !v.contains("dtype") || !v["dtype"].is_string() || !v.contains("shape") ||
      !v["shape"].is_array() || !v.contains("data_offsets") || !v["data_offsets"].is_array() ||
      v["data_offsets"].size() != 2 || !v["data_offsets"][0].is_number_unsigned() ||
      !v["data_offsets"][1].is_number_unsigned()) {
    return Error(name, what + ": needs dtype, shape and two data_offsets");
  }
  SafetensorsEntry e;
  e.dtype_name = v["dtype"].get<std::string>();
  const size_t elem = DtypeSize(e.dtype_name);
  if (elem == 0) return Error(name, absl::StrCat(what, ": unknown dtype ", e.dtype_name));
  uint64_t count = 1;
  for (const json& d : v["shape"]) {
    if (!d.is_number_unsigned() || d.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX) ||
        __builtin_mul_overflow(count, d.get<uint64_t>(), &count)) {
      return Error(name, what + ": invalid shape");
    }
    e.tensor.shape.push_back(static_cast<int64_t>(d.get<uint64_t>()));
  }
  const auto begin = v["data_offsets"][0].get<uint64_t>();
  const auto end = v["data_offsets"][1].get<uint64_t>();
  uint64_t bytes = 0;
  if (__builtin_mul_overflow(count, uint64_t{elem}, &bytes) || begin > end || end > data_bytes ||
      end - begin != bytes) {
    return Error(name, absl::StrCat(what, ": data_offsets [", begin, ", ", end,
                                    ") do not hold its shape or lie outside the ", data_bytes,
                                    " data bytes"));
  }
  e.tensor.name = key;
  e.tensor.data = data + begin;
  e.tensor.bytes = bytes;
  e.supported = true;
  if (e.dtype_name == "F32") {
    e.tensor.dtype = kernels::DType::kF32;
  } else if (e.dtype_name == "F16") {
    e.tensor.dtype = kernels::DType::kF16;
  } else if (e.dtype_name == "BF16") {
    e.tensor.dtype = kernels::DType::kBF16;
  } else {
    e.supported = false;
  }
  return e;
}

absl::StatusOr<std::string> ReadText(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

bool Exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// Shard file names in first-use order, from the index's weight_map.
absl::StatusOr<std::vector<std::string>> ShardsFromIndex(const std::string& path) {
  RS_ASSIGN_OR_RETURN(const std::string text, ReadText(path));
  const json index = json::parse(text, nullptr, false);
  if (index.is_discarded() || !index.is_object() || !index.contains("weight_map") ||
      !index["weight_map"].is_object()) {
    return Error(path, "not a JSON object with a weight_map");
  }
  std::vector<std::string> shards;
  absl::flat_hash_set<std::string> seen;
  for (const auto& [tensor, file] : index["weight_map"].items()) {
    if (!file.is_string()) {
      return Error(path, absl::StrCat("weight_map['", tensor, "'] is not a string"));
    }
    const auto& f = file.get_ref<const std::string&>();
    if (f.empty() || absl::StrContains(f, "/") || f == "..") {
      return Error(path, absl::StrCat("shard name '", f, "' must be a plain file name"));
    }
    if (seen.insert(f).second) shards.push_back(f);
  }
  if (shards.empty()) return Error(path, "weight_map is empty");
  return shards;
}

// Adds the used tensors of one shard; copies a tensor whose data is not aligned to its
// element size (safetensors does not promise alignment).
absl::Status AddShard(const std::string& path, int num_layers, bool tied, Checkpoint* ckpt) {
  RS_ASSIGN_OR_RETURN(auto mapping, MappedFile::Open(path));
  RS_ASSIGN_OR_RETURN(auto entries, ParseSafetensors(mapping->bytes(), path));
  for (SafetensorsEntry& e : entries) {
    int layer = -1;
    const std::string canonical = CanonicalTensorName(e.tensor.name, &layer);
    RS_RETURN_IF_ERROR(CheckBiasIsServed(path, e.tensor.name));
    if (canonical.empty() || (tied && canonical == "output.weight")) continue;
    if (layer >= num_layers) {
      return Error(path, absl::StrCat("tensor '", e.tensor.name, "' is in layer ", layer,
                                      " but the config has ", num_layers, " layers"));
    }
    if (!e.supported) {
      return Error(path, absl::StrCat("tensor '", e.tensor.name, "' has unsupported dtype ",
                                      e.dtype_name, " (F32, F16, BF16 are)"));
    }
    if (ckpt->Find(canonical).ok()) {
      return Error(path, absl::StrCat("tensor '", e.tensor.name, "' appears twice"));
    }
    e.tensor.name = canonical;
    const size_t elem = kernels::DTypeBytes(e.tensor.dtype, 1);
    if (reinterpret_cast<uintptr_t>(e.tensor.data) % elem != 0) {
      void* copy = ckpt->AllocateOwned(e.tensor.bytes);
      std::memcpy(copy, e.tensor.data, e.tensor.bytes);
      e.tensor.data = copy;
    }
    ckpt->AddTensor(std::move(e.tensor));
  }
  ckpt->KeepMapped(std::move(mapping));
  return absl::OkStatus();
}

absl::Status LoadVocabulary(const std::string& dir, const std::string& config_text,
                            Checkpoint* ckpt) {
  const std::string path = dir + "/tokenizer.json";
  if (!Exists(path)) return absl::OkStatus();
  RS_ASSIGN_OR_RETURN(ckpt->vocabulary, tokenizer::ReadTokenizerJson(path));
  // config.json's special ids fill what tokenizer.json leaves unset.
  const json config = json::parse(config_text, nullptr, false);
  for (auto [key, id] : {std::pair{"bos_token_id", &ckpt->vocabulary->bos_id},
                         std::pair{"eos_token_id", &ckpt->vocabulary->eos_id}}) {
    if (*id < 0 && config.is_object() && config.contains(key) && config[key].is_number_integer()) {
      *id = config[key].get<int32_t>();
    }
  }
  // The chat template: chat_template.jinja (newer checkpoints), else tokenizer_config.json's
  // string, or list of {name, template} whose "default" entry is the one.
  if (const std::string jinja = dir + "/chat_template.jinja"; Exists(jinja)) {
    RS_ASSIGN_OR_RETURN(ckpt->vocabulary->chat_template, ReadText(jinja));
    return absl::OkStatus();
  }
  const std::string tokenizer_config = dir + "/tokenizer_config.json";
  if (!Exists(tokenizer_config)) return absl::OkStatus();
  RS_ASSIGN_OR_RETURN(const std::string text, ReadText(tokenizer_config));
  const json j = json::parse(text, nullptr, false);
  if (!j.is_object() || !j.contains("chat_template")) return absl::OkStatus();
  const json& t = j["chat_template"];
  if (t.is_string()) ckpt->vocabulary->chat_template = t.get<std::string>();
  if (t.is_array()) {
    for (const json& entry : t) {
      if (entry.is_object() && entry.value("name", "") == "default" && entry.contains("template") &&
          entry["template"].is_string()) {
        ckpt->vocabulary->chat_template = entry["template"].get<std::string>();
      }
    }
  }
  return absl::OkStatus();
}

// The object holding the rotary settings: transformers >= 5 writes all of them (rope_theta
// and rope_type included) under "rope_parameters"; earlier versions wrote "rope_theta" at
// the top and the scaling under "rope_scaling". Null when neither is there.
absl::StatusOr<const json*> RopeObject(const json& j, const std::string& name) {
  for (const char* key : {"rope_parameters", "rope_scaling"}) {
    if (!j.contains(key) || j[key].is_null()) continue;
    if (!j[key].is_object()) return Error(name, absl::StrCat("'", key, "' must be an object"));
    return &j[key];
  }
  return nullptr;
}

// The file's first "architectures" entry, else its "model_type".
std::string ArchitectureName(const json& j) {
  if (j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty() &&
      j["architectures"][0].is_string()) {
    return j["architectures"][0].get<std::string>();
  }
  if (j.contains("model_type") && j["model_type"].is_string()) {
    return j["model_type"].get<std::string>();
  }
  return "";
}

// A model without its language-model head (e5-mistral's MistralModel, embedding models saved
// from the base model): its tensor names lack "model." and there is no lm_head.
bool IsBaseModel(const std::string& arch) {
  return arch == "LlamaModel" || arch == "MistralModel" || arch == "Qwen2Model" ||
         arch == "Qwen3Model";
}

// "llama" (Llama and Mistral), "qwen2" (Llama with Q/K/V biases) or "qwen3" (Llama with
// per-head Q and K norms).
absl::StatusOr<std::string> ArchitectureOf(const json& j, const std::string& name) {
  const std::string arch = ArchitectureName(j);
  if (arch == "LlamaForCausalLM" || arch == "MistralForCausalLM" || arch == "llama" ||
      arch == "mistral" || arch == "LlamaModel" || arch == "MistralModel") {
    return std::string("llama");
  }
  if (arch == "Qwen2ForCausalLM" || arch == "qwen2" || arch == "Qwen2Model") {
    return std::string("qwen2");
  }
  if (arch == "Qwen3ForCausalLM" || arch == "qwen3" || arch == "Qwen3Model") {
    return std::string("qwen3");
  }
  return absl::UnimplementedError(
      absl::StrCat(name, ": architecture '", arch,
                   "' is not supported (LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, "
                   "Qwen3ForCausalLM are)"));
}

}  // namespace

absl::StatusOr<ModelConfig> ModelConfigFromHfJson(const std::string& text,
                                                  const std::string& name) {
  const json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Error(name, "not a JSON object");
  ModelConfig c;
  RS_ASSIGN_OR_RETURN(c.architecture, ArchitectureOf(j, name));
  // Qwen2's Q/K/V projections always carry biases; a Llama's o_proj would carry one too.
  RS_ASSIGN_OR_RETURN(const bool llama_biases, JsonBool(j, "attention_bias", name, false));
  RS_ASSIGN_OR_RETURN(const bool mlp_bias, JsonBool(j, "mlp_bias", name, false));
  if (llama_biases || mlp_bias) {
    return absl::UnimplementedError(absl::StrCat(
        name, ": ", llama_biases ? "attention_bias" : "mlp_bias", " is not supported"));
  }
  c.attention_bias = c.architecture == "qwen2";
  c.qk_norm = c.architecture == "qwen3";
  RS_ASSIGN_OR_RETURN(c.dim, JsonDim(j, "hidden_size", name));
  RS_ASSIGN_OR_RETURN(c.hidden_dim, JsonDim(j, "intermediate_size", name));
  RS_ASSIGN_OR_RETURN(c.num_layers, JsonDim(j, "num_hidden_layers", name));
  RS_ASSIGN_OR_RETURN(c.num_heads, JsonDim(j, "num_attention_heads", name));
  RS_ASSIGN_OR_RETURN(c.num_kv_heads, JsonDim(j, "num_key_value_heads", name, c.num_heads));
  RS_ASSIGN_OR_RETURN(c.head_dim, JsonDim(j, "head_dim", name, 0));
  RS_ASSIGN_OR_RETURN(c.vocab_size, JsonDim(j, "vocab_size", name));
  RS_ASSIGN_OR_RETURN(c.max_seq_len, JsonDim(j, "max_position_embeddings", name));
  RS_ASSIGN_OR_RETURN(const double eps, JsonNumber(j, "rms_norm_eps", name, 1e-6));
  RS_ASSIGN_OR_RETURN(const json* rope, RopeObject(j, name));
  RS_ASSIGN_OR_RETURN(const double top_theta, JsonNumber(j, "rope_theta", name, 10000.0));
  RS_ASSIGN_OR_RETURN(const double theta, rope != nullptr
                                              ? JsonNumber(*rope, "rope_theta", name, top_theta)
                                              : absl::StatusOr<double>(top_theta));
  c.rms_eps = static_cast<float>(eps);
  c.rope_theta = static_cast<float>(theta);
  c.rope_layout = kernels::RopeLayout::kHalves;
  if (rope != nullptr) {
    RS_ASSIGN_OR_RETURN(c.rope_scaling, RopeScalingFromJson(*rope, c.max_seq_len, name));
    c.max_seq_len = ScaledContextLength(c.rope_scaling, c.max_seq_len);
  }
  RS_RETURN_IF_ERROR(SlidingWindowFromJson(j, name, &c));
  RS_ASSIGN_OR_RETURN(c.tied_embeddings, JsonBool(j, "tie_word_embeddings", name, false));
  // A base model has no head of its own: the embedding matrix stands in for it, so that the
  // pass runs, and only its embeddings (Inference.Embed) mean anything.
  if (IsBaseModel(ArchitectureName(j))) c.tied_embeddings = true;
  if (absl::Status s = c.Validate(); !s.ok()) return Error(name, s.message());
  return c;
}

std::string CanonicalTensorName(const std::string& name_in_file, int* layer) {
  *layer = -1;
  if (name_in_file == "lm_head.weight") return "output.weight";
  // A base model's names (LlamaModel, Qwen3Model: embedding models) lack the "model." of a
  // ForCausalLM's.
  const std::string hf_name = absl::StartsWith(name_in_file, "model.")
                                  ? name_in_file.substr(std::string_view("model.").size())
                                  : name_in_file;
  if (hf_name == "embed_tokens.weight") return "token_embd.weight";
  if (hf_name == "norm.weight") return "output_norm.weight";
  constexpr absl::string_view kPrefix = "layers.";
  if (!absl::StartsWith(hf_name, kPrefix)) return "";
  const size_t dot = hf_name.find('.', kPrefix.size());
  if (dot == std::string::npos) return "";
  const absl::string_view index(hf_name.data() + kPrefix.size(), dot - kPrefix.size());
  int n = 0;
  if (index.empty() || index.size() > 6 || !absl::SimpleAtoi(index, &n) || n < 0) return "";
  static const std::pair<const char*, const char*> kMap[] = {
      {"self_attn.q_proj.weight", "attn_q"},
      {"self_attn.k_proj.weight", "attn_k"},
      {"self_attn.v_proj.weight", "attn_v"},
      {"self_attn.o_proj.weight", "attn_output"},
      {"mlp.gate_proj.weight", "ffn_gate"},
      {"mlp.up_proj.weight", "ffn_up"},
      {"mlp.down_proj.weight", "ffn_down"},
      {"input_layernorm.weight", "attn_norm"},
      {"post_attention_layernorm.weight", "ffn_norm"},
      {"self_attn.q_norm.weight", "attn_q_norm"},
      {"self_attn.k_norm.weight", "attn_k_norm"}};
  static const std::pair<const char*, const char*> kBiases[] = {
      {"self_attn.q_proj.bias", "attn_q"},
      {"self_attn.k_proj.bias", "attn_k"},
      {"self_attn.v_proj.bias", "attn_v"}};
  const absl::string_view rest(hf_name.data() + dot + 1, hf_name.size() - dot - 1);
  for (const auto& [hf, canonical] : kMap) {
    if (rest == hf) {
      *layer = n;
      return absl::StrCat("blk.", n, ".", canonical, ".weight");
    }
  }
  for (const auto& [hf, canonical] : kBiases) {
    if (rest == hf) {
      *layer = n;
      return absl::StrCat("blk.", n, ".", canonical, ".bias");
    }
  }
  return "";
}

absl::StatusOr<std::vector<SafetensorsEntry>> ParseSafetensors(std::span<const uint8_t> bytes,
                                                               const std::string& name) {
  if (bytes.size() < 8) return Error(name, "truncated safetensors header");
  uint64_t header_bytes = 0;
  std::memcpy(&header_bytes, bytes.data(), 8);
  if (header_bytes > bytes.size() - 8 || header_bytes > kMaxHeaderBytes) {
    return Error(name, absl::StrCat("header length ", header_bytes, " exceeds the file (",
                                    bytes.size(), " bytes)"));
  }
  const auto* text = reinterpret_cast<const char*>(bytes.data() + 8);
  const json header = json::parse(text, text + header_bytes, nullptr, false);
  if (header.is_discarded() || !header.is_object()) {
    return Error(name, "safetensors header is not a JSON object");
  }
  const uint8_t* data = bytes.data() + 8 + header_bytes;
  const uint64_t data_bytes = bytes.size() - 8 - header_bytes;
  std::vector<SafetensorsEntry> entries;
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") continue;
    RS_ASSIGN_OR_RETURN(SafetensorsEntry e, ParseEntry(name, key, value, data_bytes, data));
    entries.push_back(std::move(e));
  }
  return entries;
}

absl::StatusOr<std::unique_ptr<Checkpoint>> LoadSafetensorsCheckpoint(const std::string& dir) {
  const std::string config_path = dir + "/config.json";
  RS_ASSIGN_OR_RETURN(const std::string config_text, ReadText(config_path));
  auto ckpt = std::make_unique<Checkpoint>();
  ckpt->source_path = dir;
  ckpt->format = "safetensors";
  RS_ASSIGN_OR_RETURN(ckpt->config, ModelConfigFromHfJson(config_text, config_path));
  std::vector<std::string> shards;
  if (Exists(dir + "/model.safetensors")) {
    shards.push_back("model.safetensors");
  } else if (Exists(dir + "/model.safetensors.index.json")) {
    RS_ASSIGN_OR_RETURN(shards, ShardsFromIndex(dir + "/model.safetensors.index.json"));
  } else {
    return absl::NotFoundError(
        absl::StrCat(dir, ": no model.safetensors or model.safetensors.index.json"));
  }
  const ModelConfig& c = ckpt->config;
  for (const std::string& shard : shards) {
    RS_RETURN_IF_ERROR(
        AddShard(absl::StrCat(dir, "/", shard), c.num_layers, c.tied_embeddings, ckpt.get()));
  }
  if (!c.tied_embeddings && !ckpt->Find("output.weight").ok()) {
    return Error(dir, "missing tensor 'lm_head.weight' (tie_word_embeddings is false)");
  }
  RS_RETURN_IF_ERROR(ckpt->ValidateTensors());
  RS_RETURN_IF_ERROR(LoadVocabulary(dir, config_text, ckpt.get()));
  return ckpt;
}

}  // namespace ringserve::model
