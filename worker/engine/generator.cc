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
#include "worker/engine/stop_matcher.h"
#include "worker/tokenizer/stream_decoder.h"

namespace ringserve::engine {
namespace {

constexpr int32_t kMaxStopStrings = 16;
constexpr size_t kMaxStopStringBytes = 256;
constexpr int32_t kMaxStopTokenIds = 64;
constexpr int32_t kMaxForks = 64;

double Seconds(absl::Duration d) { return absl::ToDoubleSeconds(d); }

// The part of a session id that places it on the router's ring (inference.proto, Fork).
std::string_view RoutingKey(std::string_view session_id) {
  return session_id.substr(0, session_id.find('#'));
}

}  // namespace

struct Generator::Job {
  uint64_t id = 0;
  JobRequest request;
  std::shared_ptr<JobChannel> channel;
  absl::Time submitted;
  std::optional<absl::Time> first_scheduled;
  std::optional<absl::Time> first_token;
  SchedSeq seq;
  bool registered = false;  // known to the scheduler
  Session* session = nullptr;
  std::optional<Sampler> sampler;
  std::optional<tokenizer::StreamDecoder> decoder;
  std::optional<StopMatcher> stop;
  int32_t prompt_tokens = 0;
  int32_t cached_tokens = 0;
  int32_t max_new_tokens = 0;
  int32_t generated = 0;
};

absl::StatusOr<std::unique_ptr<Generator>> Generator::Create(
    std::unique_ptr<ModelRunner> runner, const tokenizer::Tokenizer* tokenizer,
    const GeneratorOptions& options, std::function<void(const StepRecord&)> on_step) {
  if (runner == nullptr) return absl::InvalidArgumentError("generator: no model runner");
  Limits limits;
  limits.vocab_size = runner->vocab_size();
  limits.max_context_tokens = runner->max_context_tokens();
  limits.block_size_tokens = runner->block_size_tokens();
  limits.num_kv_blocks = runner->num_kv_blocks();
  auto clamp = [](int32_t wanted, int32_t cap) { return wanted > 0 ? std::min(wanted, cap) : cap; };
  limits.max_batch_tokens = clamp(options.max_batch_tokens, runner->max_batch_tokens());
  limits.max_seqs = clamp(options.max_seqs, runner->max_seqs());
  if (limits.vocab_size <= 0 || limits.max_context_tokens <= 0 || limits.num_kv_blocks <= 0 ||
      limits.max_batch_tokens <= 0 || limits.max_seqs <= 0) {
    return absl::InvalidArgumentError("generator: the model runner reports a non-positive limit");
  }
  if (options.max_jobs <= 0 || options.max_pending_tokens <= 0 || options.max_sessions <= 0 ||
      options.session_ttl <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "generator: max_jobs, max_pending_tokens, max_sessions and session_ttl must be positive");
  }
  return std::unique_ptr<Generator>(
      new Generator(std::move(runner), tokenizer, options, limits, std::move(on_step)));
}

Generator::Generator(std::unique_ptr<ModelRunner> runner, const tokenizer::Tokenizer* tokenizer,
                     const GeneratorOptions& options, const Limits& limits,
                     std::function<void(const StepRecord&)> on_step)
    : options_(options),
      limits_(limits),
      tokenizer_(tokenizer),
      on_step_(std::move(on_step)),
      runner_(std::move(runner)),
      sessions_(options.max_sessions, options.session_ttl),
      inbox_(std::make_shared<Inbox>()) {
  eos_ids_ = options.eos_token_ids;
  if (eos_ids_.empty() && tokenizer_ != nullptr) eos_ids_ = tokenizer_->EndOfGenerationIds();
  kv_ = std::make_unique<kvcache::KvCacheManager>(kvcache::KvCacheOptions{
      .num_blocks = limits_.num_kv_blocks, .block_size_tokens = limits_.block_size_tokens});
  scheduler_ = std::make_unique<Scheduler>(
      kv_.get(), SchedulerLimits{limits_.max_batch_tokens, limits_.max_seqs},
      [this] { return sessions_.ReleaseOneIdlePin(); });
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
}

absl::Status Generator::Validate(const JobRequest& r) const {
  if (r.tokens.empty() && !r.append) {
    return absl::InvalidArgumentError("input: empty (a new context needs at least one token)");
  }
  for (int32_t id : r.tokens) {
    if (id < 0 || id >= limits_.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tokens: id ", id, " is outside the vocabulary [0, ", limits_.vocab_size, ")"));
    }
  }
  RS_RETURN_IF_ERROR(ValidateSamplingParams(r.sampling));
  if (r.max_tokens.has_value() && *r.max_tokens <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("stop.max_tokens: must be >= 1 (got ", *r.max_tokens, ")"));
  }
  if (static_cast<int32_t>(r.tokens.size()) >= limits_.max_context_tokens) {
    return absl::InvalidArgumentError(absl::StrCat(
        "input: ", r.tokens.size(), " tokens leave no room to generate in the context of ",
        limits_.max_context_tokens, " tokens"));
  }
  if (r.max_tokens.has_value() && !r.append &&
      static_cast<int64_t>(r.tokens.size()) + *r.max_tokens > limits_.max_context_tokens) {
    return absl::InvalidArgumentError(
        absl::StrCat("stop.max_tokens: ", r.tokens.size(), " input tokens + max_tokens ",
                     *r.max_tokens, " exceed the context length ", limits_.max_context_tokens));
  }
  if (static_cast<int32_t>(r.stop_strings.size()) > kMaxStopStrings) {
    return absl::InvalidArgumentError(
        absl::StrCat("stop.stop: at most ", kMaxStopStrings, " strings"));
  }
  for (const std::string& s : r.stop_strings) {
    if (s.empty() || s.size() > kMaxStopStringBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("stop.stop: each string must be 1..", kMaxStopStringBytes, " bytes"));
    }
  }
  if (!r.stop_strings.empty() && tokenizer_ == nullptr) {
    return absl::InvalidArgumentError(
        "stop.stop: stop strings need a tokenizer, and this model has none");
  }
  if (static_cast<int32_t>(r.stop_token_ids.size()) > kMaxStopTokenIds) {
    return absl::InvalidArgumentError(
        absl::StrCat("stop.stop_token_ids: at most ", kMaxStopTokenIds));
  }
  for (int32_t id : r.stop_token_ids) {
    if (id < 0 || id >= limits_.vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrCat("stop.stop_token_ids: id ", id, " is outside the vocabulary"));
    }
  }
  if (r.append && r.session_id.empty()) {
    return absl::InvalidArgumentError("append: needs a session_id");
  }
  if (r.expected_history_tokens.has_value() && *r.expected_history_tokens < 0) {
    return absl::InvalidArgumentError(absl::StrCat("expected_history_tokens: must be >= 0 (got ",
                                                   *r.expected_history_tokens, ")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<JobHandle> Generator::Submit(JobRequest request) {
  RS_RETURN_IF_ERROR(Validate(request));
  if (draining_.load()) return absl::UnavailableError("the worker is draining; retry elsewhere");
  if (num_open_jobs_.fetch_add(1) >= options_.max_jobs) {
    num_open_jobs_.fetch_sub(1);
    return absl::ResourceExhaustedError(
        absl::StrCat("the worker's queue is full (", options_.max_jobs, " jobs); retry later"));
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
    num_open_jobs_.fetch_sub(1);
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
      const bool busy = scheduler_->num_running() + scheduler_->num_waiting() > 0;
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

void Generator::StartJob(std::unique_ptr<Job> job_ptr) {
  Job& job = *job_ptr;
  const uint64_t id = job.id;
  jobs_.emplace(id, std::move(job_ptr));
  if (job.channel->cancel_requested()) {
    FinishJob(job, absl::CancelledError("cancelled by the client"));
    return;
  }
  absl::Status prepared = PrepareJob(job);
  if (!prepared.ok()) FinishJob(job, std::move(prepared));
}

absl::Status Generator::PrepareJob(Job& job) {
  const JobRequest& r = job.request;
  const absl::Time now = absl::Now();
  std::vector<int32_t> context;
  Session* session = nullptr;
  if (!r.session_id.empty()) {
    session = sessions_.Find(r.session_id);
    if (session != nullptr && session->busy) {
      return absl::FailedPreconditionError(
          absl::StrCat("session_id: session '", r.session_id, "' is busy with another request"));
    }
    if (r.append) {
      if (session == nullptr) {
        return absl::NotFoundError(absl::StrCat("session_id: no session '", r.session_id,
                                                "' to append to (expired, closed or never made)"));
      }
      if (r.expected_history_tokens.has_value() &&
          *r.expected_history_tokens != static_cast<int32_t>(session->tokens.size())) {
        return absl::FailedPreconditionError(absl::StrCat(
            "expected_history_tokens: session '", r.session_id, "' holds ", session->tokens.size(),
            " tokens, not ", *r.expected_history_tokens, "; resend the whole context"));
      }
      context = session->tokens;
    }
  }
  context.insert(context.end(), r.tokens.begin(), r.tokens.end());
  const auto prompt = static_cast<int32_t>(context.size());
  if (prompt == 0)
    return absl::InvalidArgumentError("input: empty, and the session holds no history");
  if (prompt >= limits_.max_context_tokens) {
    return absl::InvalidArgumentError(absl::StrCat(
        "input: the context of ", prompt, " tokens leaves no room to generate (context length ",
        limits_.max_context_tokens, ")"));
  }
  const int32_t room = limits_.max_context_tokens - prompt;
  if (r.max_tokens.has_value() && *r.max_tokens > room) {
    return absl::InvalidArgumentError(
        absl::StrCat("stop.max_tokens: ", *r.max_tokens, " exceeds the ", room,
                     " tokens left in the context after ", prompt, " tokens of input"));
  }
  job.max_new_tokens = r.max_tokens.value_or(room);
  if (!kv_->CanEverFit(static_cast<int64_t>(prompt) + job.max_new_tokens)) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the request needs K/V for ", prompt + job.max_new_tokens,
        " tokens, more than the whole pool holds (",
        int64_t{limits_.num_kv_blocks} * limits_.block_size_tokens, " tokens); lower max_tokens"));
  }
  if (session == nullptr && !r.session_id.empty()) {
    RS_ASSIGN_OR_RETURN(session, sessions_.Create(r.session_id, now));
  }

  job.prompt_tokens = prompt;
  job.seq.job_id = job.id;
  job.seq.priority = r.priority;
  job.seq.arrival = next_arrival_++;
  job.sampler.emplace(r.sampling, context);
  if (tokenizer_ != nullptr) job.decoder.emplace(*tokenizer_, context.back());
  job.stop.emplace(r.stop_strings);

  // A session whose history is a prefix of the context continues its pinned sequence.
  const bool continues_pin =
      session != nullptr && session->pin().active() && session->tokens.size() <= context.size() &&
      std::equal(session->tokens.begin(), session->tokens.end(), context.begin());
  if (continues_pin) {
    const kvcache::SeqId seq_id = session->pin().seq_id();
    kv_->AppendTokens(seq_id, std::span(context).subspan(session->tokens.size()));
    if (kv_->NumComputedTokens(seq_id) >= prompt) sessions_.TakePin(session);  // nothing to run
  }
  if (session != nullptr && !continues_pin) sessions_.TakePin(session);
  job.seq.tokens = std::move(context);
  if (session != nullptr && session->pin().active()) {
    job.seq.seq_id = session->pin().seq_id();
    job.seq.lease = sessions_.TakePin(session);
    job.cached_tokens = kv_->NumComputedTokens(job.seq.seq_id);
    scheduler_->AddRunning(&job.seq);
  } else {
    job.seq.seq_id = next_seq_id_++;
    scheduler_->Enqueue(&job.seq);
  }
  job.registered = true;
  if (session != nullptr) {
    session->busy = true;
    sessions_.Touch(session, now);
    job.session = session;
  }
  engine_stats_.num_prompt_tokens += prompt;
  engine_stats_.num_cached_tokens += job.cached_tokens;
  return absl::OkStatus();
}

bool Generator::Step() {
  const absl::Time start = absl::Now();
  StepPlan plan = scheduler_->Schedule();
  if (plan.empty()) return false;
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
                      .sample = c.sample});
  }
  const absl::Time forward_start = absl::Now();
  if (!plan.copies.empty()) runner_->CopyBlocks(plan.copies);
  const absl::Status forward = runner_->Forward(chunks, &logits_);
  const double forward_seconds = Seconds(absl::Now() - forward_start);
  if (!forward.ok()) {
    for (const ScheduledChunk& c : plan.chunks) {
      CancelJob(c.seq->job_id,
                absl::InternalError(absl::StrCat("forward pass failed: ", forward.message())));
    }
    return true;
  }
  scheduler_->Commit(plan);
  size_t row = 0;
  const auto vocab = static_cast<size_t>(limits_.vocab_size);
  for (const ScheduledChunk& c : plan.chunks) {
    if (!c.sample) continue;
    Job& job = *jobs_.at(c.seq->job_id);
    HandleSample(job, std::span<const float>(logits_).subspan(row * vocab, vocab));
    ++row;
  }
  StepRecord record;
  record.start = start;
  record.kv_used_blocks = kv_->Stats().num_used_blocks;
  record.num_seqs = static_cast<int32_t>(plan.chunks.size());
  record.num_tokens = plan.num_tokens;
  record.num_decode_seqs = plan.num_decode_seqs;
  record.num_preempted = plan.num_preempted;
  record.num_sampled = static_cast<int32_t>(row);
  record.forward_seconds = forward_seconds;
  record.step_seconds = Seconds(absl::Now() - start);
  ++engine_stats_.num_steps;
  engine_stats_.num_computed_tokens += plan.num_tokens;
  engine_stats_.step_seconds += record.step_seconds;
  engine_stats_.forward_seconds += record.forward_seconds;
  engine_stats_.last_step = record;
  if (on_step_) on_step_(record);
  const absl::Duration rest = options_.min_step_time - (absl::Now() - start);
  if (rest > absl::ZeroDuration()) absl::SleepFor(rest);
  return true;
}

bool Generator::IsEos(int32_t token) const {
  return std::find(eos_ids_.begin(), eos_ids_.end(), token) != eos_ids_.end();
}

void Generator::HandleSample(Job& job, std::span<const float> logits) {
  const JobRequest& r = job.request;
  const SampledToken sampled = job.sampler->Sample(logits);
  scheduler_->AppendToken(&job.seq, sampled.id);
  ++job.generated;
  ++engine_stats_.num_generated_tokens;
  if (!job.first_token) job.first_token = absl::Now();

  JobEvent event;
  GeneratedToken& token = event.tokens.emplace_back();
  token.id = sampled.id;
  token.logprob = sampled.logprob;
  token.top_logprobs = sampled.top_logprobs;

  std::optional<FinishReason> reason;
  std::string stop_match;
  if (std::find(r.stop_token_ids.begin(), r.stop_token_ids.end(), sampled.id) !=
      r.stop_token_ids.end()) {
    reason = FinishReason::kStopToken;
    stop_match = absl::StrCat(sampled.id);
  } else if (!r.ignore_eos && IsEos(sampled.id)) {
    reason = FinishReason::kEos;
  } else if (job.decoder) {
    event.text = job.stop->Push(job.decoder->Push(sampled.id));
    if (job.stop->matched()) {
      reason = FinishReason::kStopString;
      stop_match = *job.stop->matched();
    }
  }
  if (!reason && job.generated >= job.max_new_tokens) {
    reason = static_cast<int32_t>(job.seq.tokens.size()) >= limits_.max_context_tokens
                 ? FinishReason::kContextLength
                 : FinishReason::kMaxTokens;
  }
  if (!reason) {
    if (!job.channel->Push(std::move(event))) {
      FinishJob(job, absl::ResourceExhaustedError(
                         absl::StrCat("the client read too slowly (", options_.max_pending_tokens,
                                      " tokens unread); the request was cancelled")));
    }
    return;
  }
  if (*reason != FinishReason::kStopString && job.decoder) {
    event.text += job.stop->Push(job.decoder->Flush());
    if (!job.stop->matched()) event.text += job.stop->Flush();
  }
  if (job.stop && job.stop->matched() && *reason != FinishReason::kStopString) {
    reason = FinishReason::kStopString;
    stop_match = *job.stop->matched();
  }
  event.result.finish_reason = *reason;
  event.result.stop_match = std::move(stop_match);
  FinishJob(job, absl::OkStatus(), std::move(event));
}

void Generator::CancelJob(uint64_t job_id, const absl::Status& why) {
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return;  // already finished
  FinishJob(*it->second, why);
}

void Generator::FinishJob(Job& job, absl::Status status, JobEvent last) {
  const absl::Time now = absl::Now();
  if (job.registered) scheduler_->Remove(&job.seq);
  if (job.session != nullptr) {
    Session& session = *job.session;
    session.busy = false;
    sessions_.Touch(&session, now);
    if (status.ok()) {
      session.tokens = job.seq.tokens;
      sessions_.SetPin(&session, std::move(job.seq.lease));  // inactive if it ended preempted
    }
  }
  job.seq.lease.Reset();

  last.status = status;
  if (status.ok()) {
    JobUsage& usage = last.result.usage;
    usage.prompt_tokens = job.prompt_tokens;
    usage.cached_tokens = job.cached_tokens;
    usage.completion_tokens = job.generated;
    usage.num_preemptions = job.seq.num_preemptions;
    usage.queue_time = job.first_scheduled.value_or(now) - job.submitted;
    usage.time_to_first_token = job.first_token.value_or(now) - job.submitted;
    usage.total_time = now - job.submitted;
    last.result.history_tokens =
        job.session != nullptr ? static_cast<int32_t>(job.session->tokens.size()) : 0;
    ++engine_stats_.num_jobs_finished;
  } else if (absl::IsCancelled(status) || absl::IsUnavailable(status) ||
             (absl::IsResourceExhausted(status) && job.generated > 0)) {
    ++engine_stats_.num_jobs_cancelled;
  } else {
    ++engine_stats_.num_jobs_failed;
  }
  // Delivered after the stats are published, so a reader that sees its final event also
  // sees the blocks it released.
  after_publish_.push_back([this, channel = job.channel, last = std::move(last)]() mutable {
    channel->Finish(std::move(last));
    {
      std::lock_guard lock(stats_mu_);
      num_open_jobs_.fetch_sub(1);
    }
    idle_.notify_all();
  });
  jobs_.erase(job.id);  // destroys `job`
}

absl::StatusOr<std::vector<std::string>> Generator::ForkOnEngine(std::string_view session_id,
                                                                 int32_t n) {
  if (n < 1 || n > kMaxForks) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_forks must be in [1, ", kMaxForks, "] (got ", n, ")"));
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
  stats.num_waiting = static_cast<int32_t>(scheduler_->num_waiting());
  stats.num_sessions = sessions_.size();
  stats.num_pinned_sessions = sessions_.num_pinned();
  stats.sessions = sessions_.counters();
  stats.num_preemptions = scheduler_->num_preemptions();
  std::lock_guard lock(stats_mu_);
  published_stats_ = stats;
}

}  // namespace ringserve::engine
