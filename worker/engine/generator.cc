#include "worker/engine/generator.h"

#include <algorithm>
#include <future>
#include <optional>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/check.h"
#include "common/status_macros.h"
#include "worker/engine/generator_job.h"
#include "worker/engine/ngram_draft.h"

namespace ringserve::engine {
namespace {

constexpr int32_t kMaxForks = 64;
constexpr int32_t kFinderThreads = 4;  // GeneratorOptions::find_adapter's

double Seconds(absl::Duration d) { return absl::ToDoubleSeconds(d); }

// The part of a session id that places it on the router's ring (inference.proto, Fork).
std::string_view RoutingKey(std::string_view session_id) {
  return session_id.substr(0, session_id.find('#'));
}

}  // namespace

int32_t SampledRowsFor(const GeneratorOptions& options, int32_t max_seqs,
                       int32_t max_batch_tokens) {
  const int64_t drafts = std::min<int64_t>(
      int64_t{options.speculate_tokens} * std::min(options.speculate_max_seqs, max_seqs),
      max_batch_tokens);
  const int64_t scored =
      std::clamp<int64_t>(options.prompt_logprob_rows, 0, int64_t{max_batch_tokens});
  return static_cast<int32_t>(max_seqs + drafts + scored);
}

absl::StatusOr<std::unique_ptr<Generator>> Generator::Create(
    std::unique_ptr<ModelRunner> runner, const tokenizer::Tokenizer* tokenizer,
    const GeneratorOptions& options, std::function<void(const StepRecord&)> on_step) {
  if (runner == nullptr) return absl::InvalidArgumentError("generator: no model runner");
  Limits limits;
  limits.vocab_size = runner->vocab_size();
  limits.max_context_tokens = runner->max_context_tokens();
  limits.block_size_tokens = runner->block_size_tokens();
  limits.num_kv_blocks = runner->num_kv_blocks();
  limits.num_host_kv_blocks = runner->num_host_kv_blocks();
  auto clamp = [](int32_t wanted, int32_t cap) { return wanted > 0 ? std::min(wanted, cap) : cap; };
  limits.max_batch_tokens = clamp(options.max_batch_tokens, runner->max_batch_tokens());
  limits.max_seqs = clamp(options.max_seqs, runner->max_seqs());
  if (options.speculate_tokens < 0 || options.speculate_ngram_min < 1 ||
      options.speculate_ngram_max < options.speculate_ngram_min || options.speculate_max_seqs < 0) {
    return absl::InvalidArgumentError(
        "generator: speculate_tokens and speculate_max_seqs must be >= 0, and 1 <= "
        "speculate_ngram_min <= speculate_ngram_max");
  }
  limits.max_extra_rows = std::max(0, runner->max_sampled_rows() - limits.max_seqs);
  if (options.speculate_tokens > 0) limits.max_drafts = limits.max_extra_rows;
  if (limits.vocab_size <= 0 || limits.max_context_tokens <= 0 || limits.num_kv_blocks <= 0 ||
      limits.max_batch_tokens <= 0 || limits.max_seqs <= 0) {
    return absl::InvalidArgumentError("generator: the model runner reports a non-positive limit");
  }
  if (options.max_jobs <= 0 || options.max_pending_tokens <= 0 || options.max_sessions <= 0 ||
      options.session_ttl <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "generator: max_jobs, max_pending_tokens, max_sessions and session_ttl must be positive");
  }
  if (options.max_adapters < 0) {
    return absl::InvalidArgumentError("generator: max_adapters must be >= 0");
  }
  // By default room for every adapter given (the table keeps room for its slots' too).
  const std::vector<std::shared_ptr<const model::PreparedLora>> in_slots = runner->lora_adapters();
  const auto given =
      static_cast<int32_t>(options.lora_adapters.size()) +
      static_cast<int32_t>(std::count_if(in_slots.begin(), in_slots.end(),
                                         [](const auto& adapter) { return adapter != nullptr; }));
  auto adapters = std::make_unique<AdapterTable>(
      runner.get(), options.max_adapters > 0 ? options.max_adapters : given);
  for (const auto& adapter : options.lora_adapters) {
    if (adapter == nullptr) return absl::InvalidArgumentError("generator: a null LoRA adapter");
    RS_ASSIGN_OR_RETURN(std::shared_ptr<const model::PreparedLora> prepared,
                        runner->PrepareLoraAdapter(*adapter));
    RS_RETURN_IF_ERROR(adapters->Add(adapter->name, std::move(prepared)));
  }
  // The table holds them prepared; the options keep no second copy.
  GeneratorOptions kept = options;
  kept.lora_adapters.clear();
  return std::unique_ptr<Generator>(new Generator(std::move(runner), std::move(adapters), tokenizer,
                                                  kept, limits, std::move(on_step)));
}

Generator::Generator(std::unique_ptr<ModelRunner> runner, std::unique_ptr<AdapterTable> adapters,
                     const tokenizer::Tokenizer* tokenizer, const GeneratorOptions& options,
                     const Limits& limits, std::function<void(const StepRecord&)> on_step)
    : options_(options),
      limits_(limits),
      tokenizer_(tokenizer),
      on_step_(std::move(on_step)),
      runner_(std::move(runner)),
      sessions_(options.max_sessions, options.session_ttl),
      inbox_(std::make_shared<Inbox>()) {
  eos_ids_ = options.eos_token_ids;
  if (eos_ids_.empty() && tokenizer_ != nullptr) eos_ids_ = tokenizer_->EndOfGenerationIds();
  if (tokenizer_ != nullptr) {
    token_trie_ = std::make_unique<grammar::TokenTrie>(tokenizer_->ReplyBytesOfTokens());
  }
  kv_ = std::make_unique<kvcache::KvCacheManager>(
      kvcache::KvCacheOptions{.num_blocks = limits_.num_kv_blocks,
                              .block_size_tokens = limits_.block_size_tokens,
                              .num_host_blocks = limits_.num_host_kv_blocks});
  scheduler_ =
      std::make_unique<Scheduler>(kv_.get(),
                                  SchedulerLimits{.max_batch_tokens = limits_.max_batch_tokens,
                                                  .max_seqs = limits_.max_seqs,
                                                  .max_drafts = limits_.max_drafts,
                                                  .max_extra_rows = limits_.max_extra_rows},
                                  [this] { return sessions_.ReleaseOneIdlePin(); });
  const int32_t sampling_threads =
      options_.sampling_threads > 0
          ? options_.sampling_threads
          : std::clamp(static_cast<int32_t>(std::thread::hardware_concurrency()), 1, 8);
  if (sampling_threads > 1) {
    sampling_pool_ = std::make_unique<kernels::cpu::ThreadPool>(sampling_threads);
  }
  adapters_ = std::move(adapters);
  PublishAdapterNames();
  // A few finders, so that one slow read (a large adapter, a network volume) does not hold
  // up the others; each name is found by one of them.
  for (int32_t i = 0; options_.find_adapter && i < kFinderThreads; ++i) {
    finder_threads_.emplace_back([this] { FindAdapters(); });
  }
  PublishStats();
  thread_ = std::thread([this] { Loop(); });
}

Generator::~Generator() { Shutdown(); }

void Generator::Shutdown() {
  std::lock_guard lock(shutdown_mu_);
  if (!thread_.joinable()) return;
  draining_.store(true);
  {
    std::lock_guard inbox_lock(inbox_->mu);
    inbox_->stop = true;
  }
  inbox_->wake.notify_all();
  thread_.join();
  {
    std::lock_guard finder_lock(finder_.mu);
    finder_.stop = true;
  }
  finder_.wake.notify_all();
  for (std::thread& finder : finder_threads_) finder.join();
  finder_threads_.clear();
}

absl::StatusOr<JobHandle> Generator::Submit(JobRequest request) {
  RS_RETURN_IF_ERROR(Validate(request));
  // Counted before draining_ is read: Drain sets draining_ and then waits for no open job,
  // so a job that finds draining_ unset is one that Drain waits for.
  if (num_open_jobs_.fetch_add(1) >= options_.max_jobs) {
    CloseOpenJob();
    return absl::ResourceExhaustedError(
        absl::StrCat("the worker's queue is full (", options_.max_jobs, " jobs); retry later"));
  }
  if (draining_.load()) {
    CloseOpenJob();
    return absl::UnavailableError("the worker is draining; retry elsewhere");
  }
  num_submitted_.fetch_add(1);
  auto job = std::make_unique<Job>();
  job->id = next_job_id_.fetch_add(1);
  job->request = std::move(request);
  job->submitted = absl::Now();
  std::weak_ptr<Inbox> weak_inbox = inbox_;
  const uint64_t id = job->id;
  job->channel = std::make_shared<JobChannel>(id, options_.max_pending_tokens, [weak_inbox, id] {
    if (std::shared_ptr<Inbox> inbox = weak_inbox.lock()) {
      {
        std::lock_guard lock(inbox->mu);
        inbox->cancelled.push_back(id);
      }
      inbox->wake.notify_all();
    }
  });
  JobHandle handle(job->channel);
  bool stopped = false;
  {
    std::lock_guard lock(inbox_->mu);
    stopped = inbox_->stop;
    if (!stopped) inbox_->submitted.push_back(std::move(job));
  }
  if (stopped) {
    CloseOpenJob();
    return absl::UnavailableError("the worker is shutting down; retry elsewhere");
  }
  inbox_->wake.notify_all();
  return handle;
}

absl::Status Generator::RunOnEngine(std::function<void()> task) {
  auto done = std::make_shared<std::promise<void>>();
  std::future<void> finished = done->get_future();
  {
    std::lock_guard lock(inbox_->mu);
    if (inbox_->stop) return absl::UnavailableError("the worker is shutting down");
    inbox_->tasks.push_back([this, task = std::move(task), done] {
      task();
      after_publish_.push_back([done] { done->set_value(); });
    });
  }
  inbox_->wake.notify_all();
  finished.wait();
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> Generator::Fork(std::string_view session_id, int32_t n) {
  absl::StatusOr<std::vector<std::string>> result;
  RS_RETURN_IF_ERROR(RunOnEngine([&] { result = ForkOnEngine(session_id, n); }));
  return result;
}

absl::StatusOr<int32_t> Generator::CloseSession(std::string_view session_id) {
  absl::StatusOr<int32_t> result;
  RS_RETURN_IF_ERROR(RunOnEngine([&] { result = CloseOnEngine(session_id); }));
  return result;
}

GeneratorStats Generator::Stats() const {
  std::lock_guard lock(stats_mu_);
  GeneratorStats stats = published_stats_;
  stats.num_jobs_submitted = num_submitted_.load();
  return stats;
}

void Generator::CloseOpenJob() {
  {
    // Under the lock Drain waits with, so its check and this decrement cannot interleave.
    std::lock_guard lock(stats_mu_);
    num_open_jobs_.fetch_sub(1);
  }
  idle_.notify_all();
}

bool Generator::Drain(absl::Duration timeout) {
  draining_.store(true);
  std::unique_lock lock(stats_mu_);
  auto idle = [&] { return num_open_jobs_.load() == 0; };
  if (timeout == absl::InfiniteDuration()) {
    idle_.wait(lock, idle);
    return true;
  }
  return idle_.wait_for(lock, absl::ToChronoNanoseconds(timeout), idle);
}

// ---- Engine thread ----

void Generator::Loop() {
  bool stalled = false;  // the last step found nothing it could run
  while (true) {
    std::vector<std::unique_ptr<Job>> submitted;
    std::vector<uint64_t> cancelled;
    std::vector<std::function<void()>> tasks;
    bool stop = false;
    {
      std::unique_lock lock(inbox_->mu);
      auto has_input = [&] {
        return inbox_->stop || !inbox_->submitted.empty() || !inbox_->cancelled.empty() ||
               !inbox_->tasks.empty();
      };
      // Jobs waiting for an adapter being found make no work until the finder's result
      // arrives, which wakes the loop.
      const bool busy =
          scheduler_->num_running() + scheduler_->num_waiting() > 0 ||
          AnyWaiter([&](const Job& job) { return adapters_->Contains(job.request.adapter); });
      if (busy && stalled) {
        inbox_->wake.wait_for(lock, std::chrono::milliseconds(10), has_input);
      } else if (!busy) {
        const absl::Time expiry = sessions_.NextExpiry();
        if (expiry == absl::InfiniteFuture()) {
          inbox_->wake.wait(lock, has_input);
        } else {
          inbox_->wake.wait_for(
              lock,
              absl::ToChronoNanoseconds(std::max(expiry - absl::Now(), absl::ZeroDuration()) +
                                        absl::Milliseconds(1)),
              has_input);
        }
      }
      submitted.swap(inbox_->submitted);
      cancelled.swap(inbox_->cancelled);
      tasks.swap(inbox_->tasks);
      stop = inbox_->stop;
    }
    for (uint64_t id : cancelled) CancelJob(id, absl::CancelledError("cancelled by the client"));
    // Slots the last step's ended jobs left idle go to the jobs waiting longest first.
    AdmitAdapterWaiters();
    for (std::unique_ptr<Job>& job : submitted) StartJob(std::move(job));
    for (std::function<void()>& task : tasks) task();
    sessions_.ExpireIdle(absl::Now());
    if (stop) {
      std::vector<uint64_t> ids;
      for (const auto& [id, job] : jobs_) ids.push_back(id);
      for (uint64_t id : ids) {
        CancelJob(id, absl::UnavailableError("the worker is shutting down; retry elsewhere"));
      }
      PublishAndDeliver();
      return;
    }
    stalled = scheduler_->num_running() + scheduler_->num_waiting() > 0 && !Step();
    PublishAndDeliver();
  }
}

bool Generator::Step() {
  const absl::Time start = absl::Now();
  if (limits_.max_drafts > 0) ProposeDrafts();
  StepPlan plan = scheduler_->Schedule();
  if (plan.empty()) {
    // A schedule that admitted and then preempted may still have copied blocks out to the
    // host tier, which now says it holds them.
    if (!plan.copies.empty()) runner_->CopyBlocks(plan.copies);
    return false;
  }
  for (const auto& [seq, cached] : plan.first_admissions) {
    Job& job = *jobs_.at(seq->job_id);
    job.cached_tokens = cached;
    engine_stats_.num_cached_tokens += cached;
  }
  std::vector<model::SequenceChunk> chunks;
  chunks.reserve(plan.chunks.size());
  for (const ScheduledChunk& c : plan.chunks) {
    Job& job = *jobs_.at(c.seq->job_id);
    if (!job.first_scheduled) job.first_scheduled = start;
    chunks.push_back({.tokens = std::span(c.seq->tokens).subspan(c.start, c.num_tokens),
                      .start_position = c.start,
                      .block_table = kv_->BlockTable(c.seq->seq_id),
                      .sample = c.sample,
                      .num_drafts = c.num_drafts,
                      .adapter = c.seq->adapter,
                      .num_scored = c.num_scored});
  }
  // Every sampled row's penalties and chain go to the device with the pass, so only its
  // token comes back; the logits cross the bus only for the rows the host must see
  // (logprobs, and penalties beyond the pass's room).
  sampled_chunks_.clear();
  scored_chunks_.clear();
  chains_.Clear(static_cast<size_t>(runner_->max_penalty_entries()));
  for (const ScheduledChunk& c : plan.chunks) {
    if (c.num_scored == 0 && !c.sample) continue;  // a prefill chunk: no rows
    Job* job = jobs_.at(c.seq->job_id).get();
    if (c.num_scored > 0) {
      // The chunk's rows are its last positions: the scored ones, then the sampled one.
      const int32_t first = c.start + c.num_tokens - (c.sample ? 1 : 0) - c.num_scored;
      scored_chunks_.push_back({.job = job, .first_row = chains_.size(), .num_rows = c.num_scored});
      for (int32_t p = first; p < first + c.num_scored; ++p) {
        chains_.AddScored(c.seq->tokens[static_cast<size_t>(p) + 1]);
      }
    }
    if (!c.sample) continue;
    sampled_chunks_.push_back(
        {.job = job, .first_row = chains_.size(), .num_drafts = c.num_drafts});
    chains_.Add(*job->sampler);
    if (job->request.embed) chains_.WantHidden();
    for (int32_t ahead = 1; ahead <= c.num_drafts; ++ahead) {
      chains_.Add(*job->sampler, ahead, c.seq->draft[static_cast<size_t>(ahead - 1)]);
    }
  }
  const absl::Time forward_start = absl::Now();
  if (!plan.copies.empty()) runner_->CopyBlocks(plan.copies);
  const absl::StatusOr<model::SampledPass> pass = runner_->ForwardSampled(chunks, chains_.view());
  const double forward_seconds = Seconds(absl::Now() - forward_start);
  if (!pass.ok()) {
    for (const ScheduledChunk& c : plan.chunks) {
      CancelJob(c.seq->job_id, absl::InternalError(
                                   absl::StrCat("forward pass failed: ", pass.status().message())));
    }
    return true;
  }
  scheduler_->Commit(plan);
  DeliverScored(*pass);
  StepRecord record;
  record.num_accepted = FinishSamples(*pass);
  record.start = start;
  record.kv_used_blocks = kv_->Stats().num_used_blocks;
  record.num_seqs = static_cast<int32_t>(plan.chunks.size());
  record.num_tokens = plan.num_tokens;
  record.num_decode_seqs = plan.num_decode_seqs;
  record.num_preempted = plan.num_preempted;
  record.num_drafts = plan.num_drafts;
  record.num_sampled = static_cast<int32_t>(sampled_chunks_.size()) + record.num_accepted;
  record.forward_seconds = forward_seconds;
  record.step_seconds = Seconds(absl::Now() - start);
  ++engine_stats_.num_steps;
  engine_stats_.num_computed_tokens += plan.num_tokens;
  engine_stats_.num_draft_tokens += plan.num_drafts;
  engine_stats_.num_accepted_tokens += record.num_accepted;
  engine_stats_.step_seconds += record.step_seconds;
  engine_stats_.forward_seconds += record.forward_seconds;
  engine_stats_.last_step = record;
  if (on_step_) on_step_(record);
  const absl::Duration rest = options_.min_step_time - (absl::Now() - start);
  if (rest > absl::ZeroDuration()) absl::SleepFor(rest);
  return true;
}

void Generator::ProposeDrafts() {
  const NgramDraftOptions lookup{.max_tokens = options_.speculate_tokens,
                                 .max_ngram = options_.speculate_ngram_max,
                                 .min_ngram = options_.speculate_ngram_min};
  const bool propose =
      static_cast<int32_t>(scheduler_->num_running()) <= options_.speculate_max_seqs;
  // Only running sequences decode (a waiting one holds no blocks, and Scheduler::Preempt
  // drops the drafts of one that stops running), so the waiting queue, which may hold
  // thousands of jobs, is not walked.
  for (SchedSeq* running : scheduler_->running()) {
    SchedSeq& seq = *running;
    seq.draft.clear();
    if (!propose) continue;
    const auto it = jobs_.find(seq.job_id);
    if (it == jobs_.end()) continue;
    const Job* job = it->second.get();
    if (job->sampler && job->sampler->constrained()) continue;  // each mask needs the last pick
    const auto num_tokens = static_cast<int32_t>(seq.tokens.size());
    // Decoding: only the last token's K/V is left to compute.
    if (!job->registered || !seq.lease.active() ||
        kv_->NumComputedTokens(seq.seq_id) != num_tokens - 1) {
      continue;
    }
    // A step generates at most 1 + drafts tokens; none past max_tokens or the context.
    const int32_t room =
        std::min(job->max_new_tokens - job->generated, limits_.max_context_tokens - num_tokens + 1);
    NgramDraftOptions options = lookup;
    options.max_tokens = std::min({options.max_tokens, job->draft_limit, room - 1});
    ProposeNgramDraft(seq.tokens, options, &seq.draft);
  }
}

void Generator::DeliverScored(const model::SampledPass& pass) {
  for (const ScoredChunk& c : scored_chunks_) {
    JobEvent event;
    event.prompt_logprobs.reserve(static_cast<size_t>(c.num_rows));
    for (int32_t i = 0; i < c.num_rows; ++i) {
      event.prompt_logprobs.push_back(chains_.Scored(pass, c.first_row + static_cast<size_t>(i),
                                                     *c.job->request.prompt_logprobs));
    }
    c.job->scored += c.num_rows;
    // Scored entries do not count against the reader's backlog, so the push never fails.
    const bool pushed = c.job->channel->Push(std::move(event));
    RS_CHECK(pushed);
  }
}

// Rows of drafts that are rejected cost a step as much as accepted ones, so each job drafts
// as far as its drafts have lately been right: twice as far after a step that accepted them
// all, one past the accepted run after one that did not.
void Generator::AdaptDraftLimit(Job& job, int32_t num_drafts, int32_t num_accepted) {
  job.draft_limit = num_accepted == num_drafts
                        ? std::min(options_.speculate_tokens, 2 * job.draft_limit)
                        : std::clamp(num_accepted + 1, 1, options_.speculate_tokens);
}

int32_t Generator::FinishSamples(const model::SampledPass& pass) {
  const auto vocab = static_cast<size_t>(limits_.vocab_size);
  const std::span<const SampledChunk> chunks = sampled_chunks_;
  sampled_.resize(chunks.size());
  auto finish_first = [&](size_t k) {
    sampled_[k] = chains_.Finish(*chunks[k].job->sampler, pass, chunks[k].first_row, vocab);
  };
  // The first rows with host work (penalties left to the host re-run the chain over the
  // vocabulary) in parallel, each job's on one thread.
  host_chunks_.clear();
  for (size_t k = 0; k < chunks.size(); ++k) {
    if (chains_.has_host_work(chunks[k].first_row)) {
      host_chunks_.push_back(k);
    } else {
      finish_first(k);
    }
  }
  auto finish = [&](int64_t begin, int64_t end) {
    for (auto i = static_cast<size_t>(begin); i < static_cast<size_t>(end); ++i) {
      finish_first(host_chunks_[i]);
    }
  };
  const auto host_rows = static_cast<int64_t>(host_chunks_.size());
  if (sampling_pool_ != nullptr && host_rows > 1) {
    sampling_pool_->ParallelFor(host_rows, finish);
  } else {
    finish(0, host_rows);
  }
  // In row order: delivery, stop checks and finishing touch shared engine state. A row
  // after the first counts only while every draft before it was accepted: its logits
  // follow those drafts.
  int32_t accepted = 0;
  for (size_t k = 0; k < chunks.size(); ++k) {
    const SampledChunk& c = chunks[k];
    SampledToken token = std::move(sampled_[k]);
    if (c.job->request.embed) c.job->embedding = chains_.Hidden(pass, c.first_row);
    for (int32_t i = 0;; ++i) {
      const bool is_draft = i < c.num_drafts && token.id == c.job->seq.draft[i];
      accepted += is_draft ? 1 : 0;
      if (!HandleSample(*c.job, token, is_draft)) break;  // the job ended
      if (!is_draft) {
        if (c.num_drafts > 0) {
          AdaptDraftLimit(*c.job, c.num_drafts, i);
          scheduler_->ReleaseDraftBlocks(&c.job->seq);
        }
        break;
      }
      token = chains_.Finish(*c.job->sampler, pass, c.first_row + i + 1, vocab);
    }
  }
  return accepted;
}

absl::StatusOr<std::vector<std::string>> Generator::ForkOnEngine(std::string_view session_id,
                                                                 int32_t n) {
  if (n < 1 || n > kMaxForks) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_forks must be in [1, ", kMaxForks, "] (got ", n, ")"));
  }
  // Refused before anything is made: forks whose ids pass the limit could never be named.
  if (RoutingKey(session_id).size() + kForkSuffixBytes > kMaxSessionIdBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("session_id: a session whose id (up to its first '#') is longer than ",
                     kMaxSessionIdBytes - kForkSuffixBytes,
                     " bytes cannot be forked: its forks' ids would be "
                     "longer than ",
                     kMaxSessionIdBytes, " bytes"));
  }
  Session* parent = sessions_.Find(session_id);
  if (parent == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("session_id: no session '", std::string(session_id), "' to fork"));
  }
  if (parent->busy) {
    return absl::FailedPreconditionError(absl::StrCat("session_id: session '",
                                                      std::string(session_id),
                                                      "' is busy with a request; fork it after"));
  }
  if (sessions_.size() + n > options_.max_sessions) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "forking ", n, " sessions would pass --max-sessions (", options_.max_sessions, ")"));
  }
  const absl::Time now = absl::Now();
  sessions_.Touch(parent, now);  // the parent is the newest, so making room never closes it
  parent->busy = true;
  std::vector<std::string> ids;
  for (int32_t i = 0; i < n; ++i) {
    std::string id;
    do {
      id = absl::StrCat(std::string(RoutingKey(session_id)), "#f", next_fork_suffix_++);
    } while (sessions_.Find(id) != nullptr);
    absl::StatusOr<Session*> child = sessions_.Create(id, now);
    if (!child.ok()) {
      parent->busy = false;
      return child.status();
    }
    (*child)->tokens = parent->tokens;
    (*child)->adapter_key = parent->adapter_key;
    if (parent->pin().active()) {
      const kvcache::SeqId child_seq = next_seq_id_++;
      kv_->Fork(parent->pin().seq_id(), child_seq);
      sessions_.SetPin(*child, kvcache::SequenceLease(kv_.get(), child_seq));
    }
    ids.push_back(std::move(id));
  }
  parent->busy = false;
  return ids;
}

absl::StatusOr<int32_t> Generator::CloseOnEngine(std::string_view session_id) {
  Session* session = sessions_.Find(session_id);
  if (session == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("session_id: no session '", std::string(session_id), "'"));
  }
  if (session->busy) {
    return absl::FailedPreconditionError(
        absl::StrCat("session_id: session '", std::string(session_id), "' is busy with a request"));
  }
  const auto num_tokens = static_cast<int32_t>(session->tokens.size());
  sessions_.Close(session);
  return num_tokens;
}

void Generator::PublishAndDeliver() {
  PublishStats();
  std::vector<std::function<void()>> pending;
  pending.swap(after_publish_);
  for (std::function<void()>& deliver : pending) deliver();
}

void Generator::PublishStats() {
  GeneratorStats stats = engine_stats_;
  stats.kv = kv_->Stats();
  stats.num_running = static_cast<int32_t>(scheduler_->num_running());
  stats.num_waiting_for_adapter = static_cast<int32_t>(adapter_waiters_.size());
  stats.num_waiting =
      static_cast<int32_t>(scheduler_->num_waiting()) + stats.num_waiting_for_adapter;
  stats.num_adapter_swaps = adapters_->num_swaps();
  stats.adapter_swap_seconds = adapters_->swap_seconds();
  stats.num_adapters_found = num_adapters_found_;
  stats.num_adapter_evictions = adapters_->num_evictions();
  stats.num_sessions = sessions_.size();
  stats.num_pinned_sessions = sessions_.num_pinned();
  stats.sessions = sessions_.counters();
  stats.num_preemptions = scheduler_->num_preemptions();
  std::lock_guard lock(stats_mu_);
  published_stats_ = stats;
}

}  // namespace ringserve::engine
