// `ringserve-run bench`: for each parallelism P, P sequences prefill --prompt-tokens then
// decode --gen-tokens together through the generator; prints throughput per phase (like
// llama-batched-bench) and, on the CPU, the machine's own limits measured in the same run:
// the memory-bandwidth roofline for decode and OpenBLAS's sgemm rate at the prefill's GEMM
// shapes. --decode-batch / --prefill-tokens first time the model's own steps (step_bench.h)
// with the bytes and FLOPs they move; --parallel none leaves the generator runs out.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <mutex>
#include <random>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "kernels/cpu/roofline.h"
#include "kvcache/sizing.h"
#include "nlohmann/json.hpp"
#include "tools/common/model_setup.h"
#include "tools/ringserve-run/commands.h"
#include "tools/ringserve-run/step_bench.h"
#include "worker/engine/generator.h"
#include "worker/engine/llama_runner.h"

namespace ringserve::tools {
namespace {

using engine::JobRequest;

struct BenchFlags {
  ModelFlags model;
  std::string parallel = "1,2,4,8,16,32";
  int prompt_tokens = 128;
  int gen_tokens = 32;
  bool json = false;
  bool roofline = true;
  int shared_prefix = 0;
  std::string decode_batch;  // step bench: comma-separated batch sizes
  int prefill_tokens = 0;    // step bench: prefill length (0 = none)
  StepBenchOptions steps;
  std::string step_attention;  // step bench: comma-separated attention kernels to compare
  double kv_fraction = 0;      // > 0: size the KV pool as the worker does, from free memory
};

struct Limits {
  double read_bytes_per_s = 0;
  double decode_bytes_per_token = 0;  // weights + average KV read by one decode step
  double prefill_ideal_seconds = 0;   // the prompt's GEMMs at OpenBLAS's rate (P = 1)
};

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

Limits MeasureLimits(const model::LlamaModel& model, const BenchFlags& flags, int threads) {
  const model::ModelConfig& c = model.config();
  Limits limits;
  limits.read_bytes_per_s = kernels::cpu::MeasureReadBandwidth(size_t{512} << 20, threads);
  // Decode reads every layer matrix and the output head once per step; an untied input
  // embedding contributes only one row.
  const double embedding_bytes = 4.0 * c.vocab_size * c.dim;
  const double kv_token_bytes = 2.0 * 4.0 * c.num_layers * c.num_kv_heads * c.head_dim;
  const double avg_context = flags.prompt_tokens + flags.gen_tokens / 2.0;
  limits.decode_bytes_per_token = static_cast<double>(model.weight_bytes()) -
                                  (c.tied_embeddings ? 0.0 : embedding_bytes) +
                                  avg_context * kv_token_bytes;
  const int n = flags.prompt_tokens;
  const int q = c.num_heads * c.head_dim;
  const int kv = c.num_kv_heads * c.head_dim;
  const int shapes[][2] = {{q, c.dim},           {kv, c.dim},           {kv, c.dim},
                           {c.dim, q},           {c.hidden_dim, c.dim}, {c.hidden_dim, c.dim},
                           {c.dim, c.hidden_dim}};
  for (const auto& [m, k] : shapes) {
    const double flops = 2.0 * n * m * k;
    limits.prefill_ideal_seconds +=
        c.num_layers * flops / kernels::cpu::MeasureBlasSgemmFlops(n, m, k);
  }
  return limits;
}

// P prompts of random tokens; with --shared-prefix K all of them start with the same K
// tokens. Every run draws fresh tokens so no run finds another's blocks in the cache.
std::vector<JobRequest> MakeRequests(int parallel, const BenchFlags& flags, int vocab,
                                     uint64_t run) {
  std::mt19937_64 rng(static_cast<uint64_t>(flags.model.seed) * 1000003 + run);
  std::uniform_int_distribution<int32_t> token(3, vocab - 1);
  std::vector<int32_t> prefix(
      static_cast<size_t>(std::min(flags.shared_prefix, flags.prompt_tokens)));
  for (int32_t& id : prefix) id = token(rng);
  std::vector<JobRequest> requests(static_cast<size_t>(parallel));
  for (JobRequest& r : requests) {
    r.tokens = prefix;
    while (static_cast<int>(r.tokens.size()) < flags.prompt_tokens) r.tokens.push_back(token(rng));
    r.max_tokens = flags.gen_tokens;
    r.ignore_eos = true;
    r.sampling.temperature = 0;
  }
  return requests;
}

// Steps the generator reported during one run.
class StepLog {
 public:
  void Add(const engine::StepRecord& record) {
    std::lock_guard lock(mu_);
    steps_.push_back(record);
  }
  std::vector<engine::StepRecord> Take() {
    std::lock_guard lock(mu_);
    return std::exchange(steps_, {});
  }

 private:
  std::mutex mu_;
  std::vector<engine::StepRecord> steps_;
};

// Runs P sequences together through the generator. Steps that carry prompt tokens count
// as prefill; the rest (one token per sequence) as decode, timed wall-clock from the first
// decode step's start to the last one's end, so the engine's own work between steps
// counts as overhead.
nlohmann::json RunOne(engine::Generator& generator, StepLog& log, int parallel,
                      const BenchFlags& flags, uint64_t run, absl::Status* status) {
  const auto requests = MakeRequests(parallel, flags, generator.vocab_size(), run);
  log.Take();
  const auto wall_start = std::chrono::steady_clock::now();
  std::vector<engine::JobHandle> handles;
  for (const JobRequest& r : requests) {
    absl::StatusOr<engine::JobHandle> handle = generator.Submit(r);
    if (!handle.ok()) {
      *status = handle.status();
      return {};
    }
    handles.push_back(*std::move(handle));
  }
  int64_t cached = 0, generated = 0;
  for (engine::JobHandle& h : handles) {
    const engine::JobEvent e = h.Collect();
    if (!e.status.ok()) {
      *status = e.status;
      return {};
    }
    cached += e.result.usage.cached_tokens;
    generated += e.result.usage.completion_tokens;
  }
  const double wall_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  const std::vector<engine::StepRecord> steps = log.Take();
  double prefill_s = 0, decode_forward_s = 0, decode_step_s = 0;
  int64_t prefill_tokens = 0, decode_tokens = 0, decode_steps = 0;
  int32_t peak_blocks = 0;
  absl::Time decode_start = absl::InfiniteFuture(), decode_end = absl::InfinitePast();
  for (const engine::StepRecord& s : steps) {
    peak_blocks = std::max(peak_blocks, s.kv_used_blocks);
    const int32_t prompt_tokens = s.num_tokens - s.num_decode_seqs;
    if (prompt_tokens > 0) {
      prefill_s += s.step_seconds;
      prefill_tokens += prompt_tokens;
      continue;
    }
    decode_start = std::min(decode_start, s.start);
    decode_end = std::max(decode_end, s.start + absl::Seconds(s.step_seconds));
    decode_forward_s += s.forward_seconds;
    decode_step_s += s.step_seconds;
    decode_tokens += s.num_decode_seqs;
    ++decode_steps;
  }
  const double decode_s = decode_steps > 0 ? absl::ToDoubleSeconds(decode_end - decode_start) : 0;
  const double total = prefill_s + decode_s;
  return {
      {"parallel", parallel},
      {"prefill_tokens", prefill_tokens},
      {"cached_prompt_tokens", cached},
      {"prefill_s", prefill_s},
      {"prefill_tokens_per_s", prefill_s > 0 ? prefill_tokens / prefill_s : 0},
      {"decode_tokens", decode_tokens},
      {"generated_tokens", generated},
      {"decode_s", decode_s},
      {"decode_tokens_per_s", decode_s > 0 ? decode_tokens / decode_s : 0},
      {"wall_s", wall_s},
      {"output_tokens_per_s", wall_s > 0 ? generated / wall_s : 0},
      {"total_tokens_per_s", total > 0 ? (prefill_tokens + decode_tokens) / total : 0},
      {"step_ms", decode_steps > 0 ? 1e3 * decode_s / decode_steps : 0},
      {"overhead_fraction", decode_s > 0 ? std::max(0.0, 1.0 - decode_forward_s / decode_s) : 0},
      {"in_step_overhead_fraction",
       decode_step_s > 0 ? std::max(0.0, 1.0 - decode_forward_s / decode_step_s) : 0},
      {"kv_blocks_used", peak_blocks}};
}

void PrintSteps(const nlohmann::json& steps) {
  for (const auto& d : steps["decode"]) {
    std::printf(
        "decode batch %d, context %d (%s): %.3f ms/step (median of %d), %.1f tokens/s, "
        "%.3g bytes/step = %.1f GB/s",
        d["batch"].get<int>(), d["context"].get<int>(), d["path"].get<std::string>().c_str(),
        d["step_ms_median"].get<double>(), d["timed_steps"].get<int>(),
        d["tokens_per_s"].get<double>(), d["bytes_per_step"].get<double>(),
        d["gb_per_s"].get<double>());
    if (d.contains("eager_step_ms_median")) {
      std::printf("; op by op %.3f ms/step", d["eager_step_ms_median"].get<double>());
    }
    std::printf("\n");
  }
  if (steps.contains("prefill")) {
    const auto& p = steps["prefill"];
    std::printf(
        "prefill %d tokens: %.2f ms (median of %d), %.1f tokens/s, %.2f TFLOP/s (%.2f in "
        "the projections)\n",
        p["tokens"].get<int>(), p["ms_median"].get<double>(), p["reps"].get<int>(),
        p["tokens_per_s"].get<double>(), p["tflops"].get<double>(),
        p["matmul_tflops"].get<double>());
  }
}

void PrintTable(const nlohmann::json& report) {
  if (report.contains("steps_by_attention")) {
    for (const auto& [attention, steps] : report["steps_by_attention"].items()) {
      std::printf("attention %s:\n", attention.c_str());
      PrintSteps(steps);
    }
  } else if (report.contains("steps")) {
    PrintSteps(report["steps"]);
  }
  if (report["runs"].empty()) return;
  std::printf("%8s %10s %8s %12s %12s %12s %10s %9s %10s\n", "parallel", "prefill_s", "cached",
              "prefill_t/s", "decode_t/s", "total_t/s", "step_ms", "overhead", "kv_blocks");
  for (const auto& r : report["runs"]) {
    std::printf("%8d %10.3f %8lld %12.1f %12.1f %12.1f %10.2f %8.1f%% %10d\n",
                r["parallel"].get<int>(), r["prefill_s"].get<double>(),
                static_cast<long long>(r["cached_prompt_tokens"].get<int64_t>()),
                r["prefill_tokens_per_s"].get<double>(), r["decode_tokens_per_s"].get<double>(),
                r["total_tokens_per_s"].get<double>(), r["step_ms"].get<double>(),
                100 * r["overhead_fraction"].get<double>(), r["kv_blocks_used"].get<int>());
  }
  if (report.contains("roofline")) {
    const auto& l = report["roofline"];
    std::printf(
        "\nread bandwidth %.2f GB/s -> decode roofline %.1f t/s; P=1 decode %.1f t/s = %.1f%% of "
        "roofline\nprefill of %d tokens: %.3f s at OpenBLAS sgemm rate, %.3f s measured = %.1f%% "
        "of sgemm\n",
        l["read_gb_per_s"].get<double>(), l["decode_roofline_tokens_per_s"].get<double>(),
        l["decode_tokens_per_s"].get<double>(),
        100 * l["decode_fraction_of_roofline"].get<double>(), l["prompt_tokens"].get<int>(),
        l["prefill_sgemm_seconds"].get<double>(), l["prefill_seconds"].get<double>(),
        100 * l["prefill_fraction_of_sgemm"].get<double>());
  }
}

void RegisterFlags(ArgParser& parser, BenchFlags& flags) {
  flags.model.Register(parser);
  parser.AddString("parallel", &flags.parallel,
                   "comma-separated parallelisms of generator runs, or none");
  parser.AddInt("prompt-tokens", &flags.prompt_tokens, "prompt tokens per sequence");
  parser.AddInt("gen-tokens", &flags.gen_tokens, "generated tokens per sequence");
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

struct NamedKernel {
  std::string name;
  kernels::AttentionKernel kernel;
};

// The step bench, once as configured or once per --step-attention kernel. Every kernel listed
// is parsed and set before any is timed, so a refusal costs no bench time; the backend's own
// kernel is set again at the end, for the generator runs.
absl::Status RunStepBenches(model::LlamaModel& model, kernels::Backend& backend,
                            const BenchFlags& flags, nlohmann::json& report) {
  if (flags.step_attention.empty()) {
    RS_ASSIGN_OR_RETURN(report["steps"], RunStepBench(model, flags.steps));
    return absl::OkStatus();
  }
  const kernels::AttentionKernel configured = backend.attention_kernel();
  std::vector<NamedKernel> listed;
  const std::vector<std::string> names =
      absl::StrSplit(flags.step_attention, ',', absl::SkipEmpty());
  for (const std::string& name : names) {
    RS_ASSIGN_OR_RETURN(const kernels::AttentionKernel kernel,
                        ParseAttentionKernel(name, "step-attention"));
    listed.push_back({name, kernel});
  }
  for (const NamedKernel& k : listed) RS_RETURN_IF_ERROR(backend.SetAttentionKernel(k.kernel));
  for (const NamedKernel& k : listed) {
    RS_RETURN_IF_ERROR(backend.SetAttentionKernel(k.kernel));
    RS_ASSIGN_OR_RETURN(nlohmann::json steps, RunStepBench(model, flags.steps));
    if (!report.contains("steps")) report["steps"] = steps;
    report["steps_by_attention"][k.name] = std::move(steps);
  }
  return backend.SetAttentionKernel(configured);
}

// The generator runs: a warm-up at P = 1, one run per parallelism, and on the CPU the
// machine's limits beside a P = 1 run.
absl::Status RunGeneratorRuns(std::unique_ptr<model::LlamaModel> model, const BenchFlags& flags,
                              const std::vector<int>& parallel, nlohmann::json& report) {
  const model::LlamaModel& model_view = *model;
  StepLog log;
  RS_ASSIGN_OR_RETURN(
      std::unique_ptr<engine::Generator> generator,
      engine::Generator::Create(std::make_unique<engine::LlamaRunner>(std::move(model)), nullptr,
                                {}, [&log](const engine::StepRecord& r) { log.Add(r); }));
  uint64_t run = 0;
  absl::Status warm_up;  // first-touch of weights and KV pages out of the measurement
  RunOne(*generator, log, 1, flags, run++, &warm_up);
  RS_RETURN_IF_ERROR(warm_up);
  for (int p : parallel) {
    absl::Status status;
    nlohmann::json one = RunOne(*generator, log, p, flags, run++, &status);
    RS_RETURN_IF_ERROR(status);
    report["runs"].push_back(std::move(one));
  }
  if (!flags.roofline || flags.model.device != "cpu") return absl::OkStatus();
  const Limits limits = MeasureLimits(model_view, flags, flags.model.threads);
  absl::Status status;
  const nlohmann::json one = RunOne(*generator, log, 1, flags, run++, &status);
  RS_RETURN_IF_ERROR(status);
  const double roofline = limits.read_bytes_per_s / limits.decode_bytes_per_token;
  report["roofline"] = {
      {"read_gb_per_s", limits.read_bytes_per_s / 1e9},
      {"decode_bytes_per_token", limits.decode_bytes_per_token},
      {"decode_roofline_tokens_per_s", roofline},
      {"decode_tokens_per_s", one["decode_tokens_per_s"]},
      {"decode_fraction_of_roofline", one["decode_tokens_per_s"].get<double>() / roofline},
      {"prompt_tokens", flags.prompt_tokens},
      {"prefill_sgemm_seconds", limits.prefill_ideal_seconds},
      {"prefill_seconds", one["prefill_s"]},
      {"prefill_fraction_of_sgemm", limits.prefill_ideal_seconds / one["prefill_s"].get<double>()}};
  return absl::OkStatus();
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
  flags.steps.prefill_tokens = flags.prefill_tokens;
  flags.steps.seed = static_cast<uint64_t>(flags.model.seed);
  if (flags.prompt_tokens < 1 || flags.gen_tokens < 1) {
    return absl::InvalidArgumentError("--prompt-tokens and --gen-tokens must be >= 1");
  }
  if (flags.kv_fraction < 0 || flags.kv_fraction > 1) {
    return absl::InvalidArgumentError("--kv-fraction must be in [0, 1]");
  }
  const bool step_bench = !flags.steps.decode_batches.empty() || flags.prefill_tokens > 0;
  if (parallel.empty() && !step_bench) {
    return absl::InvalidArgumentError(
        "--parallel none needs --decode-batch or --prefill-tokens: nothing to run");
  }
  const auto load_start = std::chrono::steady_clock::now();
  RS_ASSIGN_OR_RETURN(LoadedModel loaded, OpenModel(flags.model));
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
      {"prompt_tokens", flags.prompt_tokens},
      {"gen_tokens", flags.gen_tokens},
      {"shared_prefix", flags.shared_prefix},
      {"load_s", load_s},
      {"weight_bytes", model->weight_bytes()},
      {"parameters", model->config().NumParameters()},
      {"config", ConfigReport(model->config())},
      {"kv_pool", KvPoolReport(*model, kv_free_bytes)},
      {"free_after_model_bytes", loaded.backend->FreeMemoryBytes()},
      {"runs", nlohmann::json::array()}};
  if (step_bench) RS_RETURN_IF_ERROR(RunStepBenches(*model, *loaded.backend, flags, report));
  if (!parallel.empty()) {
    RS_RETURN_IF_ERROR(RunGeneratorRuns(std::move(model), flags, parallel, report));
  }
  if (flags.json) {
    std::cout << report.dump() << "\n";
  } else {
    PrintTable(report);
  }
  return absl::OkStatus();
}

}  // namespace ringserve::tools
