// UnaryProxy: a unary Inference call (Fork, CloseSession, Tokenize, GetModelInfo)
// relayed to one worker, with the same retry, metadata and status rules as Generate.
#ifndef RINGSERVE_ROUTER_UNARY_PROXY_H_
#define RINGSERVE_ROUTER_UNARY_PROXY_H_

#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "common/grpc/grpc_status.h"
#include "common/log.h"
#include "grpcpp/support/client_callback.h"
#include "grpcpp/support/server_callback.h"
#include "router/proxy_call.h"
#include "router/route.h"

namespace ringserve::router {

// Starts the worker call of one attempt: stub->async()->Method(context, request, response,
// reactor). A plain function so each method is one captureless lambda.
template <typename Request, typename Response>
using StartUnaryFn = void (*)(const WorkerConn& worker, grpc::ClientContext* context,
                              const Request* request, Response* response,
                              grpc::ClientUnaryReactor* reactor);

// Owner: gRPC (server side) and its Upstreams, through SharedReactorState.
// Thread: gRPC callback threads; mu_ guards the planner and the attempts.
template <typename Request, typename Response>
class UnaryProxy final : public grpc::ServerUnaryReactor, public SharedReactorState {
 public:
  // Starts the call and returns the reactor that gRPC owns until OnDone.
  static grpc::ServerUnaryReactor* Start(const ProxyEnv& env, std::string method,
                                         StartUnaryFn<Request, Response> start_fn, Route route,
                                         grpc::CallbackServerContext* context,
                                         const Request* request, Response* response) {
    auto proxy = std::unique_ptr<UnaryProxy>(
        new UnaryProxy(env, std::move(method), start_fn, route, context, request, response));
    proxy->Begin();
    return proxy.release();
  }

  void OnDone() override { Unref(); }

 private:
  class Upstream final : public grpc::ClientUnaryReactor {
   public:
    Upstream(UnaryProxy* proxy, Target target)
        : proxy_(proxy),
          target(std::move(target)),
          context(grpc::ClientContext::FromCallbackServerContext(*proxy->context_)) {}
    void OnDone(const grpc::Status& status) override {
      UnaryProxy* proxy = proxy_;
      proxy->UpstreamDone(this, status);
      proxy->Unref();  // may delete the proxy and this Upstream: nothing may follow
    }

   private:
    UnaryProxy* const proxy_;

   public:
    Target target;
    const std::unique_ptr<grpc::ClientContext> context;
  };

  UnaryProxy(const ProxyEnv& env, std::string method, StartUnaryFn<Request, Response> start_fn,
             Route route, grpc::CallbackServerContext* context, const Request* request,
             Response* response)
      : env_(env),
        method_(std::move(method)),
        start_fn_(start_fn),
        context_(context),
        request_(request),
        response_(response),
        start_(absl::Now()),
        planner_(env.membership, route, RandomBits()) {}

  // planner_ is read without mu_: no callback can run before the first attempt.
  void Begin() {
    if (absl::Status s = env_.policy.Authenticate(*context_); !s.ok()) {
      return FinishCall(ToGrpcStatus(s));
    }
    Target target;
    if (grpc::Status refused = FirstTarget(env_, planner_, &target); !refused.ok()) {
      return FinishCall(refused);
    }
    StartAttempt(std::move(target));
  }

  void StartAttempt(Target target) {
    auto upstream = std::make_unique<Upstream>(this, std::move(target));
    Upstream* raw = upstream.get();
    Ref();  // released at the end of raw->OnDone
    {
      std::lock_guard lock(mu_);
      attempts_.push_back(std::move(upstream));
    }
    response_->Clear();
    start_fn_(*raw->target.conn, raw->context.get(), request_, response_, raw);
    raw->StartCall();
  }

  void UpstreamDone(Upstream* upstream, const grpc::Status& status) {
    const std::string& address = upstream->target.conn->endpoint->address();
    const bool cancelled = context_->IsCancelled();
    Target retry;
    {
      std::lock_guard lock(mu_);
      upstream->target.in_flight.Reset();
      if (!cancelled && planner_.MayRetry(status, /*relayed=*/false)) retry = planner_.Retry();
    }
    if (retry.conn != nullptr) {
      Log(LogLevel::kWarning, "router", "worker call failed; retrying on the next worker",
          {{"method", method_},
           {"worker", address},
           {"next", retry.conn->endpoint->address()},
           {"status", status.error_message()}});
      if (env_.metrics != nullptr) env_.metrics->CountRetry(method_);
      StartAttempt(std::move(retry));
      return;
    }
    const std::string worker_id = WorkerId(*upstream->context, address, /*call_done=*/true);
    AddWorkerMetadata(context_, worker_id, address, /*initial=*/true);
    AddWorkerMetadata(context_, worker_id, address, /*initial=*/false);
    FinishCall(ClientStatus(status, address, 0, cancelled));
  }

  void FinishCall(const grpc::Status& status) {
    if (env_.metrics != nullptr) {
      env_.metrics->ObserveRequest(method_, status.error_code(), absl::Now() - start_);
    }
    Finish(status);
  }

  const ProxyEnv& env_;
  const std::string method_;
  const StartUnaryFn<Request, Response> start_fn_;
  grpc::CallbackServerContext* const context_;
  const Request* const request_;
  Response* const response_;  // gRPC's, valid until OnDone; each attempt writes it afresh
  const absl::Time start_;

  std::mutex mu_;
  RoutePlanner planner_;  // guarded by mu_
  // Every attempt, kept until the proxy dies (an Upstream cannot be freed in its OnDone).
  std::vector<std::unique_ptr<Upstream>> attempts_;  // guarded by mu_
};

}  // namespace ringserve::router

#endif  // RINGSERVE_ROUTER_UNARY_PROXY_H_
