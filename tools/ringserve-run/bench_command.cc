// `ringserve-run bench`: for each parallelism P, P sequences prefill --prompt-tokens then
// decode --gen-tokens together; prints throughput per phase (like llama-batched-bench) and,
// on the CPU, the machine's own limits measured in the same run: the memory-bandwidth
// roofline for decode and OpenBLAS's sgemm rate at the prefill's GEMM shapes.
#include <cstdio>
#include <iostream>
#include <random>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "kernels/cpu/roofline.h"
#include "nlohmann/json.hpp"
#include "tools/ringserve-run/commands.h"
#include "tools/ringserve-run/model_setup.h"
#include "worker/engine/offline_batch.h"

namespace ringserve::tools {
namespace {

using engine::OfflineKvBlocks;
using engine::OfflineRequest;
using engine::OfflineResult;
using engine::OfflineTimings;
using engine::RunOfflineBatch;

struct BenchFlags {
  ModelFlags model;
  std::string parallel = "1,2,4,8,16,32";
  int prompt_tokens = 128;
  int gen_tokens = 32;
  bool json = false;
  bool roofline = true;
};

struct Limits {
  double read_bytes_per_s = 0;
  double decode_bytes_per_token = 0;  // weights + average KV read by one decode step
  double prefill_ideal_seconds = 0;   // the prompt's GEMMs at OpenBLAS's rate (P = 1)
};

absl::StatusOr<std::vector<int>> ParseParallel(const std::string& list) {
  std::vector<int> out;
  for (absl::string_view part : absl::StrSplit(list, ',', absl::SkipEmpty())) {
    int p = 0;
    if (!absl::SimpleAtoi(part, &p) || p <= 0) {
      return absl::InvalidArgumentError(absl::StrCat("--parallel: bad entry '", part, "'"));
    }
    out.push_back(p);
  }
  if (out.empty()) return absl::InvalidArgumentError("--parallel is empty");
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
  const int shapes[][2] = {{q, c.dim}, {kv, c.dim}, {kv, c.dim}, {c.dim, q},
                           {c.hidden_dim, c.dim}, {c.hidden_dim, c.dim}, {c.dim, c.hidden_dim}};
  for (const auto& [m, k] : shapes) {
    const double flops = 2.0 * n * m * k;
    limits.prefill_ideal_seconds +=
        c.num_layers * flops / kernels::cpu::MeasureBlasSgemmFlops(n, m, k);
  }
  return limits;
}

std::vector<OfflineRequest> MakeRequests(int parallel, const BenchFlags& flags, int vocab) {
  std::mt19937 rng(static_cast<uint32_t>(flags.model.seed));
  std::uniform_int_distribution<int32_t> token(3, vocab - 1);
  std::vector<OfflineRequest> requests(parallel);
  for (OfflineRequest& r : requests) {
    r.prompt_ids.resize(flags.prompt_tokens);
    for (int32_t& id : r.prompt_ids) id = token(rng);
    r.max_tokens = flags.gen_tokens;
    r.sampling.temperature = 0;
  }
  return requests;
}

nlohmann::json RunOne(model::LlamaModel& model, int parallel, const BenchFlags& flags,
                      absl::Status* status) {
  const auto requests = MakeRequests(parallel, flags, model.config().vocab_size);
  OfflineTimings t;
  auto results = RunOfflineBatch(model, requests, &t);
  if (!results.ok()) {
    *status = results.status();
    return {};
  }
  const double total = t.prefill_seconds + t.decode_seconds;
  const double decode_outside_forward =
      t.decode_seconds > 0 ? 1.0 - (t.forward_seconds - t.prefill_seconds) / t.decode_seconds
                           : 0.0;
  return {{"parallel", parallel},
          {"prefill_tokens", t.prefill_tokens},
          {"prefill_s", t.prefill_seconds},
          {"prefill_tokens_per_s", t.prefill_tokens / t.prefill_seconds},
          {"decode_tokens", t.decode_tokens},
          {"decode_s", t.decode_seconds},
          {"decode_tokens_per_s", t.decode_seconds > 0 ? t.decode_tokens / t.decode_seconds : 0},
          {"total_tokens_per_s", (t.prefill_tokens + t.decode_tokens) / total},
          {"step_ms", t.decode_steps > 0 ? 1e3 * t.decode_seconds / t.decode_steps : 0},
          {"overhead_fraction", std::max(0.0, decode_outside_forward)},
          {"kv_blocks_used", OfflineKvBlocks(requests, model.options().block_size)}};
}

void PrintTable(const nlohmann::json& report) {
  std::printf("%8s %10s %12s %12s %12s %10s %9s %10s\n", "parallel", "prefill_s", "prefill_t/s",
              "decode_t/s", "total_t/s", "step_ms", "overhead", "kv_blocks");
  for (const auto& r : report["runs"]) {
    std::printf("%8d %10.3f %12.1f %12.1f %12.1f %10.2f %8.1f%% %10d\n", r["parallel"].get<int>(),
                r["prefill_s"].get<double>(), r["prefill_tokens_per_s"].get<double>(),
                r["decode_tokens_per_s"].get<double>(), r["total_tokens_per_s"].get<double>(),
                r["step_ms"].get<double>(), 100 * r["overhead_fraction"].get<double>(),
                r["kv_blocks_used"].get<int>());
  }
  if (report.contains("roofline")) {
    const auto& l = report["roofline"];
    std::printf(
        "\nread bandwidth %.2f GB/s -> decode roofline %.1f t/s; P=1 decode %.1f t/s = %.1f%% of "
        "roofline\nprefill of %d tokens: %.3f s at OpenBLAS sgemm rate, %.3f s measured = %.1f%% "
        "of sgemm\n",
        l["read_gb_per_s"].get<double>(), l["decode_roofline_tokens_per_s"].get<double>(),
        l["decode_tokens_per_s"].get<double>(), 100 * l["decode_fraction_of_roofline"].get<double>(),
        l["prompt_tokens"].get<int>(), l["prefill_sgemm_seconds"].get<double>(),
        l["prefill_seconds"].get<double>(), 100 * l["prefill_fraction_of_sgemm"].get<double>());
  }
}

}  // namespace

absl::Status RunBench(int argc, char** argv) {
  BenchFlags flags;
  ArgParser parser;
  flags.model.Register(parser);
  parser.AddString("parallel", &flags.parallel, "comma-separated parallelisms");
  parser.AddInt("prompt-tokens", &flags.prompt_tokens, "prompt tokens per sequence");
  parser.AddInt("gen-tokens", &flags.gen_tokens, "generated tokens per sequence");
  parser.AddBool("json", &flags.json, "print one JSON object");
  parser.AddBool("roofline", &flags.roofline, "measure the CPU's limits (default true)");
  RS_RETURN_IF_ERROR(parser.Parse(argc, argv));
  RS_ASSIGN_OR_RETURN(const std::vector<int> parallel, ParseParallel(flags.parallel));
  if (flags.prompt_tokens < 1 || flags.gen_tokens < 1) {
    return absl::InvalidArgumentError("--prompt-tokens and --gen-tokens must be >= 1");
  }
  const int max_parallel = *std::max_element(parallel.begin(), parallel.end());
  RS_ASSIGN_OR_RETURN(LoadedModel loaded, OpenModel(flags.model));
  model::ModelOptions options;
  options.max_seqs = max_parallel;
  options.num_kv_blocks = static_cast<int>(
      OfflineKvBlocks(MakeRequests(max_parallel, flags, loaded.config.vocab_size),
                      options.block_size));
  RS_ASSIGN_OR_RETURN(auto model, CreateModel(loaded, flags.model, options));

  nlohmann::json report = {{"model", flags.model.dummy_weights ? flags.model.preset
                                                               : flags.model.model_path},
                           {"device", flags.model.device},
                           {"prompt_tokens", flags.prompt_tokens},
                           {"gen_tokens", flags.gen_tokens},
                           {"weight_bytes", model->weight_bytes()},
                           {"runs", nlohmann::json::array()}};
  absl::Status warm_up;  // first-touch of weights and KV pages out of the measurement
  RunOne(*model, 1, flags, &warm_up);
  RS_RETURN_IF_ERROR(warm_up);
  for (int p : parallel) {
    absl::Status status;
    nlohmann::json run = RunOne(*model, p, flags, &status);
    RS_RETURN_IF_ERROR(status);
    report["runs"].push_back(std::move(run));
  }
  if (flags.roofline && flags.model.device == "cpu") {
    const Limits limits = MeasureLimits(*model, flags, flags.model.threads);
    absl::Status status;
    const nlohmann::json one = RunOne(*model, 1, flags, &status);
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
        {"prefill_fraction_of_sgemm",
         limits.prefill_ideal_seconds / one["prefill_s"].get<double>()}};
  }
  if (flags.json) {
    std::cout << report.dump() << "\n";
  } else {
    PrintTable(report);
  }
  return absl::OkStatus();
}

}  // namespace ringserve::tools
