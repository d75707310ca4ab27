#include "worker/engine/job_channel.h"

#include <iterator>
#include <utility>

namespace ringserve::engine {
namespace {

void Merge(JobEvent& into, JobEvent&& more) {
  into.prompt_logprobs.insert(into.prompt_logprobs.end(),
                              std::make_move_iterator(more.prompt_logprobs.begin()),
                              std::make_move_iterator(more.prompt_logprobs.end()));
  into.tokens.insert(into.tokens.end(), std::make_move_iterator(more.tokens.begin()),
                     std::make_move_iterator(more.tokens.end()));
  into.text += more.text;
  if (into.prompt_tokens == 0) into.prompt_tokens = more.prompt_tokens;
  if (more.finished) {
    into.finished = true;
    into.status = std::move(more.status);
    into.result = std::move(more.result);
  }
}

}  // namespace

const char* FinishReasonName(FinishReason reason) {
  switch (reason) {
    case FinishReason::kEos:
      return "eos";
    case FinishReason::kMaxTokens:
      return "max_tokens";
    case FinishReason::kStopString:
      return "stop_string";
    case FinishReason::kStopToken:
      return "stop_token";
    case FinishReason::kContextLength:
      return "context_length";
    case FinishReason::kResponseComplete:
      return "response_complete";
  }
  return "unknown";
}

JobChannel::JobChannel(uint64_t job_id, int32_t max_pending_tokens, std::function<void()> on_cancel)
    : job_id_(job_id), max_pending_tokens_(max_pending_tokens), on_cancel_(std::move(on_cancel)) {}

bool JobChannel::Push(JobEvent event) {
  {
    std::lock_guard lock(mu_);
    if (finish_queued_) return true;
    const size_t pending_tokens = pending_ ? pending_->tokens.size() : 0;
    if (pending_tokens + event.tokens.size() > static_cast<size_t>(max_pending_tokens_)) {
      return false;
    }
  }
  Deliver(std::move(event), /*final=*/false);
  return true;
}

void JobChannel::Finish(JobEvent event) {
  event.finished = true;
  Deliver(std::move(event), /*final=*/true);
}

void JobChannel::Deliver(JobEvent event, bool final) {
  std::function<void()> notify;
  {
    std::lock_guard lock(mu_);
    if (finish_queued_) return;
    finish_queued_ = final;
    if (pending_) {
      Merge(*pending_, std::move(event));
    } else {
      pending_ = std::move(event);
      notify = notify_;
    }
  }
  ready_.notify_all();
  if (notify) notify();
}

std::optional<JobEvent> JobChannel::Next(absl::Duration timeout) {
  std::unique_lock lock(mu_);
  auto ready = [&] { return pending_.has_value() || final_taken_; };
  if (timeout == absl::InfiniteDuration()) {
    ready_.wait(lock, ready);
  } else if (!ready_.wait_for(lock, absl::ToChronoNanoseconds(timeout), ready)) {
    return std::nullopt;
  }
  if (!pending_) return std::nullopt;
  JobEvent event = *std::move(pending_);
  pending_.reset();
  final_taken_ = event.finished;
  return event;
}

std::optional<JobEvent> JobChannel::TryNext() { return Next(absl::ZeroDuration()); }

void JobChannel::SetNotifier(std::function<void()> notify) {
  bool pending = false;
  {
    std::lock_guard lock(mu_);
    notify_ = notify;
    pending = pending_.has_value();
  }
  if (pending && notify) notify();
}

void JobChannel::Cancel() {
  if (cancelled_.exchange(true, std::memory_order_acq_rel)) return;
  if (on_cancel_) on_cancel_();
}

bool JobChannel::done() const {
  std::lock_guard lock(mu_);
  return final_taken_;
}

JobEvent JobHandle::Collect() {
  JobEvent all;
  while (std::optional<JobEvent> event = Next()) {
    Merge(all, *std::move(event));
    if (all.finished) break;
  }
  return all;
}

}  // namespace ringserve::engine
