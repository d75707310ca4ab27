#include "router/generate_proxy.h"

#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "common/grpc/grpc_status.h"
#include "common/log.h"
#include "router/route.h"

namespace ringserve::router {
namespace {

using ringserve::v1::GenerateRequest;
using ringserve::v1::GenerateResponse;

// Owner: gRPC (server side) and its Upstreams, through SharedReactorState.
// Thread: gRPC callback threads; mu_ guards what both sides touch. No gRPC operation is
// started with mu_ held, since a reaction may run inline on the starting thread.
class GenerateProxy final : public grpc::ServerWriteReactor<GenerateResponse>,
                            public SharedReactorState {
 public:
  GenerateProxy(const ProxyEnv& env, grpc::CallbackServerContext* context,
                const GenerateRequest* request)
      : env_(env),
        context_(context),
        request_(request),
        start_(absl::Now()),
        planner_(env.membership,
                 Route::ForGenerate(*request, env.prefix_affinity_bytes, env.adapter_affinity),
                 RandomBits()) {}

  // planner_, lease_ and request_ are set without mu_: no callback can run before the
  // first attempt.
  void Begin() {
    absl::StatusOr<CallPolicy::Admission> admission =
        env_.policy.AdmitGenerate(*context_, *request_);
    if (!admission.ok()) return FinishCall(ToGrpcStatus(admission.status()));
    lease_ = std::move(admission->lease);
    if (admission->impose_max_tokens.has_value()) {
      capped_request_ = *request_;
      capped_request_.mutable_stop()->set_max_tokens(*admission->impose_max_tokens);
      request_ = &capped_request_;
    }
    Target target;
    if (grpc::Status refused = FirstTarget(env_, planner_, &target); !refused.ok()) {
      return FinishCall(refused);
    }
    if (env_.metrics != nullptr) {
      env_.metrics->CountPlacement(planner_.route().key_kind, planner_.first_spilled());
    }
    StartAttempt(std::move(target));
  }

  // The client took the message: read the next one, or stop the worker if the client
  // is gone. Either way the worker call may now end (the hold from Relay is released).
  void OnWriteDone(bool ok) override {
    Upstream* upstream = Current();
    if (ok) {
      upstream->StartRead(&response_);
    } else {
      upstream->context->TryCancel();
    }
    upstream->RemoveHold();
  }

  void OnCancel() override {
    Upstream* upstream = nullptr;
    {
      std::lock_guard lock(mu_);
      client_cancelled_ = true;
      upstream = current_;
    }
    // The derived context propagates the cancellation too; cancelling explicitly does
    // not depend on that.
    if (upstream != nullptr) upstream->context->TryCancel();
  }

  void OnDone() override { Unref(); }

 private:
  // One attempt: the call to one worker.
  class Upstream final : public grpc::ClientReadReactor<GenerateResponse> {
   public:
    Upstream(GenerateProxy* proxy, Target target, std::unique_ptr<grpc::ClientContext> context)
        : proxy_(proxy), target(std::move(target)), context(std::move(context)) {}

    void OnReadDone(bool ok) override {
      if (ok) proxy_->Relay(this);  // else the stream ended; OnDone brings the status
    }
    void OnDone(const grpc::Status& status) override {
      GenerateProxy* proxy = proxy_;
      proxy->UpstreamDone(this, status);
      proxy->Unref();  // may delete the proxy and this Upstream: nothing may follow
    }

   private:
    GenerateProxy* const proxy_;

   public:
    Target target;
    const std::unique_ptr<grpc::ClientContext> context;
  };

  const std::string& Address(const Upstream& upstream) const {
    return upstream.target.conn->endpoint->address();
  }

  Upstream* Current() {
    std::lock_guard lock(mu_);
    return current_;
  }

  void StartAttempt(Target target) {
    auto upstream = std::make_unique<Upstream>(
        this, std::move(target), grpc::ClientContext::FromCallbackServerContext(*context_));
    Upstream* raw = upstream.get();
    Ref();  // released at the end of raw->OnDone
    bool cancelled = false;
    {
      std::lock_guard lock(mu_);
      attempts_.push_back(std::move(upstream));
      current_ = raw;
      cancelled = client_cancelled_;
    }
    raw->target.conn->inference->async()->Generate(raw->context.get(), request_, raw);
    raw->StartRead(&response_);
    raw->StartCall();
    if (cancelled) raw->context->TryCancel();
  }

  // A message arrived from the worker: pass it on. The hold keeps the worker call from
  // completing (and this proxy from finishing) while the write is outstanding.
  void Relay(Upstream* upstream) {
    upstream->AddHold();
    bool first = false;
    bool first_token = false;
    {
      std::lock_guard lock(mu_);
      first = messages_relayed_ == 0;
      ++messages_relayed_;
      // Time to first token counts generated tokens, not the prompt scores that may come
      // in messages before them.
      first_token = !token_relayed_ && response_.token_ids_size() > 0;
      token_relayed_ = token_relayed_ || first_token;
    }
    if (first) {
      // Only now is the serving worker certain (a retry can no longer happen), so the
      // initial metadata goes out with the first message rather than earlier.
      AddWorkerMetadata(context_,
                        WorkerId(*upstream->context, Address(*upstream), /*call_done=*/false),
                        Address(*upstream), /*initial=*/true);
    }
    if (first_token && env_.metrics != nullptr) {
      env_.metrics->ObserveTimeToFirstToken(absl::Now() - start_);
    }
    StartWrite(&response_);
  }

  void UpstreamDone(Upstream* upstream, const grpc::Status& status) {
    Target retry;
    bool cancelled = false;
    int64_t relayed = 0;
    {
      std::lock_guard lock(mu_);
      upstream->target.in_flight.Reset();
      // The worker call's CANCELLED can arrive before OnCancel: a client that went away is
      // not a worker failure either way.
      cancelled = client_cancelled_ || context_->IsCancelled();
      relayed = messages_relayed_;
      if (!cancelled && planner_.MayRetry(status, relayed > 0)) retry = planner_.Retry();
    }
    if (retry.conn != nullptr) {
      Log(LogLevel::kWarning, "router", "worker failed before the first token; retrying",
          {{"method", "Generate"},
           {"worker", Address(*upstream)},
           {"next", retry.conn->endpoint->address()},
           {"status", status.error_message()}});
      if (env_.metrics != nullptr) env_.metrics->CountRetry("Generate");
      StartAttempt(std::move(retry));
      return;
    }
    AddWorkerMetadata(context_,
                      WorkerId(*upstream->context, Address(*upstream), /*call_done=*/true),
                      Address(*upstream), /*initial=*/false);
    FinishCall(ClientStatus(status, Address(*upstream), relayed, cancelled));
  }

  // Runs once per call: from Begin, or from the last attempt's UpstreamDone.
  void FinishCall(const grpc::Status& status) {
    if (env_.metrics != nullptr) {
      env_.metrics->ObserveRequest("Generate", status.error_code(), absl::Now() - start_);
    }
    // The client's slot frees before it can see the status, so a client that starts its
    // next stream on seeing this one end is never refused for it.
    lease_.Reset();
    Finish(status);
  }

  const ProxyEnv& env_;
  grpc::CallbackServerContext* const context_;
  // The client's request, or capped_request_ when the router imposed its max_tokens.
  const GenerateRequest* request_;
  GenerateRequest capped_request_;
  const absl::Time start_;
  ClientLimiter::Lease lease_;  // this stream's slot of its client's concurrency
  // One buffer: a message is read into it, written from it, and only then is the next
  // read started.
  GenerateResponse response_;

  std::mutex mu_;
  RoutePlanner planner_;  // guarded by mu_
  // Every attempt, kept until the proxy dies: an Upstream cannot be freed inside its own
  // OnDone, and gRPC may still be finishing with it.
  std::vector<std::unique_ptr<Upstream>> attempts_;  // guarded by mu_
  Upstream* current_ = nullptr;                      // guarded by mu_
  bool client_cancelled_ = false;                    // guarded by mu_
  int64_t messages_relayed_ = 0;                     // guarded by mu_
  bool token_relayed_ = false;                       // guarded by mu_; a message had tokens
};

}  // namespace

grpc::ServerWriteReactor<GenerateResponse>* StartGenerateProxy(const ProxyEnv& env,
                                                               grpc::CallbackServerContext* context,
                                                               const GenerateRequest* request) {
  // gRPC holds the reactor until OnDone; SharedReactorState frees it after the last
  // holder lets go.
  auto proxy = std::make_unique<GenerateProxy>(env, context, request);
  proxy->Begin();
  return proxy.release();
}

}  // namespace ringserve::router
