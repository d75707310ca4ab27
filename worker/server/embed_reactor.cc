#include "worker/server/embed_reactor.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/grpc/grpc_status.h"
#include "worker/engine/embedding.h"
#include "worker/server/request_conversion.h"

namespace ringserve::server {

namespace pb = ringserve::v1;

EmbedReactor* EmbedReactor::Start(const ServiceEnv& env, grpc::CallbackServerContext* context,
                                  const pb::EmbedRequest& request, pb::EmbedResponse* response) {
  // gRPC's callback API hands the reactor's lifetime to the call: it is released here and
  // reclaimed by the unique_ptr made in OnDone().
  auto reactor = std::unique_ptr<EmbedReactor>(new EmbedReactor(env, context, response));
  EmbedReactor* raw = reactor.release();
  raw->Begin(request);
  return raw;
}

EmbedReactor::EmbedReactor(const ServiceEnv& env, grpc::CallbackServerContext* context,
                           pb::EmbedResponse* response)
    : env_(env), context_(context), response_(response) {
  link_->reactor = this;
  context_->AddTrailingMetadata("x-ringserve-worker", env_.worker_id);
}

namespace {

absl::Status Invalid(const std::string& field, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", what));
}

// The request's own fields; each input's are checked as it becomes a job.
absl::Status ValidateEmbedRequest(const pb::EmbedRequest& request, int embedding_size) {
  if (request.request_id().size() > kMaxRequestIdBytes) {
    return Invalid("request_id", absl::StrCat("at most ", kMaxRequestIdBytes, " bytes"));
  }
  if (request.inputs_size() < 1 || request.inputs_size() > kMaxEmbedInputs) {
    return Invalid("inputs", absl::StrCat("1..", kMaxEmbedInputs, " inputs (got ",
                                          request.inputs_size(), ")"));
  }
  if (request.dimensions() < 0 || request.dimensions() > embedding_size) {
    return Invalid("dimensions", absl::StrCat("must be in [0, ", embedding_size, "] (got ",
                                              request.dimensions(), ")"));
  }
  return absl::OkStatus();
}

// Input `i` as the GenerateRequest whose job computes it: the same conversion (text limits,
// token ids, truncation) with nothing to generate.
absl::StatusOr<engine::JobRequest> EmbedJob(const pb::EmbedRequest& request, int i,
                                            const ServiceEnv& env) {
  const pb::EmbedInput& input = request.inputs(i);
  pb::GenerateRequest generate;
  generate.set_request_id(request.request_id());
  switch (input.input_case()) {
    case pb::EmbedInput::kText:
      generate.set_text(input.text());
      break;
    case pb::EmbedInput::kTokens:
      *generate.mutable_tokens() = input.tokens();
      break;
    default:
      return Invalid(absl::StrCat("inputs[", i, "]"), "no text or tokens");
  }
  generate.mutable_stop()->set_max_tokens(0);
  generate.set_priority(request.priority());
  generate.set_adapter(request.adapter());
  if (request.has_truncate_prompt_tokens()) {
    generate.set_truncate_prompt_tokens(request.truncate_prompt_tokens());
  }
  absl::StatusOr<engine::JobRequest> job =
      ToJobRequest(generate, env.tokenizer,
                   {env.generator->vocab_size(), env.generator->max_context_tokens(),
                    env.model.chat_format, env.model.default_system_prompt, env.grammars});
  if (!job.ok()) {
    return absl::Status(job.status().code(),
                        absl::StrCat("inputs[", i, "]: ", job.status().message()));
  }
  job->embed = true;
  return job;
}

}  // namespace

void EmbedReactor::Begin(const pb::EmbedRequest& request) {
  response_->set_request_id(request.request_id());
  normalize_ = !request.has_normalize() || request.normalize();
  dimensions_ = request.dimensions();
  adapter_ = request.adapter();
  std::vector<engine::JobRequest> jobs;
  absl::Status status = ValidateEmbedRequest(request, env_.model.embedding_size);
  for (int i = 0; status.ok() && i < request.inputs_size(); ++i) {
    absl::StatusOr<engine::JobRequest> job = EmbedJob(request, i, env_);
    if (job.ok()) {
      jobs.push_back(*std::move(job));
    } else {
      status = job.status();
    }
  }
  {
    std::lock_guard lock(link_->mu);
    if (!status.ok()) {
      status_ = status;
      FinishLocked();
      return;
    }
    for (const engine::JobRequest& job : jobs) {
      absl::StatusOr<engine::JobHandle> handle = env_.generator->Submit(job);
      if (!handle.ok()) {
        // The jobs already submitted are cancelled as their handles go with the reactor,
        // and no notifier was set on them.
        status_ = handle.status();
        FinishLocked();
        return;
      }
      handles_.push_back(*std::move(handle));
      truncated_tokens_.push_back(job.truncated_tokens);
      response_->add_embeddings();
    }
    done_.assign(handles_.size(), false);
  }
  // Outside the lock: SetNotifier calls the notifier at once when an event is pending. Until
  // `starting_` is cleared nothing finishes, so the handles stay while this loop runs.
  std::weak_ptr<Link> weak = link_;
  for (engine::JobHandle& handle : handles_) {
    handle.SetNotifier([weak] {
      std::shared_ptr<Link> link = weak.lock();
      if (link == nullptr) return;
      std::lock_guard lock(link->mu);
      if (link->reactor != nullptr) link->reactor->CollectLocked();
    });
  }
  std::lock_guard lock(link_->mu);
  starting_ = false;
  CollectLocked();
}

void EmbedReactor::CollectLocked() {
  for (size_t i = 0; i < handles_.size(); ++i) {
    if (done_[i]) continue;
    std::optional<engine::JobEvent> event = handles_[i].TryNext();
    if (!event || !event->finished) continue;  // an embedding job sends its final event only
    done_[i] = true;
    ++num_done_;
    if (!event->status.ok()) {
      if (status_.ok()) {
        status_ = absl::Status(event->status.code(),
                               absl::StrCat("inputs[", i, "]: ", event->status.message()));
        for (size_t k = 0; k < handles_.size(); ++k) {
          if (!done_[k]) handles_[k].Cancel();
        }
      }
      continue;
    }
    if (env_.metrics != nullptr) env_.metrics->RecordUsage(event->result.usage, adapter_);
    std::vector<float>& values = event->result.embedding;
    engine::FinishEmbedding(values, dimensions_, normalize_);
    pb::Embedding* out = response_->mutable_embeddings(static_cast<int>(i));
    out->mutable_values()->Assign(values.begin(), values.end());
    const engine::JobUsage& usage = event->result.usage;
    out->set_prompt_tokens(usage.prompt_tokens);
    out->set_cached_tokens(usage.cached_tokens);
    out->set_truncated_tokens(truncated_tokens_[i]);
  }
  if (!starting_ && num_done_ == handles_.size()) FinishLocked();
}

void EmbedReactor::FinishLocked() {
  if (finished_) return;
  finished_ = true;
  if (!status_.ok()) response_->Clear();
  if (env_.metrics != nullptr) {
    env_.metrics->RecordRequest("Embed",
                                StatusCodeName(static_cast<grpc::StatusCode>(status_.code())));
  }
  Finish(ToGrpcStatus(status_));
}

void EmbedReactor::OnCancel() {
  std::lock_guard lock(link_->mu);
  for (size_t i = 0; i < handles_.size(); ++i) {
    if (!done_[i]) handles_[i].Cancel();  // their final (CANCELLED) events end the call
  }
}

void EmbedReactor::OnDone() {
  std::unique_ptr<EmbedReactor> self(this);
  std::lock_guard lock(link_->mu);
  link_->reactor = nullptr;
}

}  // namespace ringserve::server
