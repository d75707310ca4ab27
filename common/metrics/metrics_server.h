// MetricsServer: a process's Prometheus registry and, when a port is given, the HTTP
// server that renders it as text at /metrics (the pull model: Prometheus scrapes us).
#ifndef RINGSERVE_COMMON_METRICS_METRICS_SERVER_H_
#define RINGSERVE_COMMON_METRICS_METRICS_SERVER_H_

#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/metrics/scrape_server.h"
#include "prometheus/registry.h"

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

  // Runs `refresh` before each scrape renders the registry, so gauges of state that
  // changes without an event (blocks, queues, sessions) are read when asked for. Once the
  // returned handle is destroyed `refresh` is never called again; destroy it before
  // whatever `refresh` reads.
  class ScrapeHook;
  [[nodiscard]] std::unique_ptr<ScrapeHook> OnScrape(std::function<void()> refresh);
  // The port /metrics is served on; 0 when not serving.
  int port() const { return port_; }
  // The registry as Prometheus text, after the scrape hooks ran: what /metrics answers, for
  // another server to answer too (the router's HTTP API port).
  std::string Render();

 private:
  MetricsServer() = default;

  std::shared_ptr<prometheus::Registry> registry_;
  std::mutex hooks_mu_;  // held while hooks run, so removing one waits for its last call
  std::list<std::function<void()>> hooks_;
  int port_ = 0;
  // Last: its thread renders through the members above, so it stops before they go.
  std::unique_ptr<ScrapeServer> scrape_server_;
};

class MetricsServer::ScrapeHook {
 public:
  ~ScrapeHook();
  ScrapeHook(const ScrapeHook&) = delete;
  ScrapeHook& operator=(const ScrapeHook&) = delete;

 private:
  friend class MetricsServer;
  ScrapeHook(MetricsServer* server, std::list<std::function<void()>>::iterator hook)
      : server_(server), hook_(hook) {}

  MetricsServer* const server_;
  const std::list<std::function<void()>>::iterator hook_;
};

// Histogram bucket bounds in seconds for request latencies and time to first token:
// 1 ms to ~65 s, doubling.
std::vector<double> LatencyBucketsSeconds();

}  // namespace ringserve::metrics

#endif  // RINGSERVE_COMMON_METRICS_METRICS_SERVER_H_
