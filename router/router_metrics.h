// RouterMetrics: the router's Prometheus series (requests by method and status code,
// latency and time-to-first-token histograms, retries, in-flight requests per worker,
// ring membership).
#ifndef RINGSERVE_ROUTER_ROUTER_METRICS_H_
#define RINGSERVE_ROUTER_ROUTER_METRICS_H_

#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/time/time.h"
#include "grpcpp/support/status.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace ringserve::router {

struct WorkerConn;

// Owner: RouterServer (the registry belongs to main's MetricsServer and outlives it).
// Thread: any; prometheus-cpp metrics are thread-safe, and ObserveMembership is called by
// the Membership thread only.
class RouterMetrics {
 public:
  explicit RouterMetrics(prometheus::Registry& registry);

  // One finished call of an Inference or Admin method ("Generate", "Fork", ...).
  void ObserveRequest(const std::string& method, grpc::StatusCode code, absl::Duration latency);
  // Time from the router receiving a Generate to relaying its first message.
  void ObserveTimeToFirstToken(absl::Duration ttft);
  // A call retried on the next worker.
  void CountRetry(const std::string& method);
  // A Generate placed by `key_kind` (Route::key_kind); `spilled`: bounded loads sent it past
  // its key's ring owner.
  void CountPlacement(std::string_view key_kind, bool spilled);
  // Every known worker's in-flight count, and how many are healthy (in the ring).
  void ObserveMembership(const std::vector<std::shared_ptr<const WorkerConn>>& known,
                         size_t num_healthy);

 private:
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Histogram>& latency_;
  prometheus::Histogram& ttft_;
  prometheus::Family<prometheus::Counter>& retries_;
  prometheus::Family<prometheus::Counter>& placements_;
  prometheus::Family<prometheus::Gauge>& in_flight_;
  prometheus::Gauge& healthy_workers_;
  prometheus::Gauge& known_workers_;

  std::mutex mu_;
  // Workers whose in-flight gauge exists; a worker that leaves the list is removed.
  std::vector<std::string> gauged_workers_;  // guarded by mu_
};

}  // namespace ringserve::router

#endif  // RINGSERVE_ROUTER_ROUTER_METRICS_H_
