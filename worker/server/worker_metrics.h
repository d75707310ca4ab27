// The worker's Prometheus metrics (ringserve_worker_*): requests by status, token counts,
// latency histograms, batch shape and step time, KV blocks, queue depth, preemptions, the
// compiled-grammar cache.
#ifndef RINGSERVE_WORKER_SERVER_WORKER_METRICS_H_
#define RINGSERVE_WORKER_SERVER_WORKER_METRICS_H_

#include <string>

#include "absl/time/time.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "worker/engine/generator.h"
#include "worker/grammar/grammar_cache.h"

namespace ringserve::server {

// Thread: any (prometheus-cpp metrics are thread-safe).
class WorkerMetrics {
 public:
  explicit WorkerMetrics(prometheus::Registry& registry);

  void RecordRequest(const std::string& method, const std::string& code);
  // A finished job's tokens; with a LoRA adapter's name, its per-adapter counters too (only
  // names the worker serves reach here, so the label's values are bounded by --lora).
  void RecordUsage(const engine::JobUsage& usage, const std::string& adapter = "");
  void RecordInterTokenLatency(absl::Duration gap);
  // Called on the engine thread after every step.
  void RecordStep(const engine::StepRecord& step);
  // Copies the generator's gauges (KV blocks, queue depth, sessions) and brings the
  // adapter counters up to its totals. Called by scrapes, one at a time.
  void Refresh(const engine::GeneratorStats& stats);
  // Brings the cache's lookup counters up to `counts`. Called by scrapes, one at a time.
  void RefreshGrammarCache(const grammar::GrammarCache::Counts& counts);

 private:
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Counter& prompt_tokens_;
  prometheus::Counter& cached_tokens_;
  prometheus::Counter& scored_tokens_;
  prometheus::Counter& generated_tokens_;
  prometheus::Family<prometheus::Counter>& adapter_jobs_;
  prometheus::Family<prometheus::Counter>& adapter_prompt_tokens_;
  prometheus::Family<prometheus::Counter>& adapter_generated_tokens_;
  prometheus::Counter& preemptions_;
  prometheus::Counter& draft_tokens_;
  prometheus::Counter& accepted_draft_tokens_;
  prometheus::Histogram& ttft_;
  prometheus::Histogram& inter_token_;
  prometheus::Histogram& e2e_;
  prometheus::Histogram& queue_time_;
  prometheus::Histogram& batch_sequences_;
  prometheus::Histogram& batch_tokens_;
  prometheus::Histogram& step_seconds_;
  prometheus::Family<prometheus::Gauge>& kv_blocks_;
  prometheus::Gauge& kv_used_;
  prometheus::Gauge& kv_cached_;
  prometheus::Gauge& kv_free_;
  prometheus::Family<prometheus::Gauge>& kv_host_blocks_;
  prometheus::Gauge& kv_host_stored_;
  prometheus::Gauge& kv_host_free_;
  prometheus::Gauge& running_;
  prometheus::Gauge& waiting_;
  prometheus::Gauge& sessions_;
  prometheus::Gauge& waiting_for_adapter_;
  // A counter kept up to a running total the generator or the grammar cache reports.
  struct TotalCounter {
    prometheus::Counter& counter;
    int64_t counted = 0;  // what `counter` holds so far
    void Sync(int64_t total) {
      counter.Increment(static_cast<double>(total - counted));
      counted = total;
    }
  };
  TotalCounter adapter_swaps_;
  TotalCounter adapters_found_;
  TotalCounter adapter_evictions_;
  TotalCounter kv_offloaded_;
  TotalCounter kv_host_hit_tokens_;
  prometheus::Family<prometheus::Counter>& grammar_lookups_;
  TotalCounter grammar_hits_;
  TotalCounter grammar_misses_;
  prometheus::Gauge& grammar_entries_;
};

}  // namespace ringserve::server

#endif  // RINGSERVE_WORKER_SERVER_WORKER_METRICS_H_
