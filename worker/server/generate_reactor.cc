#include "worker/server/generate_reactor.h"

#include <span>
#include <utility>

#include "common/grpc/grpc_status.h"

namespace ringserve::server {

GenerateReactor* GenerateReactor::Start(const ServiceEnv& env, grpc::CallbackServerContext* context,
                                        const ringserve::v1::GenerateRequest& request) {
  // gRPC's callback API hands the reactor's lifetime to the call: it is released here and
  // reclaimed by the unique_ptr made in OnDone().
  auto reactor = std::unique_ptr<GenerateReactor>(new GenerateReactor(env, context));
  GenerateReactor* raw = reactor.release();
  raw->Begin(request);
  return raw;
}

GenerateReactor::GenerateReactor(const ServiceEnv& env, grpc::CallbackServerContext* context)
    : env_(env), context_(context) {
  link_->reactor = this;
  context_->AddInitialMetadata("x-ringserve-worker", env_.worker_id);
  context_->AddTrailingMetadata("x-ringserve-worker", env_.worker_id);
}

void GenerateReactor::Begin(const ringserve::v1::GenerateRequest& request) {
  request_id_ = request.request_id();
  absl::StatusOr<engine::JobRequest> job =
      ToJobRequest(request, env_.tokenizer,
                   {env_.generator->vocab_size(), env_.generator->max_context_tokens(),
                    env_.model.chat_format, env_.model.default_system_prompt});
  if (!job.ok()) {
    std::lock_guard lock(link_->mu);
    FinishWith(job.status());
    return;
  }
  job_request_ = *job;
  absl::StatusOr<engine::JobHandle> handle = env_.generator->Submit(*std::move(job));
  {
    std::lock_guard lock(link_->mu);
    if (!handle.ok()) {
      FinishWith(handle.status());
      return;
    }
    handle_.emplace(*std::move(handle));
    last_write_ = absl::Now();
  }
  // Outside the lock: SetNotifier calls the notifier at once when an event is pending.
  std::weak_ptr<Link> weak = link_;
  handle_->SetNotifier([weak] {
    std::shared_ptr<Link> link = weak.lock();
    if (link == nullptr) return;
    std::lock_guard lock(link->mu);
    if (link->reactor != nullptr) link->reactor->PumpLocked();
  });
}

void GenerateReactor::PumpLocked() {
  if (write_in_flight_ || finished_ || !handle_) return;
  if (!held_) {
    held_ = handle_->TryNext();
    prompt_sent_ = 0;
  }
  if (!held_) return;
  if (held_->finished && !held_->status.ok()) {
    // Tokens that came with an error (e.g. a slow reader's last batch) are dropped with it.
    FinishWith(held_->status);
    return;
  }
  response_.Clear();
  const std::span<const engine::GeneratedToken> scored =
      std::span(held_->prompt_logprobs).subspan(prompt_sent_);
  if (scored.size() > kMaxPromptLogprobsPerMessage) {
    FillPromptLogprobs(scored.first(kMaxPromptLogprobsPerMessage), &response_);
    prompt_sent_ += kMaxPromptLogprobsPerMessage;
    write_in_flight_ = true;
    StartWrite(&response_);
    return;
  }
  std::optional<engine::JobEvent> event = std::move(held_);
  held_.reset();
  FillPromptLogprobs(scored, &response_);
  FillResponse(*event, job_request_.sampling.num_logprobs > 0, &response_);
  const absl::Time now = absl::Now();
  if (env_.metrics != nullptr && !event->tokens.empty()) {
    env_.metrics->RecordInterTokenLatency(now - last_write_);
  }
  last_write_ = now;
  if (event->finished) {
    FillFinal(event->result, job_request_, request_id_, env_.worker_id, response_.mutable_final());
    if (env_.metrics != nullptr) {
      env_.metrics->RecordUsage(event->result.usage);
      env_.metrics->RecordRequest("Generate", "OK");
    }
    finished_ = true;
    StartWriteAndFinish(&response_, grpc::WriteOptions(), grpc::Status::OK);
    return;
  }
  write_in_flight_ = true;
  StartWrite(&response_);
}

void GenerateReactor::FinishWith(const absl::Status& status) {
  if (finished_) return;
  finished_ = true;
  if (env_.metrics != nullptr) {
    env_.metrics->RecordRequest("Generate",
                                StatusCodeName(static_cast<grpc::StatusCode>(status.code())));
  }
  Finish(ToGrpcStatus(status));
}

void GenerateReactor::OnWriteDone(bool ok) {
  std::lock_guard lock(link_->mu);
  write_in_flight_ = false;
  if (!ok) {
    // The stream broke (client gone): end the job; its final event finishes the call.
    if (handle_) handle_->Cancel();
  }
  PumpLocked();
}

void GenerateReactor::OnCancel() {
  std::lock_guard lock(link_->mu);
  if (handle_) handle_->Cancel();  // the final (CANCELLED) event arrives by the next step
}

void GenerateReactor::OnDone() {
  std::unique_ptr<GenerateReactor> self(this);
  std::lock_guard lock(link_->mu);
  link_->reactor = nullptr;
}

}  // namespace ringserve::server
