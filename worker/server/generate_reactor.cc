#include "worker/server/generate_reactor.h"

#include <span>
#include <utility>

#include "common/grpc/grpc_status.h"
#include "worker/server/chat_replies.h"
#include "worker/server/tool_requests.h"

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
  adapter_ = request.adapter();
  absl::StatusOr<engine::JobRequest> job =
      ToJobRequest(request, env_.tokenizer,
                   {env_.generator->vocab_size(), env_.generator->max_context_tokens(),
                    env_.model.chat_format, env_.model.default_system_prompt, env_.grammars});
  {
    std::lock_guard lock(link_->mu);
    if (!job.ok()) {
      FinishWith(job.status());
      return;
    }
    std::vector<engine::JobRequest> jobs = CompletionJobs(*job, NumCompletions(request));
    completions_.resize(jobs.size());
    for (size_t i = 0; i < jobs.size(); ++i) {
      // The others wait for the first one's prefill, then find the input's blocks cached.
      if (i > 0) jobs[i].follows = completions_[0].handle->id();
      completions_[i].request = jobs[i];
      completions_[i].send_prompt_ids = request.return_prompt_token_ids();
      completions_[i].reply_parser =
          ReplyParser(request, env_.tokenizer, env_.model.chat_format,
                      /*calls_constrained=*/jobs[i].response_format != nullptr &&
                          !request.has_response_format());
      completions_[i].thoughts = ReplyThoughts(request, env_.tokenizer, env_.model.chat_format);
      absl::StatusOr<engine::JobHandle> handle = env_.generator->Submit(jobs[i]);
      if (!handle.ok()) {
        // The jobs already submitted are cancelled as their handles go with the reactor.
        FinishWith(handle.status());
        return;
      }
      completions_[i].handle.emplace(*std::move(handle));
    }
    last_write_ = absl::Now();
  }
  // Outside the lock: SetNotifier calls the notifier at once when an event is pending. Until
  // `starting_` is cleared no pump writes, so the call cannot finish (and free the
  // completions) while this loop runs.
  std::weak_ptr<Link> weak = link_;
  for (Completion& c : completions_) {
    c.handle->SetNotifier([weak] {
      std::shared_ptr<Link> link = weak.lock();
      if (link == nullptr) return;
      std::lock_guard lock(link->mu);
      if (link->reactor != nullptr) link->reactor->PumpLocked();
    });
  }
  std::lock_guard lock(link_->mu);
  starting_ = false;
  PumpLocked();
}

GenerateReactor::Completion* GenerateReactor::NextPending() {
  for (size_t k = 0; k < completions_.size(); ++k) {
    const size_t i = (next_ + k) % completions_.size();
    Completion& c = completions_[i];
    if (c.done || !c.handle) continue;
    if (!c.held) {
      c.held = c.handle->TryNext();
      c.prompt_sent = 0;
    }
    if (c.held) {
      next_ = i + 1;
      return &c;
    }
  }
  return nullptr;
}

void GenerateReactor::CancelAll() {
  for (Completion& c : completions_) {
    if (c.handle) c.handle->Cancel();
  }
}

void GenerateReactor::PumpLocked() {
  if (starting_ || write_in_flight_ || finished_) return;
  Completion* c = NextPending();
  if (c == nullptr) return;
  if (c->held->finished && !c->held->status.ok()) {
    // Tokens that came with an error (e.g. a slow reader's last batch) are dropped with it,
    // and the other completions end with the call.
    FinishWith(c->held->status);
    CancelAll();
    return;
  }
  response_.Clear();
  const auto index = static_cast<int32_t>(c - completions_.data());
  response_.set_index(index);
  if (c->send_prompt_ids) {
    response_.mutable_prompt_token_ids()->Add(c->request.tokens.begin(), c->request.tokens.end());
    c->send_prompt_ids = false;
  }
  const std::span<const engine::GeneratedToken> scored =
      std::span(c->held->prompt_logprobs).subspan(c->prompt_sent);
  if (scored.size() > kMaxPromptLogprobsPerMessage) {
    FillPromptLogprobs(scored.first(kMaxPromptLogprobsPerMessage), env_.tokenizer, &response_);
    c->prompt_sent += kMaxPromptLogprobsPerMessage;
    next_ = static_cast<size_t>(index);  // the rest of this event goes next
    write_in_flight_ = true;
    StartWrite(&response_);
    return;
  }
  std::optional<engine::JobEvent> event = std::move(c->held);
  c->held.reset();
  FillPromptLogprobs(scored, env_.tokenizer, &response_);
  FillResponse(*event, c->request.sampling.num_logprobs > 0, env_.tokenizer, &response_);
  if (event->finished) {
    FillFinal(event->result, c->request, request_id_, env_.worker_id, response_.mutable_final());
  }
  // The thought leaves the text first: a call written inside it is not a call.
  if (c->thoughts.has_value()) SplitThought(*c->thoughts, event->finished, &response_);
  if (c->reply_parser.has_value()) ParseToolCalls(*c->reply_parser, event->finished, &response_);
  const absl::Time now = absl::Now();
  if (env_.metrics != nullptr && !event->tokens.empty()) {
    env_.metrics->RecordInterTokenLatency(now - last_write_);
  }
  last_write_ = now;
  if (event->finished) {
    if (env_.metrics != nullptr) env_.metrics->RecordUsage(event->result.usage, adapter_);
    c->done = true;
    if (++num_done_ == completions_.size()) {
      if (env_.metrics != nullptr) env_.metrics->RecordRequest("Generate", "OK");
      finished_ = true;
      StartWriteAndFinish(&response_, grpc::WriteOptions(), grpc::Status::OK);
      return;
    }
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
    // The stream broke (client gone): end the jobs; the first final event finishes the call.
    CancelAll();
  }
  PumpLocked();
}

void GenerateReactor::OnCancel() {
  std::lock_guard lock(link_->mu);
  CancelAll();  // the final (CANCELLED) events arrive by the next step
}

void GenerateReactor::OnDone() {
  std::unique_ptr<GenerateReactor> self(this);
  std::lock_guard lock(link_->mu);
  link_->reactor = nullptr;
}

}  // namespace ringserve::server
