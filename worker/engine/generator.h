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
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "kernels/cpu/thread_pool.h"
#include "kvcache/kv_cache_manager.h"
#include "worker/engine/adapter_table.h"
#include "worker/engine/job.h"
#include "worker/engine/job_channel.h"
#include "worker/engine/model_runner.h"
#include "worker/engine/scheduler.h"
#include "worker/engine/session_table.h"
#include "worker/engine/step_chains.h"
#include "worker/grammar/token_trie.h"
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
  // Paces the engine: a step shorter than this sleeps for the rest (fault-injection tests
  // and demos keep streams in flight this way; 0 in production).
  absl::Duration min_step_time = absl::ZeroDuration();
  // Threads that finish a step's rows with host work (logprobs read the vocabulary;
  // penalties beyond the pass's room re-run the chain over it), the engine thread included:
  // each job's sampler runs on one of them, so the tokens do not depend on the count. 0 =
  // one per core, at most 8. Every other row's token is picked on the device.
  int32_t sampling_threads = 0;
  // Speculative decoding by prompt lookup (ngram_draft.h): each decoding sequence proposes
  // up to speculate_tokens draft tokens a step, copied from where its last tokens occurred
  // earlier in its context, and the pass computes them with its last token and samples
  // after each; the tokens up to the first sample that differs from its draft are kept.
  // Each row's penalties and min_tokens suppression are those that hold once the drafts
  // before it are the output, and its draw is
  // that of its place in the output, so on a backend whose rows keep their bits in any
  // batch and chunk (the CPU's) the tokens are exactly those generated without drafts.
  // 0 = off. A step verifies at most the drafts its runner has spare sampled rows for
  // (ModelRunner::max_sampled_rows beyond max_seqs; SampledRowsFor sizes them).
  int32_t speculate_tokens = 0;
  int32_t speculate_ngram_max = 3;  // the longest suffix looked up
  int32_t speculate_ngram_min = 1;  // the shortest, in [1, speculate_ngram_max]
  // Drafts are proposed only while at most this many sequences run: a large batch keeps
  // the device busy without them, and drafts would take its compute.
  int32_t speculate_max_seqs = 16;
  // Rows the runner keeps for scoring prompts (JobRequest::prompt_logprobs): each is a
  // logits row beyond the one a sequence samples (vocabulary x 4 bytes on the device and in
  // host memory). A step scores as many prompt positions as the runner's extra rows allow
  // (these, and the draft rows its drafts leave unused), so a long prompt is scored over
  // several steps' chunks. With no extra rows at all, such requests are refused
  // (FAILED_PRECONDITION).
  int32_t prompt_logprob_rows = 256;
  // LoRA adapters served beyond those in the runner's slots at creation (ModelRunner::
  // lora_adapters), each by its name: kept in host memory and written into a slot when a
  // job needs one (AdapterTable).
  std::vector<std::shared_ptr<const model::LoraAdapter>> lora_adapters;
  // The most adapters registered at once, those and the runner's and the ones LoadAdapter
  // adds (0: the runner's slots, or the adapters given if more).
  int32_t max_adapters = 0;
  // Finds an adapter a job names that is not registered (--lora-dir): called on one of the
  // generator's finder threads (four), never the engine thread, once for all the jobs that wait for
  // the name; NOT_FOUND and any other error end those jobs. A found adapter is registered like a
  // loaded one, and forgotten again, least recently used first, when max_adapters are held and
  // another must be found. Unset: such jobs end NOT_FOUND at once. It is called for several
  // names at once, so it must be thread-safe.
  std::function<absl::StatusOr<std::shared_ptr<const model::LoraAdapter>>(const std::string& name)>
      find_adapter;
};

// The sampled rows a runner needs for `options`' drafts and scored prompt positions on top of
// one row per sequence.
int32_t SampledRowsFor(const GeneratorOptions& options, int32_t max_seqs, int32_t max_batch_tokens);

// One step, for metrics and benchmarks.
struct StepRecord {
  absl::Time start;
  int32_t num_seqs = 0;
  int32_t num_tokens = 0;
  int32_t num_decode_seqs = 0;
  int32_t num_sampled = 0;   // tokens generated by this step (accepted drafts included)
  int32_t num_drafts = 0;    // draft tokens the step computed and verified
  int32_t num_accepted = 0;  // of those, accepted
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
  int64_t num_draft_tokens = 0;     // verified by speculative steps
  int64_t num_accepted_tokens = 0;  // of those, accepted
  int64_t num_preemptions = 0;
  int32_t num_waiting_for_adapter = 0;  // of num_waiting: jobs waiting for a LoRA slot
  int64_t num_adapter_swaps = 0;        // adapters written into a slot for a waiting job
  int64_t num_adapters_found = 0;       // registered by GeneratorOptions::find_adapter
  int64_t num_adapter_evictions = 0;    // found ones forgotten to make room
  double adapter_swap_seconds = 0;      // the engine thread's time writing them (cumulative)
  double step_seconds = 0;              // cumulative
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

  // LoRA adapters (JobRequest::adapter) a job may name, in registration order: the
  // runner's at creation, GeneratorOptions::lora_adapters, then loads and unloads.
  std::vector<std::string> AdapterNames() const;
  // Each LoRA slot's adapter, "" where one is empty.
  std::vector<std::string> AdapterSlotNames() const;
  // Registers `adapter` (read for this model) under `name` for the jobs that start after
  // it, written into a slot at once when one is empty. ALREADY_EXISTS for a name in use,
  // RESOURCE_EXHAUSTED at GeneratorOptions::max_adapters, and the model's refusals
  // (FAILED_PRECONDITION: no room for its projections or rank); nothing changes then.
  absl::Status LoadAdapter(const std::string& name,
                           const std::shared_ptr<const model::LoraAdapter>& adapter);
  // Forgets `name` and empties its slot. NOT_FOUND when unregistered, FAILED_PRECONDITION
  // while jobs that run with it or wait for it have not ended.
  absl::Status UnloadAdapter(const std::string& name);

  // Refuses new jobs (UNAVAILABLE), then waits until every submitted job has ended or
  // `timeout` passed; true when all ended.
  bool Drain(absl::Duration timeout = absl::InfiniteDuration());
  // Ends every job (UNAVAILABLE) and stops the engine thread. Idempotent.
  void Shutdown();

  int32_t vocab_size() const { return limits_.vocab_size; }
  int32_t max_context_tokens() const { return limits_.max_context_tokens; }
  int32_t block_size_tokens() const { return limits_.block_size_tokens; }
  int32_t num_kv_blocks() const { return limits_.num_kv_blocks; }
  int32_t num_host_kv_blocks() const { return limits_.num_host_kv_blocks; }
  int32_t max_batch_tokens() const { return limits_.max_batch_tokens; }
  int32_t max_seqs() const { return limits_.max_seqs; }

 private:
  struct Limits {
    int32_t vocab_size = 0;
    int32_t max_context_tokens = 0;
    int32_t block_size_tokens = 0;
    int32_t num_kv_blocks = 0;
    int32_t num_host_kv_blocks = 0;
    int32_t max_batch_tokens = 0;
    int32_t max_seqs = 0;
    int32_t max_drafts = 0;      // per step
    int32_t max_extra_rows = 0;  // sampled rows per step beyond one a sequence
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

  Generator(std::unique_ptr<ModelRunner> runner, std::unique_ptr<AdapterTable> adapters,
            const tokenizer::Tokenizer* tokenizer, const GeneratorOptions& options,
            const Limits& limits, std::function<void(const StepRecord&)> on_step);

  absl::Status Validate(const JobRequest& request) const;
  // Runs `task` on the engine thread and waits for it; UNAVAILABLE after shutdown.
  absl::Status RunOnEngine(std::function<void()> task);

  // Engine thread.
  void Loop();
  void StartJob(std::unique_ptr<Job> job);
  absl::Status PrepareJob(Job& job);
  bool Step();  // false when nothing could run
  // Sets the draft of every decoding job that may speculate (before Schedule).
  void ProposeDrafts();
  // Finishes the first sampled row of every job in the step from the pass's tokens (the
  // rows with host work in parallel on sampling_pool_), then hands each job its tokens in
  // row order: each row after the first only while the previous token equalled its draft.
  // Returns the drafts accepted.
  int32_t FinishSamples(const model::SampledPass& pass);
  // After a step that verified `num_drafts` of the job's drafts and accepted the first
  // `num_accepted`: how many it may propose next.
  void AdaptDraftLimit(Job& job, int32_t num_drafts, int32_t num_accepted);
  // Returns false when the token finished the job (`job` is then destroyed). kv_computed:
  // the token was the draft at its position, so its K/V is computed.
  bool HandleSample(Job& job, const SampledToken& sampled, bool kv_computed);
  void FinishJob(Job& job, const absl::Status& status, JobEvent last = {});
  void CancelJob(uint64_t job_id, const absl::Status& why);
  bool IsEos(int32_t token) const;
  void PublishStats();
  // LoRA adapters on the engine thread (generator_adapters.cc). A registration is keyed
  // for the prefix cache by a number never used again (SchedSeq::adapter_key), so the K/V
  // an adapter computed stays its own while it moves in and out of slots, and an adapter
  // loaded anew under a name never meets the K/V of the one it replaced.
  absl::Status UnloadOnEngine(const std::string& name);
  // Binds job.request.adapter's slot and key to job.seq (an adapter in no slot is written
  // into an idle one when `may_swap`); false: the job waits (adapter_waiters_). NOT_FOUND
  // for an unregistered name.
  absl::StatusOr<bool> BindAdapter(Job& job, bool may_swap);
  void ReleaseAdapter(Job& job);  // undoes BindAdapter, once
  // Starts the waiting jobs that can bind now, in arrival order, and drains slots for the
  // adapters the others wait for (AdapterTable::DrainFor).
  void AdmitAdapterWaiters();
  // A finder thread: runs GeneratorOptions::find_adapter for each name it takes, prepares
  // what it finds, and hands the result to the engine thread (OnAdapterFound).
  void FindAdapters();
  // Registers a found adapter, or ends the jobs that wait for it with the finder's error.
  void OnAdapterFound(const std::string& name,
                      const absl::StatusOr<std::shared_ptr<const model::PreparedLora>>& found);
  // Whether a job waiting for its adapter (adapter_waiters_) `matches`.
  bool AnyWaiter(const std::function<bool(const Job&)>& matches) const;
  void PublishAdapterNames();
  // Publishes the stats, then runs after_publish_ (final events, finished session calls).
  void PublishAndDeliver();
  absl::StatusOr<std::vector<std::string>> ForkOnEngine(std::string_view session_id, int32_t n);
  // One fewer open job (a refused Submit's, or a job's after its final event), and wakes
  // Drain; any thread.
  void CloseOpenJob();
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
  uint64_t next_seq_id_ = 1;
  uint64_t next_arrival_ = 1;
  uint64_t next_fork_suffix_ = 1;
  GeneratorStats engine_stats_;
  std::vector<std::function<void()>> after_publish_;
  std::unique_ptr<kernels::cpu::ThreadPool> sampling_pool_;  // null: sample on the engine thread
  // This step's sampled chunks, reused: the job, its first row, its drafts verified.
  struct SampledChunk {
    Job* job = nullptr;
    size_t first_row = 0;
    int32_t num_drafts = 0;
  };
  std::vector<SampledChunk> sampled_chunks_;
  StepChains chains_;                  // their chains, reused
  std::vector<SampledToken> sampled_;  // the first row's token of each sampled chunk, reused
  std::vector<size_t> host_chunks_;    // the sampled chunks whose first row has host work
  // This step's chunks that score prompt positions: the job, its first row, its positions.
  struct ScoredChunk {
    Job* job = nullptr;
    size_t first_row = 0;
    int32_t num_rows = 0;
  };
  std::vector<ScoredChunk> scored_chunks_;
  // Hands each scored chunk's rows to its job's reader (before any of the step's tokens).
  void DeliverScored(const model::SampledPass& pass);
  // The vocabulary's byte trie for response formats; null without a tokenizer. Built with
  // the generator (tens of milliseconds for a 100k vocabulary), not by the first
  // constrained job, which would stall every sequence's step on the engine thread.
  std::unique_ptr<grammar::TokenTrie> token_trie_;

  std::shared_ptr<Inbox> inbox_;  // made in the constructor, where Job is complete
  std::atomic<uint64_t> next_job_id_{1};
  std::atomic<int32_t> num_open_jobs_{0};  // submitted, final event not yet sent
  std::atomic<bool> draining_{false};
  std::atomic<int64_t> num_submitted_{0};

  std::unique_ptr<AdapterTable> adapters_;             // engine thread
  std::deque<uint64_t> adapter_waiters_;               // jobs waiting for a LoRA slot, by arrival
  absl::flat_hash_set<std::string> adapters_finding_;  // engine thread: names being found
  int64_t num_adapters_found_ = 0;                     // engine thread
  // The finder threads' queue of names (find_adapter set only).
  struct Finder {
    std::mutex mu;
    std::condition_variable wake;
    std::deque<std::string> names;
    bool stop = false;
  };
  Finder finder_;
  std::vector<std::thread> finder_threads_;
  mutable std::mutex stats_mu_;
  std::vector<std::string> published_adapter_names_;       // stats_mu_
  std::vector<std::string> published_adapter_slot_names_;  // stats_mu_
  std::condition_variable idle_;    // signalled when num_open_jobs_ may have reached 0
  GeneratorStats published_stats_;  // guarded by stats_mu_

  std::mutex shutdown_mu_;
  std::thread thread_;  // last: started after everything above exists
};

}  // namespace ringserve::engine

#endif  // RINGSERVE_WORKER_ENGINE_GENERATOR_H_
