// Named model shapes for --dummy-weights benchmarks and tests.
#ifndef RINGSERVE_WORKER_MODEL_PRESETS_H_
#define RINGSERVE_WORKER_MODEL_PRESETS_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/model/model_config.h"

namespace ringserve::model {

// "tiny", "llama-110m", "llama-3.2-1b", "llama-3-8b", "mistral-7b", "qwen2.5-0.5b",
// "qwen2.5-7b", "qwen3-0.6b", "qwen3-8b". NOT_FOUND lists the known names.
absl::StatusOr<ModelConfig> PresetConfig(std::string_view name);
std::vector<std::string> PresetNames();

}  // namespace ringserve::model

#endif  // RINGSERVE_WORKER_MODEL_PRESETS_H_
