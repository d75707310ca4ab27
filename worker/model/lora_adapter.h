// LoRA adapters in PEFT's format: a directory with adapter_config.json and
// adapter_model.safetensors, as `PeftModel.save_pretrained` writes it (and as vLLM's
// --lora-modules and TGI's LORA_ADAPTERS read it); or llama.cpp's LoRA GGUF. An adapter changes
// some of a layer's projections W [out, in] to W + scale * B A, A [r, in], B [out, r]; LlamaModel
// adds the low-rank term for the rows of the requests that name the adapter (Backend::AddLora).
#ifndef RINGSERVE_WORKER_MODEL_LORA_ADAPTER_H_
#define RINGSERVE_WORKER_MODEL_LORA_ADAPTER_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/model/model_config.h"

namespace ringserve::model {

// The projections an adapter may change, in a layer's order.
enum class LoraTarget : uint8_t { kQ, kK, kV, kO, kGate, kUp, kDown };
inline constexpr int kNumLoraTargets = 7;

// PEFT's module name of a target: "q_proj", ..., "down_proj".
std::string_view LoraTargetName(LoraTarget target);
// {out, in} of a target's projection in a model of `config`.
std::pair<int64_t, int64_t> LoraTargetShape(const ModelConfig& config, LoraTarget target);

// One projection's adapter: rank 0 where the adapter leaves it alone.
struct LoraMatrices {
  int rank = 0;
  std::vector<float> a;    // [rank, in]
  std::vector<float> b_t;  // [rank, out]: B transposed, times the scale (alpha / r)
};

struct LoraAdapter {
  std::string name;
  std::string path;
  int rank = 0;  // the largest of its matrices' ranks
  // [layer][target]
  std::vector<std::array<LoraMatrices, kNumLoraTargets>> layers;
};

// The longest adapter name (--lora's NAME, GenerateRequest.adapter).
inline constexpr size_t kMaxAdapterNameBytes = 64;
// OK when `name` may name an adapter in requests: 1 to kMaxAdapterNameBytes letters, digits,
// '.', '_' or '-'; else INVALID_ARGUMENT saying so.
absl::Status CheckAdapterName(std::string_view name);

// The most a rank may be (vLLM's largest --max-lora-rank).
inline constexpr int kMaxLoraRank = 512;

// Reads the adapter in `dir` for a model of `config`, calling it `name`; a path ending in
// .gguf is llama.cpp's LoRA GGUF instead (convert_lora_to_gguf.py: adapter.lora.alpha,
// blk.N.*.weight.lora_a/lora_b, already in the converted model's Q/K order). Its matrices are in
// Hugging Face's layout; for a checkpoint whose rope rotates adjacent pairs (GGUF "llama",
// llama2.c: Q and K rows permuted when it was converted) B's Q and K rows are permuted
// the same way. The scale is alpha / r (alpha / sqrt(r) with use_rslora), per module where
// rank_pattern or alpha_pattern say so. NOT_FOUND without the files; INVALID_ARGUMENT for a
// malformed file or shapes that do not fit the model; UNIMPLEMENTED, naming the field, for
// what ringserve does not apply (DoRA, biases, fan_in_fan_out, modules_to_save, adapted
// embeddings or output head).
absl::StatusOr<LoraAdapter> LoadLoraAdapter(const std::string& name, const std::string& dir,
                                            const ModelConfig& config);

// The adapter called `name` in the directory `library` (--lora-dir): library/NAME, a PEFT
// directory, else library/NAME.gguf; read as LoadLoraAdapter reads it. INVALID_ARGUMENT for
// a name CheckAdapterName refuses or one starting with '.', NOT_FOUND when neither exists.
absl::StatusOr<LoraAdapter> FindLoraAdapter(const std::string& library, const std::string& name,
                                            const ModelConfig& config);

// An adapter of rank `rank` on every projection, with deterministic random values of a
// trained adapter's scale: benchmarks of LoRA serving at a model's real shape (--lora
// NAME=random:R) without an adapter file.
LoraAdapter RandomLoraAdapter(const std::string& name, const ModelConfig& config, int rank,
                              uint64_t seed);

}  // namespace ringserve::model

#endif  // RINGSERVE_WORKER_MODEL_LORA_ADAPTER_H_
