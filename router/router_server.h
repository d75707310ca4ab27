// RouterServer: the router process's gRPC server (Inference and Admin proxies, the
// grpc.health.v1 service, server reflection) over one Membership.
#ifndef RINGSERVE_ROUTER_ROUTER_SERVER_H_
#define RINGSERVE_ROUTER_ROUTER_SERVER_H_

#include <atomic>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/channel.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "prometheus/registry.h"
#include "router/admin_service.h"
#include "router/call_policy.h"
#include "router/inference_service.h"
#include "router/membership.h"
#include "router/router_metrics.h"

namespace ringserve::router {

struct RouterOptions {
  // "host:port" to listen on; port 0 picks a free one (see port()).
  std::string listen_address = "0.0.0.0:0";
  // How clients connect (TLS, mutual TLS: common/grpc/tls_credentials.h); null: plaintext.
  std::shared_ptr<grpc::ServerCredentials> credentials;
  // The largest request message a client may send; a larger one is refused by gRPC with
  // RESOURCE_EXHAUSTED. The default matches the worker's, so an oversized prompt within
  // it reaches the worker's validation, which names the field.
  int max_request_bytes = 16 << 20;
  CallPolicyOptions policy;
  MembershipOptions membership;
  // Requests without a session go to the ring owner of their input's first this many
  // bytes (bounded loads apply), so those that share a prompt's beginning share one
  // worker's prefix cache; 0: the less loaded of two random workers.
  int prefix_affinity_bytes = 256;
  // Requests without a session that name a LoRA adapter go to the ring owner of the
  // adapter's name instead (bounded loads apply): each worker serves fewer distinct
  // adapters, so more find theirs in a slot (fewer swaps from host memory, fewer reads of
  // --lora-dir) at the cost of prefix affinity across them.
  bool adapter_affinity = false;
};

// Owner: main or a test. Thread: any; Drain and Shutdown may be called from a signal-
// watching thread while gRPC threads serve.
class RouterServer {
 public:
  // registry: where the router's metrics go; null for none. UNAVAILABLE when the address
  // cannot be bound.
  static absl::StatusOr<std::unique_ptr<RouterServer>> Create(RouterOptions options,
                                                              prometheus::Registry* registry);
  ~RouterServer();
  RouterServer(const RouterServer&) = delete;
  RouterServer& operator=(const RouterServer&) = delete;

  int port() const { return port_; }
  // A channel to this server over its private Unix socket (plaintext; calls carry the
  // CallPolicy's local-call key): the HTTP front's calls go through the same services,
  // checks and metrics as any client's, with HTTP/2 flow control between them.
  std::shared_ptr<grpc::Channel> LocalChannel();
  const Membership& membership() const { return *membership_; }
  const CallPolicy& policy() const { return *policy_; }

  // Health: the server ("") is SERVING from start to drain (docs/design.md says why,
  // workers or not); ringserve.v1.Inference only while the ring also has a worker.
  // Health turns NOT_SERVING and new calls get UNAVAILABLE; calls in flight go on.
  // Returns how many proxied calls are in flight. Idempotent.
  int64_t BeginDrain();
  // BeginDrain, then stops accepting calls and waits up to `grace` for the calls in
  // flight, cancelling those still running after it. Returns once the server stopped.
  void Shutdown(absl::Duration grace);

 private:
  RouterServer() = default;
  // Sets ringserve.v1.Inference's health from the ring and the drain flag.
  void UpdateInferenceHealth();

  // The server's health service once it serves, null again before it is destroyed.
  // Membership's thread updates it, so these outlive membership_ (declared before it).
  std::mutex health_mu_;
  grpc::HealthCheckServiceInterface* health_ = nullptr;  // guarded by health_mu_
  std::unique_ptr<RouterMetrics> metrics_;
  std::unique_ptr<Membership> membership_;
  std::atomic<bool> draining_{false};
  std::unique_ptr<CallPolicy> policy_;
  std::unique_ptr<ProxyEnv> env_;
  std::unique_ptr<InferenceService> inference_;
  std::unique_ptr<AdminService> admin_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::string local_address_;  // "unix-abstract:..." (LocalChannel)
  std::atomic<bool> shut_down_{false};
};

}  // namespace ringserve::router

#endif  // RINGSERVE_ROUTER_ROUTER_SERVER_H_
