// What every proxied call shares: the router's dependencies, the worker metadata the
// client gets back, the status a worker's failure becomes, and self-ownership for
// reactors that gRPC and the upstream attempts both hold.
#ifndef RINGSERVE_ROUTER_PROXY_CALL_H_
#define RINGSERVE_ROUTER_PROXY_CALL_H_

#include <atomic>
#include <cstdint>
#include <string>

#include "grpcpp/client_context.h"
#include "grpcpp/server_context.h"
#include "grpcpp/support/status.h"
#include "router/call_policy.h"
#include "router/membership.h"
#include "router/route.h"
#include "router/router_metrics.h"

namespace ringserve::router {

// The metadata key that names the serving worker (its --id), and the one the router adds
// with the worker's address.
inline constexpr char kWorkerKey[] = "x-ringserve-worker";
inline constexpr char kWorkerAddressKey[] = "x-ringserve-worker-address";

// Owner: RouterServer; outlives every call (the server is shut down first).
struct ProxyEnv {
  const Membership& membership;
  RouterMetrics* metrics = nullptr;  // may be null
  // Authentication and limits, checked when a call starts.
  CallPolicy& policy;
  // Set when the router drains: new calls get UNAVAILABLE.
  const std::atomic<bool>& draining;
  // Generate without a session: placed by this many leading bytes of its input (0: the
  // less loaded of two random workers). RouterOptions::prefix_affinity_bytes.
  int prefix_affinity_bytes = 0;
  // Generate and Embed without a session but with a LoRA adapter: placed by the adapter's
  // name instead. RouterOptions::adapter_affinity.
  bool adapter_affinity = false;
};

// The first attempt's worker into *target, or the status that refuses the call
// (UNAVAILABLE: the router is draining, or no worker is healthy). Called before any
// attempt starts, when nothing else touches the planner.
grpc::Status FirstTarget(const ProxyEnv& env, RoutePlanner& planner, Target* target);

// Random bits for power-of-two choices (per thread, no shared state).
uint64_t RandomBits();

// The worker's id from its metadata (trailing, once the call is done, then initial), else
// its address.
std::string WorkerId(const grpc::ClientContext& context, const std::string& address,
                     bool call_done);

// Names the worker to the client: x-ringserve-worker and x-ringserve-worker-address.
void AddWorkerMetadata(grpc::CallbackServerContext* context, const std::string& worker_id,
                       const std::string& address, bool initial);

// The status the router's client sees for a worker call that ended with `status`.
// A failure of the worker itself (unreachable, connection lost, or cancelled without the
// client asking) becomes UNAVAILABLE naming the worker and how far the call got; the worker's
// own answers (INVALID_ARGUMENT, NOT_FOUND, ...) and the client's cancellation or
// deadline pass through unchanged.
grpc::Status ClientStatus(const grpc::Status& status, const std::string& address,
                          int64_t messages_relayed, bool client_cancelled);

// A reactor held both by gRPC (until its OnDone) and by each upstream attempt (until that
// attempt's OnDone has returned); the last holder deletes it. gRPC's callback API hands
// reactors over as raw pointers, so this is the one place such an object is freed.
class SharedReactorState {
 public:
  virtual ~SharedReactorState() = default;
  void Ref() { refs_.fetch_add(1, std::memory_order_relaxed); }
  void Unref() {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

 private:
  std::atomic<int> refs_{1};  // the server side's reference
};

}  // namespace ringserve::router

#endif  // RINGSERVE_ROUTER_PROXY_CALL_H_
