// The generator: one engine thread that owns the model runner, the KV cache manager, the
// scheduler and the session table, and batches every active job into each forward pass.
// Other threads talk to it only through Submit() (returns a JobHandle to read events
// from), the session calls (Fork, CloseSession), Stats() and Drain()/Shutdown(); those
// post to an inbox the engine drains between steps.
//
// One step: take cancellations and new jobs from the inbox, expire idle sessions, plan
// (Scheduler::Schedule), run pending block copies and the forward pass, commit the K/V,
// sample one token for every chunk that reached its last known token, and deliver events.
#ifndef RINGSERVE_WORKER_ENGINE_GENERATOR_H_
#define RINGSERVE_WORKER_ENGINE_GENERATOR_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "kvcache/kv_cache_manager.h"
#include "worker/engine/job.h"
#include "worker/engine/job_channel.h"
#include "worker/engine/model_runner.h"
#include "worker/engine/scheduler.h"
#include "worker/engine/session_table.h"
#include "worker/tokenizer/tokenizer.h"

namespace ringserve::engine {

struct GeneratorOptions {
  int32_t max_batch_tokens = 0;  // per step; 0 = the runner's limit (and never above it)
  int32_t max_seqs = 0;          // per step; 0 = the runner's limit (and never above it)
  int32_t max_jobs = 4096;       // submitted and unfinished; beyond: RESOURCE_EXHAUSTED
  // A reader this many tokens behind is cancelled (RESOURCE_EXHAUSTED) so it cannot hold
  // KV blocks forever.
  int32_t max_pending_tokens = 4096;
  int32_t max_sessions = 16384;
  absl::Duration session_ttl = absl::Minutes(30);
  // Tokens that end generation unless ignore_eos; empty = the tokenizer's.
  std::vector<int32_t> eos_token_ids;
};

// One step, for metrics and benchmarks.
struct StepRecord {
  absl::Time start;
  int32_t num_seqs = 0;
  int32_t num_tokens = 0;
  int32_t num_decode_seqs = 0;
  int32_t num_preempted = 0;
  double step_seconds = 0;     // the whole step: scheduling, forward, sampling, delivery
  double forward_seconds = 0;  // ModelRunner::Forward and the block copies
  int32_t kv_used_blocks = 0;  // after the step
};

struct GeneratorStats {
  kvcache::KvCacheStats kv;
  int32_t num_running = 0;
  int32_t num_waiting = 0;
  int32_t num_sessions = 0;
  int32_t num_pinned_sessions = 0;
  SessionCounters sessions;
  int64_t num_steps = 0;
  int64_t num_jobs_submitted = 0;
  int64_t num_jobs_finished = 0;    // completed with a finish reason
  int64_t num_jobs_cancelled = 0;   // by the reader, a slow reader or shutdown
  int64_t num_jobs_failed = 0;      // refused or failed on the engine thread
  int64_t num_prompt_tokens = 0;    // context tokens of started jobs
  int64_t num_cached_tokens = 0;    // of those, found cached
  int64_t num_computed_tokens = 0;  // tokens run through the model (prefill, recompute, decode)
  int64_t num_generated_tokens = 0;
  int64_t num_preemptions = 0;
  double step_seconds = 0;  // cumulative
  double forward_seconds = 0;
  StepRecord last_step;
};

// Thread: every public method may be called from any thread.
class Generator {
 public:
  // Starts the engine thread. `tokenizer` may be null (token ids only: no text deltas, no
  // stop strings); it must outlive the generator.
  static absl::StatusOr<std::unique_ptr<Generator>> Create(
      std::unique_ptr<ModelRunner> runner, const tokenizer::Tokenizer* tokenizer,
      const GeneratorOptions& options, std::function<void(const StepRecord&)> on_step = {});
  ~Generator();  // Shutdown()
  Generator(const Generator&) = delete;
  Generator& operator=(const Generator&) = delete;

  // Validates the request (INVALID_ARGUMENT naming the field), checks capacity
  // (RESOURCE_EXHAUSTED) and queues it (UNAVAILABLE once draining). Errors that depend on
  // the session or on the pool (NOT_FOUND, FAILED_PRECONDITION, RESOURCE_EXHAUSTED for a
  // context larger than the whole KV pool) arrive as the handle's final event.
  absl::StatusOr<JobHandle> Submit(JobRequest request);

  // n new sessions sharing every block of session_id's history; their ids are the
  // parent's routing key (up to the first '#'), '#', and a suffix.
  absl::StatusOr<std::vector<std::string>> Fork(std::string_view session_id, int32_t n);
  // Forgets the session; returns the tokens of history it held.
  absl::StatusOr<int32_t> CloseSession(std::string_view session_id);

  GeneratorStats Stats() const;

  // Refuses new jobs (UNAVAILABLE), then waits until every submitted job has ended or
  // `timeout` passed; true when all ended.
  bool Drain(absl::Duration timeout = absl::InfiniteDuration());
  // Ends every job (UNAVAILABLE) and stops the engine thread. Idempotent.
  void Shutdown();

  int32_t vocab_size() const { return limits_.vocab_size; }
  int32_t max_context_tokens() const { return limits_.max_context_tokens; }
  int32_t block_size_tokens() const { return limits_.block_size_tokens; }
  int32_t num_kv_blocks() const { return limits_.num_kv_blocks; }
  int32_t max_batch_tokens() const { return limits_.max_batch_tokens; }
  int32_t max_seqs() const { return limits_.max_seqs; }

 private:
  struct Limits {
    int32_t vocab_size = 0;
    int32_t max_context_tokens = 0;
    int32_t block_size_tokens = 0;
    int32_t num_kv_blocks = 0;
    int32_t max_batch_tokens = 0;
    int32_t max_seqs = 0;
  };
  struct Job;
  // What other threads hand the engine thread; shared with every job's channel so a
  // late Cancel() after shutdown is harmless.
  struct Inbox {
    std::mutex mu;
    std::condition_variable wake;
    std::vector<std::unique_ptr<Job>> submitted;
    std::vector<uint64_t> cancelled;
    std::vector<std::function<void()>> tasks;
    bool stop = false;
  };

  Generator(std::unique_ptr<ModelRunner> runner, const tokenizer::Tokenizer* tokenizer,
            const GeneratorOptions& options, const Limits& limits,
            std::function<void(const StepRecord&)> on_step);

  absl::Status Validate(const JobRequest& request) const;
  // Runs `task` on the engine thread and waits for it; UNAVAILABLE after shutdown.
  absl::Status RunOnEngine(std::function<void()> task);

  // Engine thread.
  void Loop();
  void StartJob(std::unique_ptr<Job> job);
  absl::Status PrepareJob(Job& job);
  bool Step();  // false when nothing could run
  void HandleSample(Job& job, std::span<const float> logits);
  void FinishJob(Job& job, absl::Status status, JobEvent last = {});
  void CancelJob(uint64_t job_id, const absl::Status& why);
  bool IsEos(int32_t token) const;
  void PublishStats();
  // Publishes the stats, then runs after_publish_ (final events, finished session calls).
  void PublishAndDeliver();
  absl::StatusOr<std::vector<std::string>> ForkOnEngine(std::string_view session_id, int32_t n);
  absl::StatusOr<int32_t> CloseOnEngine(std::string_view session_id);

  const GeneratorOptions options_;
  const Limits limits_;
  const tokenizer::Tokenizer* const tokenizer_;
  std::function<void(const StepRecord&)> on_step_;
  std::vector<int32_t> eos_ids_;

  // Engine-thread state. Declaration order matters: jobs and sessions hold leases on the
  // cache manager, so they are destroyed first.
  std::unique_ptr<ModelRunner> runner_;
  std::unique_ptr<kvcache::KvCacheManager> kv_;
  std::unique_ptr<Scheduler> scheduler_;
  SessionTable sessions_;
  absl::flat_hash_map<uint64_t, std::unique_ptr<Job>> jobs_;
  std::vector<float> logits_;
  uint64_t next_seq_id_ = 1;
  uint64_t next_arrival_ = 1;
  uint64_t next_fork_suffix_ = 1;
  GeneratorStats engine_stats_;
  std::vector<std::function<void()>> after_publish_;

  std::shared_ptr<Inbox> inbox_;  // made in the constructor, where Job is complete
  std::atomic<uint64_t> next_job_id_{1};
  std::atomic<int32_t> num_open_jobs_{0};  // submitted, final event not yet sent
  std::atomic<bool> draining_{false};
  std::atomic<int64_t> num_submitted_{0};

  mutable std::mutex stats_mu_;
  std::condition_variable idle_;    // signalled when num_open_jobs_ may have reached 0
  GeneratorStats published_stats_;  // guarded by stats_mu_

  std::mutex shutdown_mu_;
  std::thread thread_;  // last: started after everything above exists
};

}  // namespace ringserve::engine

#endif  // RINGSERVE_WORKER_ENGINE_GENERATOR_H_
