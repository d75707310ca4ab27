// MetricsServer: a process's Prometheus registry and, when a port is given, the HTTP
// exposer that serves it as text at /metrics (the pull model: Prometheus scrapes us).
#ifndef RINGSERVE_COMMON_METRICS_METRICS_SERVER_H_
#define RINGSERVE_COMMON_METRICS_METRICS_SERVER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "prometheus/registry.h"

namespace prometheus {
class Exposer;
}  // namespace prometheus

namespace ringserve::metrics {

struct MetricsOptions {
  // Serve /metrics over HTTP. false: the registry still counts (tests read it directly)
  // but nothing listens (--metrics-port 0).
  bool serve = false;
  // Where to listen when serving; port 0 picks a free port (see port()).
  std::string host = "0.0.0.0";
  int port = 0;
};

// Owner: main (or a test), for the life of the process's servers; components register
// their metric families in registry() at construction and keep references to them
// (prometheus-cpp's families and metrics are never freed while the registry lives).
// Thread: any; prometheus-cpp metrics are thread-safe.
class MetricsServer {
 public:
  // INVALID_ARGUMENT for a port outside [0, 65535]; UNAVAILABLE when the port cannot be
  // bound.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Create(const MetricsOptions& options);
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  prometheus::Registry& registry() { return *registry_; }
  // The port /metrics is served on; 0 when not serving.
  int port() const { return port_; }

 private:
  MetricsServer() = default;

  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  int port_ = 0;
};

// Histogram bucket bounds in seconds for request latencies and time to first token:
// 1 ms to ~65 s, doubling.
std::vector<double> LatencyBucketsSeconds();

}  // namespace ringserve::metrics

#endif  // RINGSERVE_COMMON_METRICS_METRICS_SERVER_H_
