#include "router/admin_service.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/grpc/grpc_status.h"

namespace ringserve::router {
namespace {

using ringserve::v1::GetStatsRequest;
using ringserve::v1::GetStatsResponse;
using ringserve::v1::WorkerStats;

constexpr auto kStatsTimeout = std::chrono::seconds(2);

// One GetStats fan-out: a call per healthy worker, answered when the last one ends.
// Owner: gRPC and the per-worker calls, through SharedReactorState.
class StatsFanOut final : public grpc::ServerUnaryReactor, public SharedReactorState {
 public:
  StatsFanOut(const ProxyEnv& env, grpc::CallbackServerContext* context, GetStatsResponse* response)
      : env_(env), context_(context), response_(response), start_(absl::Now()) {}

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
        std::min(context_->deadline(), std::chrono::system_clock::now() + kStatsTimeout);
    for (size_t i = 0; i < workers.size(); ++i) {
      WorkerCall* call = calls_[i].get();
      Ref();  // released at the end of call->OnDone
      call->context.set_deadline(deadline);
      call->worker->admin->async()->GetStats(&call->context, &request_, &call->response, call);
      call->StartCall();
    }
  }

  void OnDone() override { Unref(); }

 private:
  struct WorkerCall final : public grpc::ClientUnaryReactor {
    WorkerCall(StatsFanOut* fan_out, std::shared_ptr<const WorkerConn> worker)
        : fan_out(fan_out), worker(std::move(worker)) {}
    void OnDone(const grpc::Status& final_status) override {
      status = final_status;
      StatsFanOut* parent = fan_out;
      parent->WorkerDone();
      parent->Unref();  // may delete the fan-out and this call: nothing may follow
    }
    StatsFanOut* const fan_out;
    const std::shared_ptr<const WorkerConn> worker;
    grpc::ClientContext context;
    GetStatsResponse response;
    grpc::Status status;
  };

  void WorkerDone() {
    {
      std::lock_guard lock(mu_);
      if (--pending_ > 0) return;
    }
    // The last reply: every call is done, so their results are read without contention.
    for (const auto& call : calls_) {
      const std::string& address = call->worker->endpoint->address();
      if (call->status.ok() && call->response.workers_size() > 0) {
        for (const WorkerStats& stats : call->response.workers()) {
          WorkerStats* out = response_->add_workers();
          *out = stats;
          out->set_address(address);
        }
      } else {
        response_->add_unreachable_workers(
            absl::StrCat(address, ": ", StatusCodeName(call->status.error_code()), ": ",
                         call->status.ok() ? "empty reply" : call->status.error_message()));
      }
    }
    FinishCall(response_->workers_size() > 0
                   ? grpc::Status::OK
                   : grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                  absl::StrCat("no worker answered GetStats: ",
                                               response_->unreachable_workers(0))));
  }

  void FinishCall(const grpc::Status& status) {
    if (env_.metrics != nullptr) {
      env_.metrics->ObserveRequest("GetStats", status.error_code(), absl::Now() - start_);
    }
    Finish(status);
  }

  const ProxyEnv& env_;
  grpc::CallbackServerContext* const context_;
  GetStatsResponse* const response_;
  const absl::Time start_;
  const GetStatsRequest request_;

  std::mutex mu_;
  size_t pending_ = 0;  // guarded by mu_
  // Filled before any call starts, then only read.
  std::vector<std::unique_ptr<WorkerCall>> calls_;
};

}  // namespace

grpc::ServerUnaryReactor* AdminService::GetStats(grpc::CallbackServerContext* context,
                                                 const GetStatsRequest* request,
                                                 GetStatsResponse* response) {
  auto fan_out = std::make_unique<StatsFanOut>(env_, context, response);
  fan_out->Begin();
  return fan_out.release();
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
