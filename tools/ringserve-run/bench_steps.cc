// The step-bench half of `ringserve-run bench` (--decode-batch / --prefill-tokens): the
// model's own steps timed by step_bench.h, with --step-attention once per attention kernel.
#include <algorithm>
#include <cstdio>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "tools/ringserve-run/bench.h"
#include "tools/ringserve-run/product_bench.h"

namespace ringserve::tools {
namespace {

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

}  // namespace

// The products alone at the decode batch sizes, and the layers' at the prefill length (the
// head takes one row of a prefill); with --product-algo-rows, again once per row count the
// algorithm is chosen for. Not fatal: their weights come from the memory the KV pool left,
// and a run that cannot have them still has its steps.
void TimeProductsAlone(model::LlamaModel& model, kernels::Backend& backend, const BenchFlags& flags,
                       nlohmann::json& report) {
  struct Run {
    std::vector<int> batches;
    int reps;
    bool with_head;
  };
  std::vector<Run> runs;
  if (!flags.steps.decode_batches.empty()) runs.push_back({flags.steps.decode_batches, 20, true});
  if (flags.prefill_tokens > 0) {
    runs.push_back({{std::min(flags.prefill_tokens, model.options().max_batch_tokens)}, 5, false});
  }
  const auto time_all = [&](std::span<const int> algo_rows, const char* key) {
    nlohmann::json products = nlohmann::json::array();
    for (const Run& run : runs) {
      absl::StatusOr<nlohmann::json> timed =
          TimeProducts(backend, model.config(), run.batches, run.reps, run.with_head, algo_rows);
      if (!timed.ok()) {
        report[std::string(key) + "_error"] = timed.status().ToString();
        break;
      }
      for (auto& p : *timed) products.push_back(std::move(p));
    }
    if (!products.empty()) report[key] = std::move(products);
  };
  time_all({}, "products");
  if (!flags.product_algo_rows_list.empty()) {
    time_all(flags.product_algo_rows_list, "products_by_algo_rows");
  }
}

absl::Status RunStepBenches(model::LlamaModel& model, kernels::Backend& backend,
                            const BenchFlags& flags, nlohmann::json& report) {
  TimeProductsAlone(model, backend, flags, report);
  if (flags.step_attention.empty()) {
    RS_ASSIGN_OR_RETURN(report["steps"], RunStepBench(model, flags.steps));
    return absl::OkStatus();
  }
  const kernels::AttentionKernel configured = backend.attention_kernel();
  std::vector<kernels::AttentionKernel> listed;
  const std::vector<std::string> names =
      absl::StrSplit(flags.step_attention, ',', absl::SkipEmpty());
  for (const std::string& name : names) {
    RS_ASSIGN_OR_RETURN(const kernels::AttentionKernel kernel,
                        ParseAttentionKernel(name, "step-attention"));
    listed.push_back(kernel);
  }
  for (const kernels::AttentionKernel kernel : listed) {
    RS_RETURN_IF_ERROR(backend.SetAttentionKernel(kernel));
  }
  for (const kernels::AttentionKernel kernel : listed) {
    RS_RETURN_IF_ERROR(backend.SetAttentionKernel(kernel));
    RS_ASSIGN_OR_RETURN(nlohmann::json steps, RunStepBench(model, flags.steps));
    if (!report.contains("steps")) report["steps"] = steps;
    // The name as parsed: the only spelling ParseAttentionKernel accepts.
    report["steps_by_attention"][std::string(kernels::AttentionKernelName(kernel))] =
        std::move(steps);
  }
  return backend.SetAttentionKernel(configured);
}

void PrintStepBenches(const nlohmann::json& report) {
  for (const char* key : {"products", "products_by_algo_rows"}) {
    if (!report.contains(key)) continue;
    for (const auto& p : report[key]) {
      std::printf("product %s [%lld x %lld] -> %s, batch %d",
                  p["product"].get<std::string>().c_str(),
                  static_cast<long long>(p["rows"].get<int64_t>()),  // NOLINT(google-runtime-int)
                  static_cast<long long>(p["cols"].get<int64_t>()),  // NOLINT(google-runtime-int)
                  p["out_dtype"].get<std::string>().c_str(), p["batch"].get<int>());
      if (p["algo_rows"].get<int64_t>() > 0) {
        std::printf(
            " (algorithm for %lld rows)",
            static_cast<long long>(p["algo_rows"].get<int64_t>()));  // NOLINT(google-runtime-int)
      }
      std::printf(": %.1f us, %.1f GB/s, %.2f TFLOP/s\n", p["us_median"].get<double>(),
                  p["gb_per_s"].get<double>(), p["tflops"].get<double>());
    }
  }
  for (const char* key : {"products_error", "products_by_algo_rows_error"}) {
    if (report.contains(key)) std::printf("%s: %s\n", key, report[key].get<std::string>().c_str());
  }
  if (report.contains("steps_by_attention")) {
    for (const auto& [attention, steps] : report["steps_by_attention"].items()) {
      std::printf("attention %s:\n", attention.c_str());
      PrintSteps(steps);
    }
  } else if (report.contains("steps")) {
    PrintSteps(report["steps"]);
  }
}

}  // namespace ringserve::tools
