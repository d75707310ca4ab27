#include "router/router_metrics.h"

#include <algorithm>

#include "common/grpc/grpc_status.h"
#include "common/metrics/metrics_server.h"
#include "router/membership.h"

namespace ringserve::router {

RouterMetrics::RouterMetrics(prometheus::Registry& registry)
    : requests_(prometheus::BuildCounter()
                    .Name("ringserve_router_requests_total")
                    .Help("Calls the router finished, by method and gRPC status code")
                    .Register(registry)),
      latency_(prometheus::BuildHistogram()
                   .Name("ringserve_router_request_duration_seconds")
                   .Help("Time from receiving a call to its final status, by method")
                   .Register(registry)),
      ttft_(prometheus::BuildHistogram()
                .Name("ringserve_router_time_to_first_token_seconds")
                .Help("Time from receiving a Generate to relaying its first message")
                .Register(registry)
                .Add({}, metrics::LatencyBucketsSeconds())),
      retries_(prometheus::BuildCounter()
                   .Name("ringserve_router_retries_total")
                   .Help("Calls retried on the next worker after an unreachable one, by method")
                   .Register(registry)),
      placements_(prometheus::BuildCounter()
                      .Name("ringserve_router_generate_placements_total")
                      .Help("Generate calls by what placed them (session, prefix or random) and "
                            "whether bounded loads sent them past their key's ring owner")
                      .Register(registry)),
      in_flight_(prometheus::BuildGauge()
                     .Name("ringserve_router_worker_in_flight")
                     .Help("Calls this router has in flight to each known worker")
                     .Register(registry)),
      healthy_workers_(prometheus::BuildGauge()
                           .Name("ringserve_router_ring_healthy_workers")
                           .Help("Workers in the ring (passing health checks)")
                           .Register(registry)
                           .Add({})),
      known_workers_(prometheus::BuildGauge()
                         .Name("ringserve_router_known_workers")
                         .Help("Workers listed or resolved, healthy or not")
                         .Register(registry)
                         .Add({})) {}

void RouterMetrics::ObserveRequest(const std::string& method, grpc::StatusCode code,
                                   absl::Duration latency) {
  requests_.Add({{"method", method}, {"code", StatusCodeName(code)}}).Increment();
  latency_.Add({{"method", method}}, metrics::LatencyBucketsSeconds())
      .Observe(absl::ToDoubleSeconds(latency));
}

void RouterMetrics::ObserveTimeToFirstToken(absl::Duration ttft) {
  ttft_.Observe(absl::ToDoubleSeconds(ttft));
}

void RouterMetrics::CountRetry(const std::string& method) {
  retries_.Add({{"method", method}}).Increment();
}

void RouterMetrics::CountPlacement(std::string_view key_kind, bool spilled) {
  placements_.Add({{"key", std::string(key_kind)}, {"spilled", spilled ? "true" : "false"}})
      .Increment();
}

void RouterMetrics::ObserveMembership(const std::vector<std::shared_ptr<const WorkerConn>>& known,
                                      size_t num_healthy) {
  std::lock_guard lock(mu_);
  std::vector<std::string> now;
  for (const auto& conn : known) {
    const std::string& address = conn->endpoint->address();
    in_flight_.Add({{"worker", address}}).Set(static_cast<double>(conn->endpoint->in_flight()));
    now.push_back(address);
  }
  for (const std::string& address : gauged_workers_) {
    if (std::find(now.begin(), now.end(), address) == now.end()) {
      in_flight_.Remove(&in_flight_.Add({{"worker", address}}));
    }
  }
  gauged_workers_ = std::move(now);
  healthy_workers_.Set(static_cast<double>(num_healthy));
  known_workers_.Set(static_cast<double>(known.size()));
}

}  // namespace ringserve::router
