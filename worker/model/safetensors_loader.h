// Hugging Face checkpoints: a directory with config.json (LlamaForCausalLM /
// MistralForCausalLM) and model.safetensors or model.safetensors.index.json + shards.
// Format: huggingface/safetensors README (u64 header length, JSON header, raw data).
// HF names map to canonical ones; Q/K are used as stored (rope_layout = kHalves).
#ifndef RINGSERVE_WORKER_MODEL_SAFETENSORS_LOADER_H_
#define RINGSERVE_WORKER_MODEL_SAFETENSORS_LOADER_H_

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/model/checkpoint.h"

namespace ringserve::model {

absl::StatusOr<std::unique_ptr<Checkpoint>> LoadSafetensorsCheckpoint(const std::string& dir);

// One entry of a safetensors header. `tensor.name` is the file's (HF) name; `tensor.dtype`
// is meaningful only when `supported` (F32, F16, BF16).
struct SafetensorsEntry {
  HostTensor tensor;
  std::string dtype_name;
  bool supported = false;
};

// Parses and bounds-checks a safetensors image; data pointers point into `bytes`.
absl::StatusOr<std::vector<SafetensorsEntry>> ParseSafetensors(std::span<const uint8_t> bytes,
                                                               const std::string& name);

// config.json -> ModelConfig (Validate()d); `name` is used in errors.
absl::StatusOr<ModelConfig> ModelConfigFromHfJson(const std::string& text, const std::string& name);

// The canonical name of a Hugging Face Llama tensor, a ForCausalLM's ("model.layers.0...")
// or a base model's ("layers.0..."); "" for tensors the model does not use (e.g.
// rotary_emb.inv_freq). `layer` is set to the block index or -1.
std::string CanonicalTensorName(const std::string& name_in_file, int* layer);

}  // namespace ringserve::model

#endif  // RINGSERVE_WORKER_MODEL_SAFETENSORS_LOADER_H_
