// Shared by ringserve-run and ringserve-worker: open a checkpoint (or a preset with random
// weights), the backend, the tokenizer, and size the model's buffers for the work at hand.
#ifndef RINGSERVE_TOOLS_COMMON_MODEL_SETUP_H_
#define RINGSERVE_TOOLS_COMMON_MODEL_SETUP_H_

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/backend.h"
#include "tools/common/arg_parser.h"
#include "worker/model/checkpoint.h"
#include "worker/model/llama_model.h"
#include "worker/model/lora_adapter.h"
#include "worker/tokenizer/tokenizer.h"

namespace ringserve::tools {

// Makes the backend --device names; kernels::CreateBackend unless a tool supplies its own.
using BackendFactory = std::function<absl::StatusOr<std::unique_ptr<kernels::Backend>>(
    std::string_view device, const kernels::BackendOptions& options)>;

struct ModelFlags {
  std::string model_path;
  std::string tokenizer_path;
  std::string device = "cpu";
  std::string dtype = "bf16";      // CUDA activation dtype: bf16, f16 or f32
  std::string kv_dtype = "auto";   // KV cache: auto, f32, f16 or bf16 (see --help)
  std::string attention = "simt";  // CUDA attention kernel: simt or tensor-core
  bool dummy_weights = false;
  std::string preset;
  int64_t seed = 0;
  int threads = 0;
  bool use_blas = false;
  int max_batch_tokens = 2048;
  bool cuda_graphs = true;        // ModelOptions::decode_graphs
  int matmul_algo_rows = 0;       // Backend::SetMatMulAlgoRows; 0 keeps the backend's choice
  std::string rope_scaling;       // JSON replacing the model's rope scaling; empty keeps it
  int context_length = 0;         // the longest context served; 0: the model's
  std::vector<std::string> lora;  // NAME=DIR: LoRA adapters served beside the model
  int max_loras = 0;              // ModelOptions::max_loras: LoRA slots in device memory
  int max_lora_rank = 0;          // ModelOptions::max_lora_rank
  int max_cpu_loras = 0;          // GeneratorOptions::max_adapters
  // Not a flag: the CUDA emulation's logits tool sets it (tests/unit/kernels/cuda_emu).
  BackendFactory make_backend;

  void Register(ArgParser& parser);
};

struct LoadedModel {
  std::unique_ptr<kernels::Backend> backend;
  std::unique_ptr<model::Checkpoint> checkpoint;    // null with dummy weights
  std::unique_ptr<tokenizer::Tokenizer> tokenizer;  // null when none is available
  model::ModelConfig config;
  kernels::DType kv_dtype = kernels::DType::kF32;  // --kv-dtype, resolved and accepted
  // --lora's adapters in the order given: a request names adapter i by its name.
  std::vector<std::shared_ptr<const model::LoraAdapter>> lora_adapters;
};

// Opens the backend, the checkpoint (or preset config) and the tokenizer; the model itself
// is created by CreateModel once the KV pool size is known.
absl::StatusOr<LoadedModel> OpenModel(const ModelFlags& flags);

// The slot of the --lora adapter called `name` (--adapter's value), -1 for ""; INVALID_ARGUMENT
// naming --adapter when no adapter has that name.
absl::StatusOr<int32_t> AdapterIndex(const LoadedModel& loaded, const std::string& name);

// How many of --lora's adapters the model's slots hold at creation (CreateModel): with
// --max-loras the first that many, else all of them.
size_t LoraAdaptersInSlots(const LoadedModel& loaded, const ModelFlags& flags);
// The rest, which the generator keeps in host memory and writes into a slot when a request
// needs one (GeneratorOptions::lora_adapters).
std::vector<std::shared_ptr<const model::LoraAdapter>> LoraAdaptersInHostMemory(
    const LoadedModel& loaded, const ModelFlags& flags);

absl::StatusOr<std::unique_ptr<model::LlamaModel>> CreateModel(const LoadedModel& loaded,
                                                               const ModelFlags& flags,
                                                               model::ModelOptions options);

// The attention kernel a flag's value names ("simt" or "tensor-core"); INVALID_ARGUMENT naming
// --`flag` for anything else. Backend::SetAttentionKernel switches to it between runs.
absl::StatusOr<kernels::AttentionKernel> ParseAttentionKernel(std::string_view name,
                                                              std::string_view flag);

}  // namespace ringserve::tools

#endif  // RINGSERVE_TOOLS_COMMON_MODEL_SETUP_H_
