// The figures of a ringserve-bench run, as text for a person or one JSON object.
#ifndef RINGSERVE_TOOLS_RINGSERVE_BENCH_REPORT_H_
#define RINGSERVE_TOOLS_RINGSERVE_BENCH_REPORT_H_

#include <cstdint>
#include <map>
#include <ostream>
#include <string>

#include "nlohmann/json.hpp"
#include "tools/ringserve-bench/latency_summary.h"
#include "tools/ringserve-bench/load_driver.h"

namespace ringserve::tools::bench {

// Token counts and latencies cover the successful requests only (as vLLM's
// benchmark_serving does); a failed request counts in requests_failed and errors.
struct BenchReport {
  int requests_ok = 0;
  int requests_failed = 0;
  // Failed requests by status code name, with the first message seen for each.
  std::map<std::string, int> errors;
  std::map<std::string, std::string> error_examples;
  double duration_s = 0;
  // Tokens the client sent (not the history a session added) and received.
  int64_t input_tokens = 0;
  int64_t output_tokens = 0;
  // From the finals: the contexts the completions were conditioned on, and how much of
  // them the server reused.
  int64_t prompt_tokens = 0;
  int64_t cached_tokens = 0;
  double requests_per_s = 0;
  double output_tokens_per_s = 0;
  // (input + output tokens) per second.
  double total_tokens_per_s = 0;
  // cached_tokens / prompt_tokens; 0 when nothing was prompted.
  double cache_hit_ratio = 0;
  // Embeddings received (--embed), and per second.
  int64_t embeddings = 0;
  double embeddings_per_s = 0;
  // Time to the first token; time per output token after the first ((e2e - ttft) /
  // (output - 1), per request); the gaps between token messages; the whole request.
  LatencySummary ttft_ms;
  LatencySummary tpot_ms;
  LatencySummary itl_ms;
  LatencySummary e2e_ms;
};

BenchReport BuildReport(const DriverRun& run);
void PrintReport(const BenchReport& report, std::ostream& out);
nlohmann::json ReportJson(const BenchReport& report);

}  // namespace ringserve::tools::bench

#endif  // RINGSERVE_TOOLS_RINGSERVE_BENCH_REPORT_H_
