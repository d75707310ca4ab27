#include "tools/common/model_setup.h"

#include <algorithm>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "worker/model/presets.h"
#include "worker/tokenizer/llama2c_vocab.h"

namespace ringserve::tools {

void ModelFlags::Register(ArgParser& parser) {
  parser.AddString("model", &model_path, "GGUF file, llama2.c .bin, or Hugging Face directory");
  parser.AddString("tokenizer", &tokenizer_path,
                   "llama2.c tokenizer.bin (beside a model that carries one: the same tokens)");
  parser.AddString("device", &device, "cpu or cuda:N");
  parser.AddString("dtype", &dtype,
                   "CUDA activations and KV: bf16, f16 or f32 (CPU activations: f32 always; "
                   "see --kv-dtype)");
  parser.AddString("kv-dtype", &kv_dtype,
                   "KV cache: auto (the activation dtype; on the CPU f16 for a bf16, f16 or q8_0 "
                   "checkpoint, else f32), or on the CPU f32, f16, bf16 (16 bits: twice the "
                   "tokens in the same memory, and faster long-context decode), or fp8 on the "
                   "CPU and CUDA (E4M3: four times the tokens of f32, at 3 mantissa bits)");
  parser.AddString("attention", &attention,
                   "CUDA attention: simt (f32 FMA) or tensor-core (mma.sync, f16/bf16 only; "
                   "other bits than simt, batch invariant all the same)");
  parser.AddBool("dummy-weights", &dummy_weights, "random weights of --preset's shape");
  parser.AddString("preset", &preset, absl::StrJoin(model::PresetNames(), ", "));
  parser.AddInt("seed", &seed,
                "dummy-weight seed (ringserve-run: also sampling and bench prompts)");
  parser.AddInt("threads", &threads, "CPU threads (0 = one per core)", {.min = 0});
  parser.AddBool("blas", &use_blas, "CPU: OpenBLAS for large products (not batch invariant)");
  parser.AddInt("max-batch-tokens", &max_batch_tokens, "tokens per forward pass (2048)",
                {.min = 1});
  parser.AddBool("cuda-graphs", &cuda_graphs,
                 "CUDA: replay decode steps as captured graphs (=false: launch op by op)");
  parser.AddInt("matmul-algo-rows", &matmul_algo_rows,
                "CUDA: the row count cuBLASLt picks each product's one algorithm for (0, the "
                "default: 128); fewer favours decode, more prefill",
                {.min = 0, .max = 1 << 16});
  parser.AddString("rope-scaling", &rope_scaling,
                   "JSON replacing the model's rope scaling, as config.json's rope_scaling "
                   "writes it: e.g. {\"rope_type\":\"yarn\",\"factor\":4,"
                   "\"original_max_position_embeddings\":32768} (the context becomes factor "
                   "times the original), {\"rope_type\":\"linear\",\"factor\":2}, or "
                   "{\"rope_type\":\"default\"} for none");
  parser.AddInt("context-length", &context_length,
                "the longest context (prompt and output) a sequence may reach (0: the model's, "
                "rope scaling included); longer than the model's is allowed, with a warning",
                {.min = 0, .max = 1 << 30});
  parser.AddRepeated("lora", &lora,
                     "NAME=DIR: a LoRA adapter in PEFT's format (adapter_config.json and "
                     "adapter_model.safetensors) served beside the model; requests name it "
                     "(GenerateRequest.adapter); a path ending in .gguf is llama.cpp's LoRA GGUF. "
                     "Repeat for more. NAME=random:R: random values of rank R on every "
                     "projection (benchmarks)");
  parser.AddInt("max-loras", &max_loras,
                "LoRA slots in device memory, every projection keeping room for "
                "--max-lora-rank: --lora adapters beyond them wait in host memory and take an "
                "idle slot when a request needs one, and the worker loads and unloads adapters "
                "while serving (Admin.LoadAdapter). 0: a fixed set, every --lora adapter in a "
                "slot of its own",
                {.min = 0, .max = 1024});
  parser.AddInt("max-lora-rank", &max_lora_rank,
                "with --max-loras: the largest rank a loaded adapter may have (0: 16, or the "
                "largest --lora rank)",
                {.min = 0, .max = model::kMaxLoraRank});
  parser.AddInt("max-cpu-loras", &max_cpu_loras,
                "with --max-loras: the most adapters held at once, in slots and in host memory "
                "(0: --max-loras, or the number of --lora adapters if more)",
                {.min = 0, .max = 1 << 16});
}

namespace {

// --lora's NAME=DIR values, each adapter read for `config`. A name is what requests send:
// letters, digits and ._- only, unique.
absl::StatusOr<std::vector<std::shared_ptr<const model::LoraAdapter>>> LoadLoraFlags(
    const std::vector<std::string>& values, const model::ModelConfig& config) {
  std::vector<std::shared_ptr<const model::LoraAdapter>> adapters;
  for (const std::string& value : values) {
    const size_t eq = value.find('=');
    const std::string name = value.substr(0, eq);
    if (eq == std::string::npos || eq + 1 >= value.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--lora: expected NAME=DIR or NAME=random:R, got '", value, "'"));
    }
    if (absl::Status bad = model::CheckAdapterName(name); !bad.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--lora: ", bad.message()));
    }
    for (const auto& earlier : adapters) {
      if (earlier->name == name) {
        return absl::InvalidArgumentError(
            absl::StrCat("--lora: the name '", name, "' is given twice"));
      }
    }
    const std::string source = value.substr(eq + 1);
    if (source.starts_with("random:")) {
      int rank = 0;
      if (!absl::SimpleAtoi(source.substr(7), &rank) || rank < 1 || rank > model::kMaxLoraRank) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--lora ", name, "=random:R: R must be a rank in [1, ", model::kMaxLoraRank, "]"));
      }
      adapters.push_back(std::make_shared<const model::LoraAdapter>(
          model::RandomLoraAdapter(name, config, rank, adapters.size() + 1)));
      continue;
    }
    RS_ASSIGN_OR_RETURN(model::LoraAdapter adapter, model::LoadLoraAdapter(name, source, config));
    adapters.push_back(std::make_shared<const model::LoraAdapter>(std::move(adapter)));
  }
  return adapters;
}

// Whether a checkpoint stores any matrix in fewer than 32 bits (bf16, f16, Q8_0).
bool HasNarrowMatrices(const model::Checkpoint* checkpoint) {
  if (checkpoint == nullptr) return false;  // random weights: f32 on an f32 backend
  return std::ranges::any_of(checkpoint->tensors(), [](const model::HostTensor& t) {
    return t.shape.size() == 2 && t.dtype != kernels::DType::kF32;
  });
}

// --kv-dtype's value. "auto" is the activation dtype, except on a backend that computes in
// f32 (the CPU) serving a checkpoint of 16-bit or 8-bit matrices: there f16, which holds
// twice the tokens for logits within about 1e-3 of an f32 cache's (what users of such
// checkpoints on CPUs expect; an f32 checkpoint keeps the exact f32 path).
absl::StatusOr<kernels::DType> KvDtypeFlag(const ModelFlags& flags, const kernels::Backend& backend,
                                           const model::Checkpoint* checkpoint) {
  kernels::DType dtype = backend.activation_dtype();
  if (flags.kv_dtype == "auto") {
    if (dtype == kernels::DType::kF32 && backend.SupportsKvDtype(kernels::DType::kF16) &&
        HasNarrowMatrices(checkpoint)) {
      dtype = kernels::DType::kF16;
    }
  } else if (const std::optional<kernels::DType> named = kernels::KvDTypeNamed(flags.kv_dtype)) {
    dtype = *named;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "--kv-dtype: expected auto, f32, f16, bf16 or fp8, got '", flags.kv_dtype, "'"));
  }
  if (!backend.SupportsKvDtype(dtype)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--kv-dtype: the ", std::string(backend.name()), " backend keeps the KV cache in ",
        std::string(kernels::DTypeName(backend.activation_dtype())),
        " (its activation dtype) only, not ", std::string(kernels::DTypeName(dtype))));
  }
  return dtype;
}

// --rope-scaling and --context-length, on a checkpoint's or a preset's config; then the
// config's Validate (which also fills its derived fields).
absl::Status ApplyContextFlags(const ModelFlags& flags, model::ModelConfig* config) {
  if (!flags.rope_scaling.empty()) {
    RS_ASSIGN_OR_RETURN(
        config->rope_scaling,
        model::RopeScalingFromJsonText(flags.rope_scaling, config->max_seq_len, "--rope-scaling"));
    // A file's rope_freqs.weight is its Llama 3 scaling, which the flag replaces.
    config->rope_freq_divisors.clear();
    config->max_seq_len = model::ScaledContextLength(config->rope_scaling, config->max_seq_len);
  }
  if (flags.context_length > 0) {
    if (flags.context_length > config->max_seq_len) {
      Log(LogLevel::kWarning, "model",
          "--context-length is longer than the model's context: positions past it are ones "
          "the model was not trained on (rope scaling such as yarn extends the context)",
          {{"context_length", absl::StrCat(flags.context_length)},
           {"model_context", absl::StrCat(config->max_seq_len)}});
    }
    config->max_seq_len = flags.context_length;
  }
  absl::Status valid = config->Validate();
  if (!valid.ok() && !flags.rope_scaling.empty()) {
    return absl::Status(valid.code(), absl::StrCat("--rope-scaling: ", valid.message()));
  }
  return valid;
}

absl::Status CheckSameTokens(const tokenizer::Vocabulary& own, const tokenizer::Vocabulary& named,
                             const ModelFlags& flags) {
  const size_t n = std::min(own.tokens.size(), named.tokens.size());
  size_t first = 0;
  while (first < n && own.tokens[first] == named.tokens[first]) ++first;
  if (first == n && own.tokens.size() == named.tokens.size()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "--tokenizer: ", flags.tokenizer_path, " is not the tokenizer ", flags.model_path,
      " carries (", named.tokens.size(), " tokens against ", own.tokens.size(),
      first < n ? absl::StrCat(", token ", first, " differs") : std::string(),
      "); leave --tokenizer out to use the model's own"));
}

}  // namespace

absl::StatusOr<LoadedModel> OpenModel(const ModelFlags& flags) {
  LoadedModel loaded;
  kernels::BackendOptions backend_options;
  backend_options.num_threads = flags.threads;
  backend_options.cpu_use_blas = flags.use_blas;
  const std::optional<kernels::DType> activation = kernels::FloatDTypeNamed(flags.dtype);
  if (!activation.has_value()) {
    return absl::InvalidArgumentError("--dtype: expected bf16, f16 or f32, got '" + flags.dtype +
                                      "'");
  }
  backend_options.cuda_activation_dtype = *activation;
  RS_ASSIGN_OR_RETURN(backend_options.cuda_attention_kernel,
                      ParseAttentionKernel(flags.attention, "attention"));
  RS_ASSIGN_OR_RETURN(loaded.backend, flags.make_backend
                                          ? flags.make_backend(flags.device, backend_options)
                                          : kernels::CreateBackend(flags.device, backend_options));
  // A backend without the kernel asked for refuses it here, at start, not silently later.
  if (const absl::Status kernel =
          loaded.backend->SetAttentionKernel(backend_options.cuda_attention_kernel);
      !kernel.ok()) {
    return absl::Status(kernel.code(), absl::StrCat("--attention: ", kernel.message()));
  }
  if (flags.matmul_algo_rows > 0) {
    if (const absl::Status rows = loaded.backend->SetMatMulAlgoRows(flags.matmul_algo_rows);
        !rows.ok()) {
      return absl::Status(rows.code(), absl::StrCat("--matmul-algo-rows: ", rows.message()));
    }
  }
  std::optional<tokenizer::Vocabulary> vocab;
  if (flags.dummy_weights) {
    if (flags.preset.empty()) return absl::InvalidArgumentError("--dummy-weights needs --preset");
    RS_ASSIGN_OR_RETURN(loaded.config, model::PresetConfig(flags.preset));
    RS_RETURN_IF_ERROR(ApplyContextFlags(flags, &loaded.config));  // validates the config
  } else {
    if (flags.model_path.empty()) {
      return absl::InvalidArgumentError(
          "--model PATH (or --dummy-weights --preset NAME) is required");
    }
    RS_ASSIGN_OR_RETURN(loaded.checkpoint,
                        model::OpenCheckpoint(flags.model_path, flags.tokenizer_path));
    RS_RETURN_IF_ERROR(ApplyContextFlags(flags, &loaded.checkpoint->config));
    loaded.config = loaded.checkpoint->config;
    vocab = loaded.checkpoint->vocabulary;
  }
  if (!flags.tokenizer_path.empty() &&
      (loaded.checkpoint == nullptr || loaded.checkpoint->format != "llama2c")) {
    // (The llama2.c loader has read and checked it already.)
    RS_ASSIGN_OR_RETURN(tokenizer::Vocabulary named,
                        tokenizer::ReadLlama2cTokenizer(flags.tokenizer_path));
    if (vocab.has_value()) {
      // The model's own tokenizer is the one used; a different file would be ignored.
      RS_RETURN_IF_ERROR(CheckSameTokens(*vocab, named, flags));
    } else {
      // Ids past the embedding rows would be refused on every request that has text.
      if (named.tokens.size() > static_cast<size_t>(loaded.config.vocab_size)) {
        return absl::InvalidArgumentError(
            absl::StrCat(flags.tokenizer_path, ": tokenizer has ", named.tokens.size(),
                         " tokens but the model has a vocabulary of ", loaded.config.vocab_size));
      }
      vocab = std::move(named);
    }
  }
  RS_ASSIGN_OR_RETURN(loaded.kv_dtype,
                      KvDtypeFlag(flags, *loaded.backend, loaded.checkpoint.get()));
  if (flags.max_cpu_loras > 0 &&
      (flags.max_loras == 0 ||
       flags.max_cpu_loras < std::max<int>(flags.max_loras, static_cast<int>(flags.lora.size())))) {
    return absl::InvalidArgumentError(
        absl::StrCat("--max-cpu-loras ", flags.max_cpu_loras,
                     ": needs --max-loras, and must hold its slots and every --lora adapter"));
  }
  RS_ASSIGN_OR_RETURN(loaded.lora_adapters, LoadLoraFlags(flags.lora, loaded.config));
  if (vocab.has_value()) {
    RS_ASSIGN_OR_RETURN(loaded.tokenizer, tokenizer::Tokenizer::Create(*std::move(vocab)));
  }
  return loaded;
}

absl::StatusOr<int32_t> AdapterIndex(const LoadedModel& loaded, const std::string& name) {
  if (name.empty()) return -1;
  const auto& adapters = loaded.lora_adapters;
  const auto it = std::find_if(adapters.begin(), adapters.end(),
                               [&](const auto& a) { return a->name == name; });
  if (it == adapters.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--adapter: no --lora adapter is named '", name, "'"));
  }
  return static_cast<int32_t>(it - adapters.begin());
}

size_t LoraAdaptersInSlots(const LoadedModel& loaded, const ModelFlags& flags) {
  return flags.max_loras > 0
             ? std::min(loaded.lora_adapters.size(), static_cast<size_t>(flags.max_loras))
             : loaded.lora_adapters.size();
}

std::vector<std::shared_ptr<const model::LoraAdapter>> LoraAdaptersInHostMemory(
    const LoadedModel& loaded, const ModelFlags& flags) {
  return {loaded.lora_adapters.begin() + static_cast<ptrdiff_t>(LoraAdaptersInSlots(loaded, flags)),
          loaded.lora_adapters.end()};
}

absl::StatusOr<std::unique_ptr<model::LlamaModel>> CreateModel(const LoadedModel& loaded,
                                                               const ModelFlags& flags,
                                                               model::ModelOptions options) {
  options.max_batch_tokens = flags.max_batch_tokens;
  options.decode_graphs = flags.cuda_graphs;
  options.kv_dtype = loaded.kv_dtype;
  const size_t in_slots = LoraAdaptersInSlots(loaded, flags);
  options.lora_adapters.assign(loaded.lora_adapters.begin(),
                               loaded.lora_adapters.begin() + static_cast<ptrdiff_t>(in_slots));
  options.max_loras = flags.max_loras;
  options.max_lora_rank = flags.max_lora_rank;
  if (options.max_loras > 0 && options.max_lora_rank == 0) {
    // Room for the adapters in host memory too, as the model keeps for those in its slots.
    options.max_lora_rank = 16;
    for (const auto& adapter : loaded.lora_adapters) {
      options.max_lora_rank = std::max(options.max_lora_rank, adapter->rank);
    }
  }
  if (loaded.checkpoint != nullptr) {
    return model::LlamaModel::Create(*loaded.checkpoint, loaded.backend.get(), options);
  }
  return model::LlamaModel::CreateWithRandomWeights(
      loaded.config, static_cast<uint64_t>(flags.seed), loaded.backend.get(), options);
}

absl::StatusOr<kernels::AttentionKernel> ParseAttentionKernel(std::string_view name,
                                                              std::string_view flag) {
  for (const kernels::AttentionKernel kernel :
       {kernels::AttentionKernel::kSimt, kernels::AttentionKernel::kTensorCore}) {
    if (name == kernels::AttentionKernelName(kernel)) return kernel;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "--", std::string(flag), ": expected simt or tensor-core, got '", std::string(name), "'"));
}

}  // namespace ringserve::tools
