#include "common/metrics/metrics_server.h"

#include <cmath>
#include <iterator>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "prometheus/text_serializer.h"

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
  auto scrape_server = ScrapeServer::Start({.host = options.host, .port = options.port},
                                           [s = server.get()] { return s->Render(); });
  if (!scrape_server.ok()) return scrape_server.status();
  server->scrape_server_ = *std::move(scrape_server);
  server->port_ = server->scrape_server_->port();
  return server;
}

MetricsServer::~MetricsServer() = default;

std::string MetricsServer::Render() {
  {
    std::lock_guard lock(hooks_mu_);
    for (const std::function<void()>& refresh : hooks_) refresh();
  }
  return prometheus::TextSerializer().Serialize(registry_->Collect());
}

std::unique_ptr<MetricsServer::ScrapeHook> MetricsServer::OnScrape(std::function<void()> refresh) {
  std::lock_guard lock(hooks_mu_);
  hooks_.push_back(std::move(refresh));
  return std::unique_ptr<ScrapeHook>(new ScrapeHook(this, std::prev(hooks_.end())));
}

MetricsServer::ScrapeHook::~ScrapeHook() {
  std::lock_guard lock(server_->hooks_mu_);
  server_->hooks_.erase(hook_);
}

std::vector<double> LatencyBucketsSeconds() {
  std::vector<double> bounds;
  constexpr int kBuckets = 17;  // 1 ms * 2^16 = 65.5 s
  for (int i = 0; i < kBuckets; ++i) bounds.push_back(std::ldexp(0.001, i));
  return bounds;
}

}  // namespace ringserve::metrics
