#include "worker/server/worker_metrics.h"

#include <vector>

#include "common/metrics/metrics_server.h"

namespace ringserve::server {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;
using prometheus::Histogram;

std::vector<double> PowersOfTwo(double first, int count) {
  std::vector<double> bounds;
  for (int i = 0; i < count; ++i) bounds.push_back(first * static_cast<double>(1 << i));
  return bounds;
}

prometheus::Counter& Counter(prometheus::Registry& r, const std::string& name,
                             const std::string& help) {
  return BuildCounter().Name(name).Help(help).Register(r).Add({});
}

prometheus::Gauge& Gauge(prometheus::Registry& r, const std::string& name,
                         const std::string& help) {
  return BuildGauge().Name(name).Help(help).Register(r).Add({});
}

Histogram& Hist(prometheus::Registry& r, const std::string& name, const std::string& help,
                const std::vector<double>& bounds) {
  return BuildHistogram().Name(name).Help(help).Register(r).Add(
      {}, Histogram::BucketBoundaries(bounds));
}

}  // namespace

WorkerMetrics::WorkerMetrics(prometheus::Registry& r)
    : requests_(BuildCounter()
                    .Name("ringserve_worker_requests_total")
                    .Help("Finished calls by method and gRPC status code")
                    .Register(r)),
      prompt_tokens_(Counter(r, "ringserve_worker_prompt_tokens_total",
                             "Context tokens of finished requests")),
      cached_tokens_(Counter(r, "ringserve_worker_cached_prompt_tokens_total",
                             "Context tokens whose K/V was reused (prefix cache or session)")),
      scored_tokens_(Counter(r, "ringserve_worker_scored_prompt_tokens_total",
                             "Input tokens scored for requests with prompt_logprobs")),
      generated_tokens_(Counter(r, "ringserve_worker_generated_tokens_total", "Tokens generated")),
      preemptions_(Counter(r, "ringserve_worker_preemptions_total",
                           "Sequences that gave their KV blocks back and were recomputed")),
      draft_tokens_(Counter(r, "ringserve_worker_draft_tokens_total",
                            "Draft tokens verified by speculative decoding (--speculate)")),
      accepted_draft_tokens_(Counter(r, "ringserve_worker_accepted_draft_tokens_total",
                                     "Draft tokens accepted: generated tokens that took no step "
                                     "of their own")),
      ttft_(Hist(r, "ringserve_worker_time_to_first_token_seconds",
                 "Request arrival to first token", metrics::LatencyBucketsSeconds())),
      inter_token_(Hist(r, "ringserve_worker_inter_token_latency_seconds",
                        "Time between two streamed messages of one request",
                        metrics::LatencyBucketsSeconds())),
      e2e_(Hist(r, "ringserve_worker_request_duration_seconds", "Request arrival to final message",
                metrics::LatencyBucketsSeconds())),
      queue_time_(Hist(r, "ringserve_worker_queue_time_seconds",
                       "Request arrival to its first step", metrics::LatencyBucketsSeconds())),
      batch_sequences_(Hist(r, "ringserve_worker_batch_sequences", "Sequences per forward pass",
                            PowersOfTwo(1, 10))),
      batch_tokens_(
          Hist(r, "ringserve_worker_batch_tokens", "Tokens per forward pass", PowersOfTwo(1, 14))),
      step_seconds_(Hist(r, "ringserve_worker_step_seconds", "Wall time of one generator step",
                         metrics::LatencyBucketsSeconds())),
      kv_blocks_(
          BuildGauge().Name("ringserve_worker_kv_blocks").Help("KV blocks by state").Register(r)),
      kv_used_(kv_blocks_.Add({{"state", "used"}})),
      kv_cached_(kv_blocks_.Add({{"state", "cached"}})),
      kv_free_(kv_blocks_.Add({{"state", "free"}})),
      running_(Gauge(r, "ringserve_worker_running_requests", "Sequences in the running set")),
      waiting_(
          Gauge(r, "ringserve_worker_queue_depth", "Requests waiting for KV blocks or budget")),
      sessions_(Gauge(r, "ringserve_worker_sessions", "Live sessions")),
      grammar_lookups_(BuildCounter()
                           .Name("ringserve_worker_grammar_cache_lookups_total")
                           .Help("Response formats and tool-call grammars looked up among the "
                                 "compiled ones, by result (a miss compiles)")
                           .Register(r)),
      grammar_hits_(grammar_lookups_.Add({{"result", "hit"}})),
      grammar_misses_(grammar_lookups_.Add({{"result", "miss"}})),
      grammar_entries_(Gauge(r, "ringserve_worker_grammar_cache_entries",
                             "Compiled grammars kept for later requests")) {}

void WorkerMetrics::RecordRequest(const std::string& method, const std::string& code) {
  requests_.Add({{"method", method}, {"code", code}}).Increment();
}

void WorkerMetrics::RecordUsage(const engine::JobUsage& usage) {
  prompt_tokens_.Increment(usage.prompt_tokens);
  cached_tokens_.Increment(usage.cached_tokens);
  scored_tokens_.Increment(usage.scored_tokens);
  generated_tokens_.Increment(usage.completion_tokens);
  // A request that generated nothing (max_tokens 0) has no first token.
  if (usage.completion_tokens > 0) ttft_.Observe(absl::ToDoubleSeconds(usage.time_to_first_token));
  e2e_.Observe(absl::ToDoubleSeconds(usage.total_time));
  queue_time_.Observe(absl::ToDoubleSeconds(usage.queue_time));
}

void WorkerMetrics::RecordInterTokenLatency(absl::Duration gap) {
  inter_token_.Observe(absl::ToDoubleSeconds(gap));
}

void WorkerMetrics::RecordStep(const engine::StepRecord& step) {
  batch_sequences_.Observe(step.num_seqs);
  batch_tokens_.Observe(step.num_tokens);
  step_seconds_.Observe(step.step_seconds);
  if (step.num_preempted > 0) preemptions_.Increment(step.num_preempted);
  if (step.num_drafts > 0) {
    draft_tokens_.Increment(step.num_drafts);
    accepted_draft_tokens_.Increment(step.num_accepted);
  }
}

void WorkerMetrics::Refresh(const engine::GeneratorStats& stats) {
  kv_used_.Set(stats.kv.num_used_blocks);
  kv_cached_.Set(stats.kv.num_cached_blocks);
  kv_free_.Set(stats.kv.num_free_blocks - stats.kv.num_cached_blocks);
  running_.Set(stats.num_running);
  waiting_.Set(stats.num_waiting);
  sessions_.Set(stats.num_sessions);
}

void WorkerMetrics::RefreshGrammarCache(const grammar::GrammarCache::Counts& counts) {
  grammar_hits_.Increment(static_cast<double>(counts.hits - grammar_counted_.hits));
  grammar_misses_.Increment(static_cast<double>(counts.misses - grammar_counted_.misses));
  grammar_entries_.Set(static_cast<double>(counts.entries));
  grammar_counted_ = counts;
}

}  // namespace ringserve::server
