// `ringserve-run bench`: the flags and the command. For each parallelism P, P sequences
// prefill --prompt-tokens then decode --gen-tokens together through the generator
// (bench_generator.cc); --decode-batch / --prefill-tokens first time the model's own steps
// with the bytes and FLOPs they move (bench_steps.cc); --parallel none leaves the generator
// runs out. One JSON object (--json) or a text table.
#include <algorithm>
#include <chrono>
#include <iostream>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "kernels/cpu/cpu_isa.h"
#include "kvcache/sizing.h"
#include "tools/ringserve-run/bench.h"
#include "tools/ringserve-run/commands.h"
#include "worker/engine/llama_runner.h"
#include "worker/engine/sampler.h"

namespace ringserve::tools {
namespace {

// A comma-separated list of positive ints; "none" (or empty when allowed) is no entries.
absl::StatusOr<std::vector<int>> ParseCounts(const std::string& list, const char* flag,
                                             bool allow_empty) {
  std::vector<int> out;
  if (list == "none") return out;
  for (absl::string_view part : absl::StrSplit(list, ',', absl::SkipEmpty())) {
    int p = 0;
    if (!absl::SimpleAtoi(part, &p) || p <= 0) {
      return absl::InvalidArgumentError(absl::StrCat("--", flag, ": bad entry '", part, "'"));
    }
    out.push_back(p);
  }
  if (out.empty() && !allow_empty) {
    return absl::InvalidArgumentError(absl::StrCat("--", flag, " is empty (say none)"));
  }
  return out;
}

void RegisterFlags(ArgParser& parser, BenchFlags& flags) {
  flags.model.Register(parser);
  parser.AddString("parallel", &flags.parallel,
                   "comma-separated parallelisms of generator runs, or none");
  parser.AddInt("prompt-tokens", &flags.prompt_tokens, "prompt tokens per sequence");
  parser.AddInt("gen-tokens", &flags.gen_tokens, "generated tokens per sequence");
  parser.AddBool("embed", &flags.embed,
                 "generator runs embed each prompt (Inference.Embed's work) instead of "
                 "generating; reports embeddings/s");
  parser.AddInt("adapters", &flags.adapters,
                "generator runs and decode steps spread their sequences over the first K --lora "
                "adapters (sequence i uses adapter i mod K); 0: none",
                {.min = 0});
  parser.AddBool("json", &flags.json, "print one JSON object");
  parser.AddBool("roofline", &flags.roofline, "measure the CPU's limits (default true)");
  parser.AddInt("shared-prefix", &flags.shared_prefix,
                "leading prompt tokens all sequences of a run share (prefix cache)");
  parser.AddString("decode-batch", &flags.decode_batch,
                   "step bench: time decode steps at these batch sizes (comma-separated)");
  parser.AddInt("context", &flags.steps.context_tokens,
                "step bench: KV tokens of every decoding sequence (default 1024)");
  parser.AddInt("decode-steps", &flags.steps.timed_steps, "step bench: timed decode steps");
  parser.AddInt("warmup-steps", &flags.steps.warmup_steps, "step bench: untimed decode steps");
  parser.AddBool("compare-eager", &flags.steps.compare_eager,
                 "step bench: time decode steps that replay graphs again op by op (A/B)");
  parser.AddInt("prefill-tokens", &flags.prefill_tokens,
                "step bench: time the prefill of this many tokens (0 = none)");
  parser.AddInt("prefill-reps", &flags.steps.prefill_reps, "step bench: timed prefills");
  parser.AddString("step-attention", &flags.step_attention,
                   "step bench: run it once per attention kernel listed (simt,tensor-core; CUDA) "
                   "into steps_by_attention, the first also into steps; --attention applies "
                   "to the generator runs");
  parser.AddString("product-algo-rows", &flags.product_algo_rows,
                   "step bench: time each weight product again with MatMul's algorithm chosen "
                   "for each of these row counts (CUDA's cuBLASLt; e.g. 16,32,64,128,256)");
  parser.AddFloat("temperature", &flags.temperature,
                  "sampling of every request and decode step (0 = greedy)");
  parser.AddInt("top-k", &flags.top_k, "top-k of every request and decode step (0 = off)");
  parser.AddFloat("top-p", &flags.top_p, "top-p of every request and decode step");
  parser.AddInt("logprobs", &flags.logprobs,
                "logprobs (and this many alternatives) for every request and decode step");
  flags.speculation.Register(parser);
  parser.AddFloat("kv-fraction", &flags.kv_fraction,
                  "size the KV pool as this share of the memory free after the weights, as the "
                  "worker does (0 = just what the runs need)");
}

// Options for every run the flags ask for. With --kv-fraction the pool is sized after the
// weight upload from the memory then free, as the worker sizes it; *kv_free_bytes gets that
// free memory.
model::ModelOptions BenchModelOptions(const BenchFlags& flags, const std::vector<int>& parallel,
                                      const kernels::Backend& backend, size_t* kv_free_bytes) {
  model::ModelOptions options;
  const int max_parallel =
      parallel.empty() ? 0 : *std::max_element(parallel.begin(), parallel.end());
  int max_batch = 1;
  for (int b : flags.steps.decode_batches) max_batch = std::max(max_batch, b);
  options.max_seqs = std::max({1, max_parallel, max_batch});
  options.max_sampled_rows = engine::SampledRowsFor(GeneratorOptionsFor(flags), options.max_seqs,
                                                    flags.model.max_batch_tokens);
  if (flags.kv_fraction > 0) {
    options.size_kv_pool = [&backend, kv_free_bytes,
                            fraction = flags.kv_fraction](size_t bytes_per_block) {
      *kv_free_bytes = backend.FreeMemoryBytes();
      return engine::KvBlocksForMemory({.fraction_of_free = fraction}, backend, bytes_per_block);
    };
    return options;
  }
  // Room for the largest generator run, plus its prompts again for the cache to keep, or
  // for the step bench, whichever is more.
  const int64_t run_blocks =
      int64_t{max_parallel} *
      (kvcache::NumBlocksForTokens(flags.prompt_tokens + flags.gen_tokens, options.block_size) +
       kvcache::NumBlocksForTokens(flags.prompt_tokens, options.block_size));
  options.num_kv_blocks =
      static_cast<int>(std::max(run_blocks, StepBenchKvBlocks(flags.steps, options.block_size)));
  return options;
}

nlohmann::json ConfigReport(const model::ModelConfig& c) {
  return {{"dim", c.dim},
          {"hidden_dim", c.hidden_dim},
          {"num_layers", c.num_layers},
          {"num_heads", c.num_heads},
          {"num_kv_heads", c.num_kv_heads},
          {"head_dim", c.head_dim},
          {"vocab_size", c.vocab_size},
          {"tied_embeddings", c.tied_embeddings}};
}

nlohmann::json KvPoolReport(model::LlamaModel& model, size_t free_bytes) {
  const model::KvStorage& kv = model.kv_storage();
  const double bytes =
      static_cast<double>(kv.num_blocks()) *
      model::KvStorage::BytesPerBlock(model.config(), kv.block_size(), kv.Layer(0).dtype);
  nlohmann::json j = {{"blocks", kv.num_blocks()},
                      {"block_size", kv.block_size()},
                      {"bytes", bytes},
                      {"dtype", std::string(kernels::DTypeName(kv.Layer(0).dtype))}};
  if (free_bytes > 0) {
    j["free_after_weights_bytes"] = free_bytes;
    j["fraction_of_free"] = bytes / static_cast<double>(free_bytes);
  }
  return j;
}

}  // namespace

absl::Status RunBench(int argc, char** argv) {
  BenchFlags flags;
  ArgParser parser;
  RegisterFlags(parser, flags);
  RS_RETURN_IF_ERROR(parser.Parse(argc, argv));
  RS_ASSIGN_OR_RETURN(const std::vector<int> parallel,
                      ParseCounts(flags.parallel, "parallel", /*allow_empty=*/false));
  RS_ASSIGN_OR_RETURN(flags.steps.decode_batches,
                      ParseCounts(flags.decode_batch, "decode-batch", /*allow_empty=*/true));
  RS_ASSIGN_OR_RETURN(
      flags.product_algo_rows_list,
      ParseCounts(flags.product_algo_rows, "product-algo-rows", /*allow_empty=*/true));
  flags.steps.prefill_tokens = flags.prefill_tokens;
  flags.steps.seed = static_cast<uint64_t>(flags.model.seed);
  if (flags.prompt_tokens < 1 || flags.gen_tokens < 1) {
    return absl::InvalidArgumentError("--prompt-tokens and --gen-tokens must be >= 1");
  }
  // As ringserve-bench does: a longer prefix was cut to the prompt while the report kept it.
  if (flags.shared_prefix < 0 || flags.shared_prefix > flags.prompt_tokens) {
    return absl::InvalidArgumentError("--shared-prefix must be in [0, --prompt-tokens]");
  }
  if (flags.kv_fraction < 0 || flags.kv_fraction > 1) {
    return absl::InvalidArgumentError("--kv-fraction must be in [0, 1]");
  }
  RS_RETURN_IF_ERROR(flags.speculation.Validate());
  RS_RETURN_IF_ERROR(
      engine::ValidateSamplingParams({.temperature = static_cast<float>(flags.temperature),
                                      .top_k = flags.top_k,
                                      .top_p = static_cast<float>(flags.top_p),
                                      .num_logprobs = flags.logprobs}));
  flags.steps.sampling = {.temperature = static_cast<float>(flags.temperature),
                          .top_k = flags.top_k,
                          .top_p = static_cast<float>(flags.top_p)};
  flags.steps.logprobs = flags.logprobs > 0;
  flags.steps.adapters = flags.adapters;
  const bool step_bench = !flags.steps.decode_batches.empty() || flags.prefill_tokens > 0;
  if (parallel.empty() && !step_bench) {
    return absl::InvalidArgumentError(
        "--parallel none needs --decode-batch or --prefill-tokens: nothing to run");
  }
  const auto load_start = std::chrono::steady_clock::now();
  RS_ASSIGN_OR_RETURN(LoadedModel loaded, OpenModel(flags.model));
  if (flags.adapters > static_cast<int>(loaded.lora_adapters.size())) {
    return absl::InvalidArgumentError(absl::StrCat("--adapters ", flags.adapters, ": only ",
                                                   loaded.lora_adapters.size(),
                                                   " --lora adapters are loaded"));
  }
  if (step_bench && flags.adapters > static_cast<int>(LoraAdaptersInSlots(loaded, flags.model))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--adapters ", flags.adapters, ": the step bench runs on the model's slots, and only ",
        LoraAdaptersInSlots(loaded, flags.model), " adapters are in one (--max-loras)"));
  }
  for (const auto& adapter : loaded.lora_adapters) flags.adapter_names.push_back(adapter->name);
  flags.host_adapters = LoraAdaptersInHostMemory(loaded, flags.model);
  size_t kv_free_bytes = 0;
  RS_ASSIGN_OR_RETURN(
      auto model, CreateModel(loaded, flags.model,
                              BenchModelOptions(flags, parallel, *loaded.backend, &kv_free_bytes)));
  // Weights read or made and uploaded, KV pool allocated: what a worker waits before serving.
  const double load_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - load_start).count();
  nlohmann::json report = {
      {"model", flags.model.dummy_weights ? flags.model.preset : flags.model.model_path},
      {"device", flags.model.device},
      {"backend", std::string(loaded.backend->name())},
      {"attention", flags.model.attention},
      {"matmul_algo_rows", loaded.backend->matmul_algo_rows()},
      {"prompt_tokens", flags.prompt_tokens},
      {"gen_tokens", flags.gen_tokens},
      {"shared_prefix", flags.shared_prefix},
      {"sampling",
       {{"temperature", flags.temperature},
        {"top_k", flags.top_k},
        {"top_p", flags.top_p},
        {"logprobs", flags.logprobs}}},
      {"load_s", load_s},
      {"weight_bytes", model->weight_bytes()},
      {"parameters", model->config().NumParameters()},
      {"config", ConfigReport(model->config())},
      {"kv_pool", KvPoolReport(*model, kv_free_bytes)},
      {"free_after_model_bytes", loaded.backend->FreeMemoryBytes()},
      {"runs", nlohmann::json::array()}};
  if (flags.model.device == "cpu")
    report["cpu_isa"] = kernels::cpu::IsaName(kernels::cpu::BestIsa());
  if (step_bench) RS_RETURN_IF_ERROR(RunStepBenches(*model, *loaded.backend, flags, report));
  if (!parallel.empty()) {
    RS_RETURN_IF_ERROR(RunGeneratorRuns(std::move(model), flags, parallel, report));
  }
  if (flags.json) {
    std::cout << report.dump() << "\n";
  } else {
    PrintStepBenches(report);
    PrintGeneratorRuns(report);
  }
  return absl::OkStatus();
}

}  // namespace ringserve::tools
