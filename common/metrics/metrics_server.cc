#include "common/metrics/metrics_server.h"

#include <exception>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "prometheus/exposer.h"

namespace ringserve::metrics {

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Create(
    const MetricsOptions& options) {
  if (options.port < 0 || options.port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics port must be in [0, 65535], got ", options.port));
  }
  std::unique_ptr<MetricsServer> server(new MetricsServer());
  server->registry_ = std::make_shared<prometheus::Registry>();
  if (!options.serve) return server;
  // prometheus-cpp (civetweb underneath) reports a failed bind by throwing; this is the
  // one place that exception is turned into a status.
  try {
    server->exposer_ = std::make_unique<prometheus::Exposer>(
        absl::StrCat(options.host, ":", options.port), /*num_threads=*/1);
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on ", options.host, ":", options.port, ": ", e.what()));
  }
  server->exposer_->RegisterCollectable(server->registry_);
  const std::vector<int> ports = server->exposer_->GetListeningPorts();
  server->port_ = ports.empty() ? options.port : ports.front();
  return server;
}

MetricsServer::~MetricsServer() = default;

std::vector<double> LatencyBucketsSeconds() {
  std::vector<double> bounds;
  for (double b = 0.001; b < 70.0; b *= 2) bounds.push_back(b);
  return bounds;
}

}  // namespace ringserve::metrics
