// The worker's ringserve.v1.Admin: its own statistics and drain.
#ifndef RINGSERVE_WORKER_SERVER_ADMIN_SERVICE_H_
#define RINGSERVE_WORKER_SERVER_ADMIN_SERVICE_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "ringserve/v1/admin.grpc.pb.h"
#include "worker/model/lora_adapter.h"
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
  // Reads a LoRA adapter for the model (LoadAdapter); null when the worker loads none while
  // serving (no --max-loras).
  std::function<absl::StatusOr<std::shared_ptr<const model::LoraAdapter>>(const std::string& name,
                                                                          const std::string& path)>
      read_adapter;
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
  // Reads the adapter and loads it on a short-lived thread: a large one takes seconds to
  // read, which must not hold a gRPC callback thread.
  grpc::ServerUnaryReactor* LoadAdapter(grpc::CallbackServerContext* context,
                                        const ringserve::v1::LoadAdapterRequest* request,
                                        ringserve::v1::AdapterResponse* response) override;
  grpc::ServerUnaryReactor* UnloadAdapter(grpc::CallbackServerContext* context,
                                          const ringserve::v1::UnloadAdapterRequest* request,
                                          ringserve::v1::AdapterResponse* response) override;

 private:
  AdminEnv env_;
};

}  // namespace ringserve::server

#endif  // RINGSERVE_WORKER_SERVER_ADMIN_SERVICE_H_
