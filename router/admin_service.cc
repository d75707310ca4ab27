#include "router/admin_service.h"

#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/grpc/grpc_status.h"

namespace ringserve::router {
namespace {

using ringserve::v1::AdapterResponse;
using ringserve::v1::GetStatsRequest;
using ringserve::v1::GetStatsResponse;
using ringserve::v1::WorkerStats;

constexpr auto kStatsTimeout = std::chrono::seconds(2);
// Reading an adapter from disk and writing it to the device takes a worker seconds.
constexpr auto kAdapterTimeout = std::chrono::seconds(120);

// One worker's call of a fan-out, and what it answered.
template <typename Response>
struct WorkerReply {
  std::shared_ptr<const WorkerConn> worker;
  Response response;
  grpc::Status status;
  const std::string& address() const { return worker->endpoint->address(); }
};

// One Admin call fanned out to every healthy worker, answered when the last one ends:
// `start` begins a worker's call (worker->admin's async method), `merge` turns the replies
// into the client's response and status. Owner: gRPC and the per-worker calls, through
// SharedReactorState.
template <typename Request, typename Response>
class AdminFanOut final : public grpc::ServerUnaryReactor, public SharedReactorState {
 public:
  using Start = std::function<void(ringserve::v1::Admin::StubInterface::async_interface*,
                                   grpc::ClientContext*, const Request*, Response*,
                                   grpc::ClientUnaryReactor*)>;
  using Merge =
      std::function<grpc::Status(const std::vector<const WorkerReply<Response>*>&, Response*)>;

  AdminFanOut(const ProxyEnv& env, grpc::CallbackServerContext* context, const Request& request,
              Response* response, std::string method, std::chrono::seconds timeout, Start start,
              Merge merge)
      : env_(env),
        context_(context),
        request_(request),
        response_(response),
        method_(std::move(method)),
        timeout_(timeout),
        start_call_(std::move(start)),
        merge_(std::move(merge)),
        start_(absl::Now()) {}

  void Begin() {
    if (absl::Status s = env_.policy.Authenticate(*context_); !s.ok()) {
      return FinishCall(ToGrpcStatus(s));
    }
    const auto snapshot = env_.membership.snapshot();
    std::vector<std::shared_ptr<const WorkerConn>> workers;
    for (const auto& endpoint : snapshot->ring->endpoints()) {
      workers.push_back(snapshot->workers.at(endpoint.get()));
    }
    if (workers.empty()) {
      return FinishCall(grpc::Status(grpc::StatusCode::UNAVAILABLE, "no healthy worker"));
    }
    {
      std::lock_guard lock(mu_);
      pending_ = workers.size();
      for (auto& worker : workers) calls_.push_back(std::make_unique<WorkerCall>(this, worker));
    }
    const auto deadline =
        std::min(context_->deadline(), std::chrono::system_clock::now() + timeout_);
    for (size_t i = 0; i < workers.size(); ++i) {
      WorkerCall* call = calls_[i].get();
      Ref();  // released at the end of call->OnDone
      call->context.set_deadline(deadline);
      start_call_(call->reply.worker->admin->async(), &call->context, &request_,
                  &call->reply.response, call);
      call->StartCall();
    }
  }

  void OnDone() override { Unref(); }

 private:
  struct WorkerCall final : public grpc::ClientUnaryReactor {
    WorkerCall(AdminFanOut* fan_out, const std::shared_ptr<const WorkerConn>& worker)
        : fan_out(fan_out) {
      reply.worker = worker;
    }
    void OnDone(const grpc::Status& final_status) override {
      reply.status = final_status;
      AdminFanOut* parent = fan_out;
      parent->WorkerDone();
      parent->Unref();  // may delete the fan-out and this call: nothing may follow
    }
    AdminFanOut* const fan_out;
    grpc::ClientContext context;
    WorkerReply<Response> reply;
  };

  void WorkerDone() {
    {
      std::lock_guard lock(mu_);
      if (--pending_ > 0) return;
    }
    // The last reply: every call is done, so their results are read without contention.
    std::vector<const WorkerReply<Response>*> replies;
    for (const auto& call : calls_) replies.push_back(&call->reply);
    FinishCall(merge_(replies, response_));
  }

  void FinishCall(const grpc::Status& status) {
    if (env_.metrics != nullptr) {
      env_.metrics->ObserveRequest(method_, status.error_code(), absl::Now() - start_);
    }
    Finish(status);
  }

  const ProxyEnv& env_;
  grpc::CallbackServerContext* const context_;
  const Request request_;
  Response* const response_;
  const std::string method_;
  const std::chrono::seconds timeout_;
  const Start start_call_;
  const Merge merge_;
  const absl::Time start_;

  std::mutex mu_;
  size_t pending_ = 0;  // guarded by mu_
  // Filled before any call starts, then only read.
  std::vector<std::unique_ptr<WorkerCall>> calls_;
};

std::string Outcome(const grpc::Status& status) {
  return status.ok()
             ? "OK"
             : absl::StrCat(StatusCodeName(status.error_code()), ": ", status.error_message());
}

// One WorkerStats per worker that replied, in address order; the others as unreachable.
grpc::Status MergeStats(const std::vector<const WorkerReply<GetStatsResponse>*>& replies,
                        GetStatsResponse* response) {
  for (const auto* reply : replies) {
    if (reply->status.ok() && reply->response.workers_size() > 0) {
      for (const WorkerStats& stats : reply->response.workers()) {
        WorkerStats* out = response->add_workers();
        *out = stats;
        out->set_address(reply->address());
      }
    } else {
      response->add_unreachable_workers(absl::StrCat(
          reply->address(), ": ", reply->status.ok() ? "empty reply" : Outcome(reply->status)));
    }
  }
  return response->workers_size() > 0
             ? grpc::Status::OK
             : grpc::Status(
                   grpc::StatusCode::UNAVAILABLE,
                   absl::StrCat("no worker answered GetStats: ", response->unreachable_workers(0)));
}

// OK when every worker did it; else the first failure's code, naming every worker's outcome.
grpc::Status MergeAdapterReplies(const std::vector<const WorkerReply<AdapterResponse>*>& replies,
                                 AdapterResponse* response) {
  std::vector<std::string> outcomes;
  const grpc::Status* failure = nullptr;
  for (const auto* reply : replies) {
    if (reply->status.ok()) {
      for (const std::string& id : reply->response.worker_ids()) response->add_worker_ids(id);
    } else if (failure == nullptr) {
      failure = &reply->status;
    }
    outcomes.push_back(absl::StrCat(reply->address(), ": ", Outcome(reply->status)));
  }
  if (failure == nullptr) return grpc::Status::OK;
  return grpc::Status(failure->error_code(),
                      absl::StrCat(response->worker_ids_size(), " of ", replies.size(),
                                   " workers did it; ", absl::StrJoin(outcomes, "; ")));
}

template <typename Request, typename Response>
grpc::ServerUnaryReactor* FanOut(const ProxyEnv& env, grpc::CallbackServerContext* context,
                                 const Request& request, Response* response, std::string method,
                                 std::chrono::seconds timeout,
                                 typename AdminFanOut<Request, Response>::Start start,
                                 typename AdminFanOut<Request, Response>::Merge merge) {
  auto fan_out = std::make_unique<AdminFanOut<Request, Response>>(
      env, context, request, response, std::move(method), timeout, std::move(start),
      std::move(merge));
  fan_out->Begin();
  return fan_out.release();
}

}  // namespace

grpc::ServerUnaryReactor* AdminService::GetStats(grpc::CallbackServerContext* context,
                                                 const GetStatsRequest* request,
                                                 GetStatsResponse* response) {
  return FanOut<GetStatsRequest, GetStatsResponse>(
      env_, context, *request, response, "GetStats", kStatsTimeout,
      [](auto* stub, grpc::ClientContext* c, const GetStatsRequest* req, GetStatsResponse* resp,
         grpc::ClientUnaryReactor* reactor) { stub->GetStats(c, req, resp, reactor); },
      MergeStats);
}

grpc::ServerUnaryReactor* AdminService::LoadAdapter(
    grpc::CallbackServerContext* context, const ringserve::v1::LoadAdapterRequest* request,
    AdapterResponse* response) {
  return FanOut<ringserve::v1::LoadAdapterRequest, AdapterResponse>(
      env_, context, *request, response, "LoadAdapter", kAdapterTimeout,
      [](auto* stub, grpc::ClientContext* c, const ringserve::v1::LoadAdapterRequest* req,
         AdapterResponse* resp,
         grpc::ClientUnaryReactor* reactor) { stub->LoadAdapter(c, req, resp, reactor); },
      MergeAdapterReplies);
}

grpc::ServerUnaryReactor* AdminService::UnloadAdapter(
    grpc::CallbackServerContext* context, const ringserve::v1::UnloadAdapterRequest* request,
    AdapterResponse* response) {
  return FanOut<ringserve::v1::UnloadAdapterRequest, AdapterResponse>(
      env_, context, *request, response, "UnloadAdapter", kAdapterTimeout,
      [](auto* stub, grpc::ClientContext* c, const ringserve::v1::UnloadAdapterRequest* req,
         AdapterResponse* resp,
         grpc::ClientUnaryReactor* reactor) { stub->UnloadAdapter(c, req, resp, reactor); },
      MergeAdapterReplies);
}

grpc::ServerUnaryReactor* AdminService::Drain(grpc::CallbackServerContext* context,
                                              const ringserve::v1::DrainRequest* request,
                                              ringserve::v1::DrainResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (absl::Status s = env_.policy.Authenticate(*context); !s.ok()) {
    reactor->Finish(ToGrpcStatus(s));
    return reactor;
  }
  response->set_remaining_requests(static_cast<int32_t>(begin_drain_()));
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace ringserve::router
