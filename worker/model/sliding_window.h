// Sliding-window attention settings from a Hugging Face config.json.
#ifndef RINGSERVE_WORKER_MODEL_SLIDING_WINDOW_H_
#define RINGSERVE_WORKER_MODEL_SLIDING_WINDOW_H_

#include <string>

#include "absl/status/status.h"
#include "nlohmann/json.hpp"
#include "worker/model/model_config.h"

namespace ringserve::model {

// Sets c->sliding_window and c->sliding_layers (c->architecture and c->num_layers must be
// set) as transformers reads them:
//  - the window: Mistral's "sliding_window" (null: none, Mistral 0.2 on); Qwen2's and
//    Qwen3's only with "use_sliding_window"; a Llama has none.
//  - its layers: "layer_types" ("sliding_attention" / "full_attention", one per layer) where
//    the file has it; else every layer for Mistral, and for Qwen2 / Qwen3 the layers from
//    "max_window_layers" on.
// INVALID_ARGUMENT naming the key for a malformed value.
absl::Status SlidingWindowFromJson(const nlohmann::json& j, const std::string& name,
                                   ModelConfig* c);

}  // namespace ringserve::model

#endif  // RINGSERVE_WORKER_MODEL_SLIDING_WINDOW_H_
