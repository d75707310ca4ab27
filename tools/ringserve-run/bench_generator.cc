// The generator-runs half of `ringserve-run bench` (--parallel): for each parallelism P, P
// sequences prefill --prompt-tokens then decode --gen-tokens together through the generator;
// throughput per phase (like llama-batched-bench) and, on the CPU, the machine's own limits
// measured in the same run: the memory-bandwidth roofline for decode and OpenBLAS's sgemm
// rate at the prefill's GEMM shapes.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <random>
#include <utility>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/status_macros.h"
#include "kernels/cpu/roofline.h"
#include "tools/ringserve-run/bench.h"
#include "worker/engine/generator.h"
#include "worker/engine/llama_runner.h"

namespace ringserve::tools {
namespace {

using engine::JobRequest;

struct Limits {
  double read_bytes_per_s = 0;
  double decode_bytes_per_token = 0;  // weights + average KV read by one decode step
  double prefill_ideal_seconds = 0;   // the prompt's GEMMs at OpenBLAS's rate (P = 1)
};

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
    r.sampling.temperature = static_cast<float>(flags.temperature);
    r.sampling.top_k = flags.top_k;
    r.sampling.top_p = static_cast<float>(flags.top_p);
    r.sampling.num_logprobs = flags.logprobs;
    r.sampling.seed = static_cast<uint64_t>(&r - requests.data());
    if (flags.adapters > 0) {
      r.adapter = flags.adapter_names[static_cast<size_t>((&r - requests.data()) % flags.adapters)];
    }
    if (flags.embed) {
      r.embed = true;
      r.max_tokens = 0;
    }
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
// as prefill; the rest (each sequence's last token, and its drafts with --speculate) as decode,
// timed wall-clock from the first decode step's start to the last one's end, so the engine's own
// work between steps counts as overhead.
nlohmann::json RunOne(engine::Generator& generator, StepLog& log, int parallel,
                      const BenchFlags& flags, uint64_t run, absl::Status* status) {
  const auto requests = MakeRequests(parallel, flags, generator.vocab_size(), run);
  log.Take();
  const engine::GeneratorStats before = generator.Stats();
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
  const engine::GeneratorStats after = generator.Stats();
  const std::vector<engine::StepRecord> steps = log.Take();
  double prefill_s = 0, decode_forward_s = 0, decode_step_s = 0;
  int64_t prefill_tokens = 0, decode_tokens = 0, decode_steps = 0, drafts = 0, accepted = 0;
  int32_t peak_blocks = 0;
  absl::Time decode_start = absl::InfiniteFuture(), decode_end = absl::InfinitePast();
  for (const engine::StepRecord& s : steps) {
    peak_blocks = std::max(peak_blocks, s.kv_used_blocks);
    drafts += s.num_drafts;
    accepted += s.num_accepted;
    const int32_t prompt_tokens = s.num_tokens - s.num_decode_seqs - s.num_drafts;
    if (prompt_tokens > 0) {
      prefill_s += s.step_seconds;
      prefill_tokens += prompt_tokens;
      continue;
    }
    decode_start = std::min(decode_start, s.start);
    decode_end = std::max(decode_end, s.start + absl::Seconds(s.step_seconds));
    decode_forward_s += s.forward_seconds;
    decode_step_s += s.step_seconds;
    decode_tokens += s.num_sampled;  // with drafts, more than one a sequence
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
      {"kv_blocks_used", peak_blocks},
      {"draft_tokens", drafts},
      {"accepted_draft_tokens", accepted},
      {"embeddings_per_s", flags.embed && wall_s > 0 ? parallel / wall_s : 0},
      {"adapter_swaps", after.num_adapter_swaps - before.num_adapter_swaps},
      {"adapter_swap_s", after.adapter_swap_seconds - before.adapter_swap_seconds}};
}

}  // namespace

engine::GeneratorOptions GeneratorOptionsFor(const BenchFlags& flags) {
  engine::GeneratorOptions options;
  flags.speculation.Apply(options);
  options.prompt_logprob_rows = 0;  // the benchmark scores no prompts: no rows kept for it
  options.lora_adapters = flags.host_adapters;
  options.max_adapters = flags.model.max_cpu_loras;
  return options;
}

absl::Status RunGeneratorRuns(std::unique_ptr<model::LlamaModel> model, const BenchFlags& flags,
                              const std::vector<int>& parallel, nlohmann::json& report) {
  const model::LlamaModel& model_view = *model;
  StepLog log;
  RS_ASSIGN_OR_RETURN(
      std::unique_ptr<engine::Generator> generator,
      engine::Generator::Create(std::make_unique<engine::LlamaRunner>(std::move(model)), nullptr,
                                GeneratorOptionsFor(flags),
                                [&log](const engine::StepRecord& r) { log.Add(r); }));
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

void PrintGeneratorRuns(const nlohmann::json& report) {
  if (report["runs"].empty()) return;
  std::printf("%8s %10s %8s %12s %12s %12s %10s %9s %10s %15s\n", "parallel", "prefill_s", "cached",
              "prefill_t/s", "decode_t/s", "total_t/s", "step_ms", "overhead", "kv_blocks",
              "drafts_accepted");
  for (const auto& r : report["runs"]) {
    std::printf("%8d %10.3f %8lld %12.1f %12.1f %12.1f %10.2f %8.1f%% %10d %7lld/%-7lld\n",
                r["parallel"].get<int>(), r["prefill_s"].get<double>(),
                static_cast<long long>(r["cached_prompt_tokens"].get<int64_t>()),
                r["prefill_tokens_per_s"].get<double>(), r["decode_tokens_per_s"].get<double>(),
                r["total_tokens_per_s"].get<double>(), r["step_ms"].get<double>(),
                100 * r["overhead_fraction"].get<double>(), r["kv_blocks_used"].get<int>(),
                static_cast<long long>(r["accepted_draft_tokens"].get<int64_t>()),
                static_cast<long long>(r["draft_tokens"].get<int64_t>()));
  }
  for (const auto& r : report["runs"]) {
    if (r["embeddings_per_s"].get<double>() > 0) {
      std::printf("parallel %d: %.1f embeddings/s\n", r["parallel"].get<int>(),
                  r["embeddings_per_s"].get<double>());
    }
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

}  // namespace ringserve::tools
