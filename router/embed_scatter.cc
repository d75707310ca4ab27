#include "router/embed_scatter.h"

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/grpc/grpc_status.h"
#include "common/log.h"
#include "router/route.h"
#include "router/router_metrics.h"

namespace ringserve::router {
namespace {

using ringserve::v1::EmbedRequest;
using ringserve::v1::EmbedResponse;

constexpr char kMethod[] = "Embed";

// The route a Generate of this one input would take.
Route RouteOfInput(const EmbedRequest& request, int input, const ProxyEnv& env) {
  return Route::ForEmbedInput(request.inputs(input), request.adapter(), env.prefix_affinity_bytes,
                              env.adapter_affinity);
}

// A worker's error names an input by its place in the worker's share ("inputs[2]: ..."): the
// client's message names it by its place in the client's request.
grpc::Status InClientsOrder(const grpc::Status& status, const std::vector<int>& inputs) {
  constexpr absl::string_view kPrefix = "inputs[";
  const std::string& message = status.error_message();
  if (!absl::StartsWith(message, kPrefix)) return status;
  const size_t close = message.find(']', kPrefix.size());
  size_t k = 0;
  if (close == std::string::npos ||
      !absl::SimpleAtoi(absl::string_view(message).substr(kPrefix.size(), close - kPrefix.size()),
                        &k) ||
      k >= inputs.size()) {
    return status;
  }
  return grpc::Status(status.error_code(), absl::StrCat(kPrefix, inputs[k], message.substr(close)),
                      status.error_details());
}

// One worker's share of the inputs: where they go, and their places in the client's order.
struct Share {
  std::unique_ptr<RoutePlanner> planner;  // of its first input's route
  Target target;
  std::vector<int> inputs;
};

class EmbedScatter final : public grpc::ServerUnaryReactor, public SharedReactorState {
 public:
  EmbedScatter(const ProxyEnv& env, grpc::CallbackServerContext* context,
               const EmbedRequest* request, EmbedResponse* response, std::vector<Share> shares)
      : env_(env),
        context_(context),
        request_(request),
        response_(response),
        start_(absl::Now()),
        shares_(std::move(shares)) {
    // Every field but the inputs, copied once rather than with every input for each share.
    base_ = *request_;
    base_.clear_inputs();
  }

  void Begin() {
    if (absl::Status s = env_.policy.Authenticate(*context_); !s.ok()) {
      return FinishCall(ToGrpcStatus(s));
    }
    {
      std::lock_guard lock(mu_);
      pending_ = shares_.size();
    }
    for (size_t i = 0; i < shares_.size(); ++i) StartAttempt(i, std::move(shares_[i].target));
  }

  void OnDone() override { Unref(); }

 private:
  // One worker call of one share. Owned by the scatter (calls_), which outlives it.
  struct WorkerCall final : public grpc::ClientUnaryReactor {
    WorkerCall(EmbedScatter* scatter, size_t share, Target target)
        : scatter(scatter),
          share(share),
          target(std::move(target)),
          context(grpc::ClientContext::FromCallbackServerContext(*scatter->context_)) {}
    void OnDone(const grpc::Status& status) override {
      EmbedScatter* parent = scatter;
      parent->CallDone(this, status);
      parent->Unref();  // may delete the scatter and this call: nothing may follow
    }
    EmbedScatter* const scatter;
    const size_t share;
    Target target;
    const std::unique_ptr<grpc::ClientContext> context;
    EmbedRequest request;
    EmbedResponse response;
  };

  void StartAttempt(size_t share, Target target) {
    auto call = std::make_unique<WorkerCall>(this, share, std::move(target));
    call->request = base_;
    for (const int input : shares_[share].inputs) {
      *call->request.add_inputs() = request_->inputs(input);
    }
    WorkerCall* raw = call.get();
    Ref();  // released at the end of raw->OnDone
    {
      std::lock_guard lock(mu_);
      calls_.push_back(std::move(call));
    }
    raw->target.conn->inference->async()->Embed(raw->context.get(), &raw->request, &raw->response,
                                                raw);
    raw->StartCall();
  }

  void CallDone(WorkerCall* call, const grpc::Status& status) {
    const std::string address = call->target.conn->endpoint->address();
    const bool cancelled = context_->IsCancelled();
    Target retry;
    bool last = false;
    std::vector<WorkerCall*> to_cancel;
    {
      std::lock_guard lock(mu_);
      call->target.in_flight.Reset();
      Share& share = shares_[call->share];
      if (!status.ok() && !failed_ && !cancelled &&
          share.planner->MayRetry(status, /*relayed=*/false)) {
        retry = share.planner->Retry();
      }
      if (retry.conn == nullptr) {
        if (status.ok() && call->response.embeddings_size() != call->request.inputs_size()) {
          RecordFailure(
              grpc::Status(
                  grpc::StatusCode::INTERNAL,
                  absl::StrCat("worker ", address, " answered ", call->response.embeddings_size(),
                               " embeddings for ", call->request.inputs_size(), " inputs")),
              to_cancel);
        } else if (!status.ok()) {
          RecordFailure(InClientsOrder(ClientStatus(status, address, 0, cancelled), share.inputs),
                        to_cancel);
        } else {
          replies_[call->share] = call;
        }
        last = --pending_ == 0;
      }
    }
    // Outside the lock: a cancelled call's OnDone may run on this thread.
    for (WorkerCall* other : to_cancel) other->context->TryCancel();
    if (retry.conn != nullptr) {
      Log(LogLevel::kWarning, "router", "worker call failed; retrying on the next worker",
          {{"method", kMethod},
           {"worker", address},
           {"next", retry.conn->endpoint->address()},
           {"status", status.error_message()}});
      if (env_.metrics != nullptr) env_.metrics->CountRetry(kMethod);
      StartAttempt(call->share, std::move(retry));
      return;
    }
    if (last) Answer();
  }

  // The first failure is the call's; the other calls in flight are cancelled. Holds mu_.
  void RecordFailure(grpc::Status status, std::vector<WorkerCall*>& to_cancel) {
    if (failed_) return;
    failed_ = true;
    failure_ = std::move(status);
    for (const auto& other : calls_) to_cancel.push_back(other.get());
  }

  // Every call has ended: no lock is needed to read their results.
  void Answer() {
    if (failed_) return FinishCall(failure_);
    response_->set_request_id(request_->request_id());
    std::vector<const ringserve::v1::Embedding*> ordered(request_->inputs_size());
    for (const auto& [share, call] : replies_) {
      const std::vector<int>& inputs = shares_[share].inputs;
      for (size_t k = 0; k < inputs.size(); ++k) {
        ordered[inputs[k]] = &call->response.embeddings(static_cast<int>(k));
      }
    }
    for (const ringserve::v1::Embedding* e : ordered) *response_->add_embeddings() = *e;
    FinishCall(grpc::Status::OK);
  }

  void FinishCall(const grpc::Status& status) {
    if (env_.metrics != nullptr) {
      env_.metrics->ObserveRequest(kMethod, status.error_code(), absl::Now() - start_);
    }
    Finish(status);
  }

  const ProxyEnv& env_;
  grpc::CallbackServerContext* const context_;
  const EmbedRequest* const request_;
  EmbedResponse* const response_;
  const absl::Time start_;
  EmbedRequest base_;  // the request without its inputs; set before any call starts

  std::mutex mu_;
  std::vector<Share> shares_;  // guarded by mu_ (planners); inputs only read
  size_t pending_ = 0;         // guarded by mu_: shares whose last attempt has not ended
  bool failed_ = false;        // guarded by mu_
  grpc::Status failure_;       // guarded by mu_
  std::map<size_t, WorkerCall*> replies_;  // guarded by mu_: each share's successful call
  // Every attempt, kept until the scatter dies (a call cannot be freed in its OnDone).
  std::vector<std::unique_ptr<WorkerCall>> calls_;  // guarded by mu_
};

}  // namespace

grpc::ServerUnaryReactor* StartEmbedScatter(const ProxyEnv& env,
                                            grpc::CallbackServerContext* context,
                                            const EmbedRequest* request, EmbedResponse* response) {
  if (request->inputs_size() < 2 || env.draining.load()) return nullptr;
  // Each input's worker, chosen as if it came alone (no target held meanwhile, so bounded
  // loads see the same loads for every input).
  std::vector<Share> shares;
  std::map<std::string, size_t> share_of;  // by worker address
  for (int i = 0; i < request->inputs_size(); ++i) {
    RoutePlanner planner(env.membership, RouteOfInput(*request, i, env), RandomBits());
    const Target target = planner.First();
    if (target.conn == nullptr) return nullptr;
    auto [it, added] = share_of.emplace(target.conn->endpoint->address(), shares.size());
    if (added) shares.emplace_back();
    shares[it->second].inputs.push_back(i);
  }
  if (shares.size() < 2) return nullptr;
  // Each share's call goes where its first input's route leads now; it holds that worker's
  // in-flight count from here on, as a proxied call's target does.
  for (Share& share : shares) {
    share.planner = std::make_unique<RoutePlanner>(
        env.membership, RouteOfInput(*request, share.inputs.front(), env), RandomBits());
    share.target = share.planner->First();
    if (share.target.conn == nullptr) return nullptr;
  }
  auto scatter = std::make_unique<EmbedScatter>(env, context, request, response, std::move(shares));
  EmbedScatter* raw = scatter.release();  // gRPC's until OnDone, which drops the reference
  raw->Begin();
  return raw;
}

}  // namespace ringserve::router
