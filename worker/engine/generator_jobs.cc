// The generator's jobs: the checks a request passes before it is queued, its admission on
// the engine thread (session history, prefix pin, scheduler), each sampled token, and its
// end (session update, usage, the final event).
#include <algorithm>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"
#include "kernels/row_logprobs.h"
#include "worker/engine/generator.h"
#include "worker/engine/generator_job.h"
#include "worker/grammar/token_constraint.h"

namespace ringserve::engine {
namespace {

constexpr int32_t kMaxStopStrings = 16;
constexpr size_t kMaxStopStringBytes = 256;

}  // namespace

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
  for (const auto& [token, bias] : r.sampling.logit_bias) {
    if (token < 0 || token >= limits_.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat("sampling.logit_bias: token ", token,
                                                     " is outside the vocabulary [0, ",
                                                     limits_.vocab_size, ")"));
    }
  }
  if (r.embed && (r.max_tokens != 0 || !r.session_id.empty() || r.prompt_logprobs.has_value() ||
                  r.response_format != nullptr)) {
    return absl::InvalidArgumentError(
        "embed: an embedding takes max_tokens 0 and no session, prompt_logprobs or "
        "response_format");
  }
  if (r.max_tokens.has_value() && *r.max_tokens < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("stop.max_tokens: must be >= 0 (got ", *r.max_tokens, ")"));
  }
  if (r.min_tokens < 0 || (r.max_tokens.has_value() && r.min_tokens > *r.max_tokens)) {
    return absl::InvalidArgumentError(
        absl::StrCat("stop.min_tokens: must be in [0, max_tokens] (got ", r.min_tokens, ")"));
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
  if (r.response_format != nullptr && tokenizer_ == nullptr) {
    return absl::InvalidArgumentError(
        "response_format: needs the model's tokenizer to know each token's text, and this "
        "model has none");
  }
  if (r.prompt_logprobs.has_value()) {
    if (*r.prompt_logprobs < 0 || *r.prompt_logprobs > kernels::kMaxTopLogprobs) {
      return absl::InvalidArgumentError(absl::StrCat("prompt_logprobs: must be in [0, ",
                                                     kernels::kMaxTopLogprobs, "] (got ",
                                                     *r.prompt_logprobs, ")"));
    }
    if (limits_.max_extra_rows == 0) {
      return absl::FailedPreconditionError(
          "prompt_logprobs: this worker keeps no rows for scoring prompts "
          "(--prompt-logprob-rows 0)");
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

void Generator::StartJob(std::unique_ptr<Job> job_ptr) {
  Job& job = *job_ptr;
  const uint64_t id = job.id;
  jobs_.emplace(id, std::move(job_ptr));
  if (job.channel->cancel_requested()) {
    FinishJob(job, absl::CancelledError("cancelled by the client"));
    return;
  }
  // A session's requests run in the order they came: one that waits for its adapter keeps
  // the session busy, as a running one does.
  const std::string& session_id = job.request.session_id;
  if (!session_id.empty() &&
      AnyWaiter([&](const Job& other) { return other.request.session_id == session_id; })) {
    FinishJob(job, absl::FailedPreconditionError(absl::StrCat(
                       "session_id: session '", session_id,
                       "' is busy with another request (waiting for its LoRA adapter)")));
    return;
  }
  // Behind jobs that wait for a slot, a job only starts at once with an adapter in one.
  const absl::StatusOr<bool> bound = BindAdapter(job, /*may_swap=*/adapter_waiters_.empty());
  if (!bound.ok()) {
    FinishJob(job, bound.status());
    return;
  }
  if (!*bound) {
    adapter_waiters_.push_back(id);
    return;
  }
  const absl::Status prepared = PrepareJob(job);
  if (!prepared.ok()) FinishJob(job, prepared);
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
  if (prompt == 0) {
    return absl::InvalidArgumentError("input: empty, and the session holds no history");
  }
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
  if (r.min_tokens > room) {
    return absl::InvalidArgumentError(
        absl::StrCat("stop.min_tokens: ", r.min_tokens, " exceeds the ", room,
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
  job.draft_limit = options_.speculate_tokens;
  job.seq.job_id = job.id;
  job.seq.priority = r.priority;
  job.seq.arrival = next_arrival_++;
  if (r.prompt_logprobs.has_value()) {
    // Input token i of the context (i >= 1) is scored by position i - 1's logits.
    const auto history = static_cast<int32_t>(context.size() - r.tokens.size());
    job.seq.score_next = std::max(history, 1) - 1;
    job.seq.score_end = prompt - 1;
  }
  job.sampler.emplace(r.sampling, context);
  // The tokens that end the job: held back until min_tokens, and under a response format
  // until the value is complete (a chat's end of turn is among the stop tokens).
  std::vector<int32_t> enders = r.stop_token_ids;
  if (!r.ignore_eos) enders.insert(enders.end(), eos_ids_.begin(), eos_ids_.end());
  if (r.min_tokens > 0) job.sampler->SuppressUntil(enders, r.min_tokens);
  if (r.response_format != nullptr && r.format_trigger.has_value()) {
    job.sampler->Constrain(grammar::TokenConstraint(grammar::Matcher(r.response_format),
                                                    token_trie_.get(), std::move(enders),
                                                    *r.format_trigger));
  } else if (r.response_format != nullptr) {
    job.sampler->Constrain(grammar::TokenConstraint(grammar::Matcher(r.response_format),
                                                    token_trie_.get(), std::move(enders)));
  }
  if (tokenizer_ != nullptr) {
    job.decoder.emplace(*tokenizer_, context.back(), r.spelled_control_ids);
  }
  job.stop.emplace(r.stop_strings, r.include_stop_string);

  // A session whose history is a prefix of the context continues its pinned sequence, when
  // that takes a free seat and jumps no queued job. Otherwise it queues like any other job:
  // its pin is released and admission finds its full blocks in the prefix cache (only the
  // last, partial block is computed again, to the same bits).
  // A scoring job continues it only when the positions it scores are not computed yet.
  const bool continues_pin =
      session != nullptr && session->pin().active() &&
      session->adapter_key == job.seq.adapter_key && session->tokens.size() <= context.size() &&
      std::equal(session->tokens.begin(), session->tokens.end(), context.begin()) &&
      scheduler_->CanSkipQueue() &&
      (!job.seq.scoring() || kv_->NumComputedTokens(session->pin().seq_id()) <= job.seq.score_next);
  if (continues_pin) {
    const kvcache::SeqId seq_id = session->pin().seq_id();
    kv_->AppendTokens(seq_id, std::span(context).subspan(session->tokens.size()));
    if (kv_->NumComputedTokens(seq_id) >= prompt) sessions_.TakePin(session);  // nothing to run
  }
  if (session != nullptr && !continues_pin) sessions_.TakePin(session);
  if (r.follows.has_value()) {
    const auto lead = jobs_.find(*r.follows);
    if (lead != jobs_.end() && lead->second->registered) job.seq.lead = &lead->second->seq;
  }
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

bool Generator::IsEos(int32_t token) const {
  return std::find(eos_ids_.begin(), eos_ids_.end(), token) != eos_ids_.end();
}

bool Generator::HandleSample(Job& job, const SampledToken& sampled, bool kv_computed) {
  const JobRequest& r = job.request;
  if (job.max_new_tokens == 0) {
    // The input is computed (and scored, and a session holds it); the token sampled after
    // it is dropped, never part of the context.
    JobEvent event;
    event.result.finish_reason = FinishReason::kMaxTokens;
    event.result.embedding = std::move(job.embedding);
    FinishJob(job, absl::OkStatus(), std::move(event));
    return false;
  }
  scheduler_->AppendToken(&job.seq, sampled.id, kv_computed);
  ++job.generated;
  ++engine_stats_.num_generated_tokens;
  if (!job.first_token) job.first_token = absl::Now();

  JobEvent event;
  if (job.generated == 1) event.prompt_tokens = job.prompt_tokens;
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
  if (!reason && job.sampler->response_complete()) reason = FinishReason::kResponseComplete;
  if (!reason && job.generated >= job.max_new_tokens) {
    reason = static_cast<int32_t>(job.seq.tokens.size()) >= limits_.max_context_tokens
                 ? FinishReason::kContextLength
                 : FinishReason::kMaxTokens;
  }
  if (!reason) {
    if (job.channel->Push(std::move(event))) return true;
    FinishJob(job, absl::ResourceExhaustedError(
                       absl::StrCat("the client read too slowly (", options_.max_pending_tokens,
                                    " tokens unread); the request was cancelled")));
    return false;
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
  return false;
}

void Generator::CancelJob(uint64_t job_id, const absl::Status& why) {
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return;  // already finished
  FinishJob(*it->second, why);
}

void Generator::FinishJob(Job& job, const absl::Status& status, JobEvent last) {
  const absl::Time now = absl::Now();
  if (job.registered) {
    scheduler_->Remove(&job.seq);
  } else {
    std::erase(adapter_waiters_, job.id);  // if it waited for a LoRA slot
  }
  ReleaseAdapter(job);
  if (job.session != nullptr) {
    Session& session = *job.session;
    session.busy = false;
    sessions_.Touch(&session, now);
    if (status.ok()) {
      session.tokens = job.seq.tokens;
      session.adapter_key = job.seq.adapter_key;
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
    usage.scored_tokens = job.scored;
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
    CloseOpenJob();
  });
  jobs_.erase(job.id);  // destroys `job`
}

}  // namespace ringserve::engine
