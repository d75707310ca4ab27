#include "worker/model/lora_adapter.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/mapped_file.h"
#include "common/status_macros.h"
#include "common/text_file.h"
#include "kernels/dtype.h"
#include "kernels/random_weights.h"
#include "nlohmann/json.hpp"
#include "worker/model/gguf_reader.h"
#include "worker/model/json_fields.h"
#include "worker/model/safetensors_loader.h"

namespace ringserve::model {
namespace {

using nlohmann::json;

constexpr std::array<std::string_view, kNumLoraTargets> kTargetNames = {
    "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};

// PEFT's name of the module a target is in a layer: "model.layers.3.self_attn.q_proj".
std::string ModuleName(int layer, LoraTarget target) {
  const bool attention = target <= LoraTarget::kO;
  return absl::StrCat("model.layers.", layer, attention ? ".self_attn." : ".mlp.",
                      std::string(LoraTargetName(target)));
}

// adapter_config.json: what applies to every module, and the per-module overrides.
struct AdapterSettings {
  int rank = 0;
  double alpha = 0;
  bool rslora = false;
  json rank_pattern = json::object();
  json alpha_pattern = json::object();
};

absl::Status Unsupported(const std::string& file, const std::string& what) {
  return absl::UnimplementedError(
      absl::StrCat(file, ": ", what, " is not supported (ringserve applies plain LoRA to the ",
                   "attention and MLP projections)"));
}

absl::StatusOr<AdapterSettings> ReadSettings(const std::string& path) {
  RS_ASSIGN_OR_RETURN(const std::string text, ReadTextFile(path, "LoRA adapter config"));
  const json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return JsonFieldError(path, "not a JSON object");
  if (const auto it = j.find("peft_type"); it != j.end() && !it->is_null()) {
    if (!it->is_string() || it->get<std::string>() != "LORA") {
      return Unsupported(path, absl::StrCat("peft_type ", it->dump()));
    }
  }
  RS_ASSIGN_OR_RETURN(const bool dora, JsonBool(j, "use_dora", path, false));
  if (dora) return Unsupported(path, "use_dora (DoRA)");
  RS_ASSIGN_OR_RETURN(const bool fan_in_fan_out, JsonBool(j, "fan_in_fan_out", path, false));
  if (fan_in_fan_out) return Unsupported(path, "fan_in_fan_out");
  if (const auto it = j.find("bias"); it != j.end() && !it->is_null()) {
    if (!it->is_string() || it->get<std::string>() != "none") {
      return Unsupported(path, absl::StrCat("bias ", it->dump()));
    }
  }
  if (const auto it = j.find("modules_to_save"); it != j.end() && !it->is_null()) {
    if (!it->is_array() || !it->empty()) {
      return Unsupported(path, absl::StrCat("modules_to_save ", it->dump()));
    }
  }
  AdapterSettings settings;
  RS_ASSIGN_OR_RETURN(settings.rank, JsonDim(j, "r", path));
  RS_ASSIGN_OR_RETURN(settings.alpha, JsonNumber(j, "lora_alpha", path, settings.rank));
  RS_ASSIGN_OR_RETURN(settings.rslora, JsonBool(j, "use_rslora", path, false));
  for (const auto& [key, pattern] : {std::pair{"rank_pattern", &settings.rank_pattern},
                                     std::pair{"alpha_pattern", &settings.alpha_pattern}}) {
    const auto it = j.find(key);
    if (it == j.end() || it->is_null()) continue;
    if (!it->is_object()) return JsonFieldError(path, absl::StrCat(key, " is not an object"));
    for (const auto& [module, value] : it->items()) {
      if (!value.is_number()) {
        return JsonFieldError(path, absl::StrCat(key, "[\"", module, "\"] is not a number"));
      }
    }
    *pattern = *it;
  }
  return settings;
}

// The rank and scale of one module: PEFT matches a pattern's key against the end of the
// module's name, at a dot ("(.*\.)?key$").
absl::StatusOr<std::pair<int, double>> ModuleRankAndScale(const AdapterSettings& s,
                                                          const std::string& module,
                                                          const std::string& path) {
  auto lookup = [&](const json& patterns, double fallback) -> absl::StatusOr<double> {
    for (const auto& [key, value] : patterns.items()) {
      try {
        if (std::regex_match(module, std::regex("(.*\\.)?(" + key + ")"))) {
          return value.get<double>();
        }
      } catch (const std::regex_error&) {
        return JsonFieldError(path,
                              absl::StrCat("pattern \"", key, "\" is not a regular expression"));
      }
    }
    return fallback;
  };
  RS_ASSIGN_OR_RETURN(const double rank, lookup(s.rank_pattern, s.rank));
  RS_ASSIGN_OR_RETURN(const double alpha, lookup(s.alpha_pattern, s.alpha));
  if (rank < 1 || rank > kMaxLoraRank || rank != std::floor(rank)) {
    return JsonFieldError(
        path, absl::StrCat(module, ": rank ", rank, " is not in [1, ", kMaxLoraRank, "]"));
  }
  const double scale = s.rslora ? alpha / std::sqrt(rank) : alpha / rank;
  return std::pair{static_cast<int>(rank), scale};
}

// Where a tensor of the file goes: layer, target, and whether it is A (else B).
struct TensorRole {
  int layer = -1;
  LoraTarget target = LoraTarget::kQ;
  bool is_a = false;
};

absl::StatusOr<TensorRole> RoleOf(const std::string& name, const std::string& file) {
  static const std::regex kPattern(
      R"(^(?:base_model\.model\.)?(?:model\.)?layers\.(\d+)\.(?:self_attn|mlp)\.)"
      R"((q|k|v|o|gate|up|down)_proj\.lora_(A|B)\.weight$)");
  std::smatch m;
  if (std::regex_match(name, m, kPattern)) {
    TensorRole role;
    role.layer = std::stoi(m[1].str());
    const std::string proj = m[2].str() + "_proj";
    role.target = static_cast<LoraTarget>(
        std::find(kTargetNames.begin(), kTargetNames.end(), proj) - kTargetNames.begin());
    role.is_a = m[3].str() == "A";
    return role;
  }
  for (const char* part : {"lora_embedding", "embed_tokens", "lm_head"}) {
    if (name.find(part) != std::string::npos) {
      return Unsupported(file, absl::StrCat("an adapted ", part, " (", name, ")"));
    }
  }
  if (name.find("lora_magnitude_vector") != std::string::npos) {
    return Unsupported(file, absl::StrCat("DoRA (", name, ")"));
  }
  if (name.ends_with(".bias")) return Unsupported(file, absl::StrCat("a LoRA bias (", name, ")"));
  return absl::InvalidArgumentError(
      absl::StrCat(file, ": tensor ", name, " is not a LoRA matrix of a Llama projection"));
}

// Hugging Face rotates (x[i], x[i + d/2]) of each head; a checkpoint converted to rotate
// adjacent pairs had its Q and K rows reordered so that row 2i + j holds HF row j * d/2 + i.
void PermuteHeadsToAdjacentPairs(std::vector<float>* b_t, int rank, int64_t out, int head_dim) {
  std::vector<float> row(out);
  const int64_t half = head_dim / 2;
  for (int r = 0; r < rank; ++r) {
    float* values = b_t->data() + static_cast<int64_t>(r) * out;
    for (int64_t h = 0; h < out; h += head_dim) {
      for (int64_t i = 0; i < half; ++i) {
        for (int64_t j = 0; j < 2; ++j) row[h + 2 * i + j] = values[h + j * half + i];
      }
    }
    std::copy(row.begin(), row.end(), values);
  }
}

// `m` from A [rank, in] and B [out, rank] as a file stores them: B times `scale`, kept
// transposed, and with `permute_heads` its rows reordered as PermuteHeadsToAdjacentPairs does.
void FillMatrices(LoraMatrices* m, int rank, int64_t out, int64_t in, kernels::DType a_dtype,
                  const void* a_data, kernels::DType b_dtype, const void* b_data, double scale,
                  bool permute_heads, int head_dim) {
  m->rank = rank;
  m->a.resize(static_cast<size_t>(rank) * in);
  kernels::ConvertToFloat(a_dtype, a_data, m->a.size(), m->a.data());
  std::vector<float> b_values(static_cast<size_t>(out) * rank);
  kernels::ConvertToFloat(b_dtype, b_data, b_values.size(), b_values.data());
  m->b_t.resize(static_cast<size_t>(rank) * out);
  for (int64_t o = 0; o < out; ++o) {
    for (int r = 0; r < rank; ++r) {
      m->b_t[r * out + o] = static_cast<float>(scale * b_values[o * rank + r]);
    }
  }
  if (permute_heads) PermuteHeadsToAdjacentPairs(&m->b_t, rank, out, head_dim);
}

// llama.cpp's LoRA GGUF (convert_lora_to_gguf.py): general.type "adapter", adapter.type
// "lora", adapter.lora.alpha, and blk.N.<tensor>.weight.lora_a [r, in] / .lora_b [out, r]
// beside the base model's names, B's Q/K rows already in the converted model's order.
absl::StatusOr<LoraAdapter> LoadGgufLoraAdapter(const std::string& name, const std::string& path,
                                                const ModelConfig& config) {
  RS_ASSIGN_OR_RETURN(std::unique_ptr<GgufFile> file, GgufFile::Open(path));
  const absl::StatusOr<std::string> type = file->GetString("general.type");
  if (!type.ok() || *type != "adapter") {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not an adapter GGUF (general.type ",
                                                   type.ok() ? *type : "missing", ")"));
  }
  const absl::StatusOr<std::string> kind = file->GetString("adapter.type");
  if (!kind.ok() || *kind != "lora") {
    return Unsupported(path, absl::StrCat("adapter.type ", kind.ok() ? *kind : "missing"));
  }
  const absl::StatusOr<double> alpha = file->GetFloat("adapter.lora.alpha");
  if (!alpha.ok() && alpha.status().code() != absl::StatusCode::kNotFound) return alpha.status();
  static constexpr std::array<std::string_view, kNumLoraTargets> kTensors = {
      "attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};
  static const std::regex kPattern(R"(^blk\.(\d+)\.(\w+)\.weight\.lora_(a|b)$)");
  std::vector<std::array<std::pair<const GgufTensorInfo*, const GgufTensorInfo*>, kNumLoraTargets>>
      found(config.num_layers);
  for (const GgufTensorInfo& t : file->tensors()) {
    std::smatch m;
    const auto* const at = std::regex_match(t.name, m, kPattern)
                               ? std::find(kTensors.begin(), kTensors.end(), m[2].str())
                               : kTensors.end();
    if (at == kTensors.end()) {
      if (t.name.find(".lora_") != std::string::npos &&
          (t.name.starts_with("token_embd") || t.name.starts_with("output"))) {
        return Unsupported(path,
                           absl::StrCat("an adapted embedding or output head (", t.name, ")"));
      }
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": tensor ", t.name, " is not a LoRA matrix of a Llama projection"));
    }
    const int layer = std::stoi(m[1].str());
    if (layer >= config.num_layers) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": tensor ", t.name, " is in layer ",
                                                     layer, " of a model of ", config.num_layers));
    }
    if (!t.supported || t.packing != Packing::kAsStored) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": tensor ", t.name, " has type ",
                                                     GgmlTypeName(t.ggml_type),
                                                     " (F32, F16, BF16 or Q8_0)"));
    }
    auto& [a, b] = found[layer][static_cast<size_t>(at - kTensors.begin())];
    (m[3].str() == "a" ? a : b) = &t;
  }
  LoraAdapter adapter;
  adapter.name = name;
  adapter.path = path;
  adapter.layers.resize(config.num_layers);
  for (int layer = 0; layer < config.num_layers; ++layer) {
    for (int i = 0; i < kNumLoraTargets; ++i) {
      const auto [a, b] = found[layer][i];
      if (a == nullptr && b == nullptr) continue;
      const std::string tensor =
          absl::StrCat("blk.", layer, ".", std::string(kTensors[i]), ".weight");
      if (a == nullptr || b == nullptr) {
        return absl::InvalidArgumentError(absl::StrCat(path, ": ", tensor, " has lora_",
                                                       a == nullptr ? "b" : "a", " without lora_",
                                                       a == nullptr ? "a" : "b"));
      }
      const auto [out, in] = LoraTargetShape(config, static_cast<LoraTarget>(i));
      const int64_t rank = a->shape.empty() ? 0 : a->shape[0];
      if (rank < 1 || rank > kMaxLoraRank || a->shape != std::vector<int64_t>{rank, in} ||
          b->shape != std::vector<int64_t>{out, rank}) {
        return absl::InvalidArgumentError(absl::StrCat(
            path, ": ", tensor, " has lora_a [", absl::StrJoin(a->shape, ", "), "] and lora_b [",
            absl::StrJoin(b->shape, ", "), "]; this model needs [r, ", in, "] and [", out,
            ", r] with r in [1, ", kMaxLoraRank, "]"));
      }
      // llama.cpp's scale: alpha / r, or 1 without an alpha.
      const double scale = alpha.ok() && *alpha != 0 ? *alpha / static_cast<double>(rank) : 1.0;
      const uint8_t* data = file->bytes().data();
      FillMatrices(&adapter.layers[layer][i], static_cast<int>(rank), out, in, a->dtype,
                   data + a->offset, b->dtype, data + b->offset, scale, false, config.head_dim);
      adapter.rank = std::max(adapter.rank, static_cast<int>(rank));
    }
  }
  if (adapter.rank == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": no LoRA matrices of the model's projections"));
  }
  return adapter;
}

}  // namespace

absl::Status CheckAdapterName(std::string_view name) {
  const bool ok =
      !name.empty() && name.size() <= kMaxAdapterNameBytes && std::ranges::all_of(name, [](char c) {
        return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' ||
               c == '-';
      });
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("adapter name '", std::string(name.substr(0, 80)),
                                                 "': 1 to ", kMaxAdapterNameBytes,
                                                 " letters, digits and ._- only"));
}

absl::StatusOr<LoraAdapter> FindLoraAdapter(const std::string& library, const std::string& name,
                                            const ModelConfig& config) {
  RS_RETURN_IF_ERROR(CheckAdapterName(name));
  if (name.front() == '.') {
    return absl::InvalidArgumentError(
        absl::StrCat("adapter name '", name, "': may not start with '.'"));
  }
  const std::filesystem::path dir = std::filesystem::path(library) / name;
  std::error_code error;
  if (std::filesystem::is_directory(dir, error)) return LoadLoraAdapter(name, dir.string(), config);
  const std::filesystem::path gguf = std::filesystem::path(library) / (name + ".gguf");
  if (std::filesystem::is_regular_file(gguf, error)) {
    return LoadLoraAdapter(name, gguf.string(), config);
  }
  return absl::NotFoundError(absl::StrCat("adapter: no '", name, "' on this worker (nor ",
                                          dir.string(), "/ or ", gguf.string(), ")"));
}

std::string_view LoraTargetName(LoraTarget target) {
  return kTargetNames[static_cast<size_t>(target)];
}

std::pair<int64_t, int64_t> LoraTargetShape(const ModelConfig& c, LoraTarget target) {
  const int64_t q = int64_t{c.num_heads} * c.head_dim;
  const int64_t kv = int64_t{c.num_kv_heads} * c.head_dim;
  switch (target) {
    case LoraTarget::kQ:
      return {q, c.dim};
    case LoraTarget::kK:
    case LoraTarget::kV:
      return {kv, c.dim};
    case LoraTarget::kO:
      return {c.dim, q};
    case LoraTarget::kGate:
    case LoraTarget::kUp:
      return {c.hidden_dim, c.dim};
    case LoraTarget::kDown:
      return {c.dim, c.hidden_dim};
  }
  return {0, 0};
}

absl::StatusOr<LoraAdapter> LoadLoraAdapter(const std::string& name, const std::string& dir,
                                            const ModelConfig& config) {
  if (dir.ends_with(".gguf")) return LoadGgufLoraAdapter(name, dir, config);
  const std::string config_path = dir + "/adapter_config.json";
  const std::string weights_path = dir + "/adapter_model.safetensors";
  RS_ASSIGN_OR_RETURN(const AdapterSettings settings, ReadSettings(config_path));
  RS_ASSIGN_OR_RETURN(std::unique_ptr<MappedFile> file, MappedFile::Open(weights_path));
  RS_ASSIGN_OR_RETURN(const std::vector<SafetensorsEntry> entries,
                      ParseSafetensors(file->bytes(), weights_path));
  LoraAdapter adapter;
  adapter.name = name;
  adapter.path = dir;
  adapter.layers.resize(config.num_layers);
  // A and B of each projection, checked against each other once both are read.
  std::vector<
      std::array<std::pair<const SafetensorsEntry*, const SafetensorsEntry*>, kNumLoraTargets>>
      found(config.num_layers);
  for (const SafetensorsEntry& entry : entries) {
    const HostTensor& t = entry.tensor;
    RS_ASSIGN_OR_RETURN(const TensorRole role, RoleOf(t.name, weights_path));
    if (role.layer >= config.num_layers) {
      return absl::InvalidArgumentError(absl::StrCat(weights_path, ": tensor ", t.name,
                                                     " is in layer ", role.layer, " of a model of ",
                                                     config.num_layers));
    }
    if (!entry.supported) {
      return absl::InvalidArgumentError(absl::StrCat(weights_path, ": tensor ", t.name,
                                                     " has dtype ", entry.dtype_name,
                                                     " (F32, F16 or BF16)"));
    }
    auto& [a, b] = found[role.layer][static_cast<size_t>(role.target)];
    (role.is_a ? a : b) = &entry;
  }
  for (int layer = 0; layer < config.num_layers; ++layer) {
    for (int i = 0; i < kNumLoraTargets; ++i) {
      const auto target = static_cast<LoraTarget>(i);
      const auto [a, b] = found[layer][i];
      const std::string module = ModuleName(layer, target);
      if (a == nullptr && b == nullptr) continue;
      if (a == nullptr || b == nullptr) {
        return absl::InvalidArgumentError(absl::StrCat(weights_path, ": ", module, " has lora_",
                                                       a == nullptr ? "B" : "A", " without lora_",
                                                       a == nullptr ? "A" : "B"));
      }
      RS_ASSIGN_OR_RETURN(const auto rank_scale, ModuleRankAndScale(settings, module, config_path));
      const auto [rank, scale] = rank_scale;
      const auto [out, in] = LoraTargetShape(config, target);
      const std::vector<int64_t> a_shape = {rank, in};
      const std::vector<int64_t> b_shape = {out, rank};
      if (a->tensor.shape != a_shape || b->tensor.shape != b_shape) {
        return absl::InvalidArgumentError(absl::StrCat(
            weights_path, ": ", module, " has lora_A [", absl::StrJoin(a->tensor.shape, ", "),
            "] and lora_B [", absl::StrJoin(b->tensor.shape, ", "), "]; rank ", rank,
            " on this model needs [", rank, ", ", in, "] and [", out, ", ", rank, "]"));
      }
      FillMatrices(&adapter.layers[layer][i], rank, out, in, a->tensor.dtype, a->tensor.data,
                   b->tensor.dtype, b->tensor.data, scale,
                   config.rope_layout == kernels::RopeLayout::kAdjacentPairs &&
                       (target == LoraTarget::kQ || target == LoraTarget::kK),
                   config.head_dim);
      adapter.rank = std::max(adapter.rank, rank);
    }
  }
  if (adapter.rank == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(weights_path, ": no LoRA matrices of the model's projections"));
  }
  return adapter;
}

LoraAdapter RandomLoraAdapter(const std::string& name, const ModelConfig& config, int rank,
                              uint64_t seed) {
  LoraAdapter adapter;
  adapter.name = name;
  adapter.path = absl::StrCat("random:", rank);
  adapter.rank = rank;
  adapter.layers.resize(config.num_layers);
  uint64_t stream = seed;
  for (auto& layer : adapter.layers) {
    for (int t = 0; t < kNumLoraTargets; ++t) {
      const auto [out, in] = LoraTargetShape(config, static_cast<LoraTarget>(t));
      LoraMatrices& m = layer[t];
      m.rank = rank;
      m.a.resize(static_cast<size_t>(rank) * in);
      m.b_t.resize(static_cast<size_t>(rank) * out);
      // A as PEFT initialises it (Kaiming-uniform); B small, as training leaves it.
      kernels::FillRandomUniform(++stream, 1.0F / std::sqrt(static_cast<float>(in)), m.a.data(),
                                 static_cast<int64_t>(m.a.size()));
      kernels::FillRandomUniform(++stream, 0.01F, m.b_t.data(), static_cast<int64_t>(m.b_t.size()));
    }
  }
  return adapter;
}

}  // namespace ringserve::model
