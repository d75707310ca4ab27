#include "worker/model/sliding_window.h"

#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/model/json_fields.h"

namespace ringserve::model {
namespace {

using json = nlohmann::json;

// ModelConfig::architecture says "llama" for both; transformers' MistralConfig has the window.
bool IsMistral(const json& j) {
  const auto is = [](const json& v, const char* name) {
    return v.is_string() && v.get<std::string>() == name;
  };
  return (j.contains("model_type") && is(j["model_type"], "mistral")) ||
         (j.contains("architectures") && j["architectures"].is_array() &&
          !j["architectures"].empty() && is(j["architectures"][0], "MistralForCausalLM"));
}

// The window config.json names for `architecture`; 0 for none.
absl::StatusOr<int> WindowOf(const json& j, const std::string& name,
                             const std::string& architecture) {
  if (IsMistral(j)) return JsonDim(j, "sliding_window", name, 0);
  if (architecture != "qwen2" && architecture != "qwen3") return 0;
  RS_ASSIGN_OR_RETURN(const bool use, JsonBool(j, "use_sliding_window", name, false));
  if (!use) return 0;
  return JsonDim(j, "sliding_window", name);
}

// "layer_types": one "sliding_attention" or "full_attention" per layer.
absl::StatusOr<std::vector<bool>> LayerTypes(const json& types, const std::string& name,
                                             int num_layers) {
  if (!types.is_array() || types.size() != static_cast<size_t>(num_layers)) {
    return JsonFieldError(name, absl::StrCat("layer_types must list one type for each of the ",
                                             num_layers, " layers"));
  }
  std::vector<bool> sliding;
  for (const json& t : types) {
    const std::string type = t.is_string() ? t.get<std::string>() : std::string();
    if (type == "sliding_attention") {
      sliding.push_back(true);
    } else if (type == "full_attention") {
      sliding.push_back(false);
    } else {
      return JsonFieldError(
          name, absl::StrCat("layer_types: '", t.dump(),
                             "' is not supported (sliding_attention and full_attention are)"));
    }
  }
  return sliding;
}

}  // namespace

absl::Status SlidingWindowFromJson(const json& j, const std::string& name, ModelConfig* c) {
  RS_ASSIGN_OR_RETURN(const int window, WindowOf(j, name, c->architecture));
  c->sliding_window = window;
  c->sliding_layers.clear();
  if (window == 0) return absl::OkStatus();
  if (j.contains("layer_types") && !j["layer_types"].is_null()) {
    RS_ASSIGN_OR_RETURN(c->sliding_layers, LayerTypes(j["layer_types"], name, c->num_layers));
    return absl::OkStatus();
  }
  if (IsMistral(j)) return absl::OkStatus();  // every layer
  // transformers' Qwen2 and Qwen3 default.
  RS_ASSIGN_OR_RETURN(const double first, JsonNumber(j, "max_window_layers", name, 28));
  if (!(first >= 0) || first != std::floor(first) || first > 1e6) {
    return JsonFieldError(name, "max_window_layers must be a non-negative integer");
  }
  for (int layer = 0; layer < c->num_layers; ++layer) c->sliding_layers.push_back(layer >= first);
  return absl::OkStatus();
}

}  // namespace ringserve::model
