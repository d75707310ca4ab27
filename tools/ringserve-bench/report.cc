#include "tools/ringserve-bench/report.h"

#include <vector>

#include "absl/strings/str_format.h"
#include "tools/grpc_client/grpc_client.h"

namespace ringserve::tools::bench {
namespace {

double PerSecond(double count, double duration_s) {
  return duration_s > 0 ? count / duration_s : 0;
}

nlohmann::json SummaryJson(const LatencySummary& s) {
  return {{"mean", s.mean}, {"p50", s.p50}, {"p95", s.p95}, {"p99", s.p99}, {"count", s.count}};
}

void PrintLatency(const char* name, const LatencySummary& s, std::ostream& out) {
  out << absl::StrFormat("%-22s %10.2f %10.2f %10.2f %10.2f\n", name, s.mean, s.p50, s.p95, s.p99);
}

}  // namespace

BenchReport BuildReport(const DriverRun& run) {
  BenchReport report;
  report.duration_s = run.duration_s;
  std::vector<double> ttft, tpot, itl, e2e;
  for (const RequestResult& r : run.results) {
    if (!r.ok()) {
      ++report.requests_failed;
      const std::string code = CodeName(r.code);
      if (report.errors[code]++ == 0) report.error_examples[code] = r.message;
      continue;
    }
    ++report.requests_ok;
    const int output = r.output_tokens;
    report.input_tokens += r.input_tokens;
    report.output_tokens += output;
    report.prompt_tokens += r.prompt_tokens;
    report.cached_tokens += r.cached_tokens;
    report.embeddings += r.embeddings;
    e2e.push_back(r.e2e_ms);
    if (r.ttft_ms >= 0) ttft.push_back(r.ttft_ms);
    if (output > 1) tpot.push_back((r.e2e_ms - r.ttft_ms) / (output - 1));
    itl.insert(itl.end(), r.itl_ms.begin(), r.itl_ms.end());
  }
  report.requests_per_s = PerSecond(report.requests_ok, run.duration_s);
  report.output_tokens_per_s = PerSecond(static_cast<double>(report.output_tokens), run.duration_s);
  report.total_tokens_per_s =
      PerSecond(static_cast<double>(report.input_tokens + report.output_tokens), run.duration_s);
  report.embeddings_per_s = PerSecond(static_cast<double>(report.embeddings), run.duration_s);
  report.cache_hit_ratio = report.prompt_tokens > 0 ? static_cast<double>(report.cached_tokens) /
                                                          static_cast<double>(report.prompt_tokens)
                                                    : 0;
  report.ttft_ms = Summarize(std::move(ttft));
  report.tpot_ms = Summarize(std::move(tpot));
  report.itl_ms = Summarize(std::move(itl));
  report.e2e_ms = Summarize(std::move(e2e));
  return report;
}

void PrintReport(const BenchReport& r, std::ostream& out) {
  out << absl::StrFormat("requests ok / failed:  %d / %d\n", r.requests_ok, r.requests_failed);
  for (const auto& [code, count] : r.errors) {
    out << absl::StrFormat("  %s: %d (e.g. %s)\n", code, count, r.error_examples.at(code));
  }
  out << absl::StrFormat("duration:              %.2f s\n", r.duration_s);
  out << absl::StrFormat("request throughput:    %.2f req/s\n", r.requests_per_s);
  out << absl::StrFormat("output tokens:         %d (%.1f tok/s)\n", r.output_tokens,
                         r.output_tokens_per_s);
  out << absl::StrFormat("total tokens:          %d (%.1f tok/s, input + output)\n",
                         r.input_tokens + r.output_tokens, r.total_tokens_per_s);
  out << absl::StrFormat("cache hit ratio:       %.3f (%d of %d prompt tokens cached)\n",
                         r.cache_hit_ratio, r.cached_tokens, r.prompt_tokens);
  if (r.embeddings > 0) {
    out << absl::StrFormat("embeddings:            %d (%.1f/s)\n", r.embeddings,
                           r.embeddings_per_s);
  }
  out << absl::StrFormat("%-22s %10s %10s %10s %10s\n", "latency (ms)", "mean", "p50", "p95",
                         "p99");
  PrintLatency("time to first token", r.ttft_ms, out);
  PrintLatency("time per output token", r.tpot_ms, out);
  PrintLatency("inter-token latency", r.itl_ms, out);
  PrintLatency("end-to-end", r.e2e_ms, out);
}

nlohmann::json ReportJson(const BenchReport& r) {
  return {{"requests_ok", r.requests_ok},
          {"requests_failed", r.requests_failed},
          {"errors", r.errors},
          {"error_examples", r.error_examples},
          {"duration_s", r.duration_s},
          {"input_tokens", r.input_tokens},
          {"output_tokens", r.output_tokens},
          {"prompt_tokens", r.prompt_tokens},
          {"cached_tokens", r.cached_tokens},
          {"requests_per_s", r.requests_per_s},
          {"output_tokens_per_s", r.output_tokens_per_s},
          {"total_tokens_per_s", r.total_tokens_per_s},
          {"cache_hit_ratio", r.cache_hit_ratio},
          {"embeddings", r.embeddings},
          {"embeddings_per_s", r.embeddings_per_s},
          {"ttft_ms", SummaryJson(r.ttft_ms)},
          {"tpot_ms", SummaryJson(r.tpot_ms)},
          {"itl_ms", SummaryJson(r.itl_ms)},
          {"e2e_ms", SummaryJson(r.e2e_ms)}};
}

}  // namespace ringserve::tools::bench
