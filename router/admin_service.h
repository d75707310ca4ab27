// AdminService: the router's ringserve.v1.Admin. GetStats fans out to every healthy
// worker and returns one WorkerStats per reply; LoadAdapter and UnloadAdapter act on every
// healthy worker; Drain drains the router itself.
#ifndef RINGSERVE_ROUTER_ADMIN_SERVICE_H_
#define RINGSERVE_ROUTER_ADMIN_SERVICE_H_

#include <functional>

#include "ringserve/v1/admin.grpc.pb.h"
#include "router/proxy_call.h"

namespace ringserve::router {

// Owner: RouterServer. Thread: gRPC callback threads; no state of its own.
class AdminService final : public ringserve::v1::Admin::CallbackService {
 public:
  // begin_drain starts the router's drain and returns the proxied calls still running.
  AdminService(const ProxyEnv& env, std::function<int64_t()> begin_drain)
      : env_(env), begin_drain_(std::move(begin_drain)) {}

  grpc::ServerUnaryReactor* GetStats(grpc::CallbackServerContext* context,
                                     const ringserve::v1::GetStatsRequest* request,
                                     ringserve::v1::GetStatsResponse* response) override;
  // Ignores DrainRequest.wait: the router's remaining calls are reported, not awaited
  // (SIGTERM waits for them).
  grpc::ServerUnaryReactor* Drain(grpc::CallbackServerContext* context,
                                  const ringserve::v1::DrainRequest* request,
                                  ringserve::v1::DrainResponse* response) override;
  // On every healthy worker (admin.proto): OK when all of them did it.
  grpc::ServerUnaryReactor* LoadAdapter(grpc::CallbackServerContext* context,
                                        const ringserve::v1::LoadAdapterRequest* request,
                                        ringserve::v1::AdapterResponse* response) override;
  grpc::ServerUnaryReactor* UnloadAdapter(grpc::CallbackServerContext* context,
                                          const ringserve::v1::UnloadAdapterRequest* request,
                                          ringserve::v1::AdapterResponse* response) override;

 private:
  const ProxyEnv& env_;
  const std::function<int64_t()> begin_drain_;
};

}  // namespace ringserve::router

#endif  // RINGSERVE_ROUTER_ADMIN_SERVICE_H_
