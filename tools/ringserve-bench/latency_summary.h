// The figures ringserve-bench reports for a latency distribution.
#ifndef RINGSERVE_TOOLS_RINGSERVE_BENCH_LATENCY_SUMMARY_H_
#define RINGSERVE_TOOLS_RINGSERVE_BENCH_LATENCY_SUMMARY_H_

#include <cstdint>
#include <vector>

namespace ringserve::tools::bench {

struct LatencySummary {
  int64_t count = 0;
  double mean = 0;
  double p50 = 0;
  double p95 = 0;
  double p99 = 0;
};

// The q-th percentile (q in [0, 100]) of sorted samples, interpolating linearly between
// the two closest ranks (numpy's default, which vLLM's benchmark_serving uses, so the
// figures compare). 0 for no samples.
double Percentile(const std::vector<double>& sorted, double q);

// Mean and percentiles; all zero for no samples.
LatencySummary Summarize(std::vector<double> samples);

}  // namespace ringserve::tools::bench

#endif  // RINGSERVE_TOOLS_RINGSERVE_BENCH_LATENCY_SUMMARY_H_
