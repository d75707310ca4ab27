// The worker's ringserve.v1.Admin: its own statistics and drain.
#ifndef RINGSERVE_WORKER_SERVER_ADMIN_SERVICE_H_
#define RINGSERVE_WORKER_SERVER_ADMIN_SERVICE_H_

#include <functional>

#include "absl/time/time.h"
#include "ringserve/v1/admin.grpc.pb.h"
#include "worker/server/inference_service.h"
#include "worker/server/step_window.h"

namespace ringserve::server {

struct AdminEnv {
  const ServiceEnv* service = nullptr;
  StepWindow* steps = nullptr;
  absl::Time started;
  int32_t queue_capacity = 0;
  // Turns health NOT_SERVING and stops admissions (WorkerServer::BeginDrain).
  std::function<void()> begin_drain;
  std::function<bool()> draining;
};

// Thread: gRPC callback threads.
class AdminService final : public ringserve::v1::Admin::CallbackService {
 public:
  explicit AdminService(AdminEnv env) : env_(std::move(env)) {}

  grpc::ServerUnaryReactor* GetStats(grpc::CallbackServerContext* context,
                                     const ringserve::v1::GetStatsRequest* request,
                                     ringserve::v1::GetStatsResponse* response) override;
  grpc::ServerUnaryReactor* Drain(grpc::CallbackServerContext* context,
                                  const ringserve::v1::DrainRequest* request,
                                  ringserve::v1::DrainResponse* response) override;

 private:
  AdminEnv env_;
};

}  // namespace ringserve::server

#endif  // RINGSERVE_WORKER_SERVER_ADMIN_SERVICE_H_
