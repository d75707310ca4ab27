// OpenAiFront: OpenAI's HTTP API for a ringserve.v1 Inference service, the way ringserve's
// binaries serve it (--http-port): an HTTP server whose requests an OpenAiGateway turns into
// gRPC calls on the binary's own local channel, its responses counted in the binary's
// registry. The router and the worker start the same front; only the channel differs.
#ifndef RINGSERVE_COMMON_OPENAI_OPENAI_FRONT_H_
#define RINGSERVE_COMMON_OPENAI_OPENAI_FRONT_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/http/http_server.h"
#include "common/metrics/metrics_server.h"
#include "common/openai/http_metrics.h"
#include "common/openai/openai_gateway.h"
#include "grpcpp/channel.h"

namespace ringserve::openai {

struct OpenAiFrontOptions {
  std::string host = "0.0.0.0";
  int port = 0;  // 0 picks a free one
  size_t max_body_bytes = 16 << 20;
  GatewayOptions gateway;
  // Where responses are counted (and GET /metrics renders from): the binary's; required.
  metrics::MetricsServer* metrics = nullptr;
  std::string metric_name = "ringserve_router_http_requests_total";
};

// Owner: the binary's main. Thread: Shutdown and the destructor from main.
class OpenAiFront {
 public:
  // UNAVAILABLE when the port cannot be bound.
  static absl::StatusOr<std::unique_ptr<OpenAiFront>> Start(
      const std::shared_ptr<grpc::Channel>& channel, OpenAiFrontOptions options);

  int port() const { return http_->port(); }
  // Stops taking new connections and requests and lets responses in progress finish within
  // `grace` (HttpServer::Shutdown). Call before the gRPC server behind the channel stops.
  void Shutdown(absl::Duration grace) { http_->Shutdown(grace); }

 private:
  OpenAiFront() = default;

  std::unique_ptr<HttpMetrics> metrics_;
  std::unique_ptr<OpenAiGateway> gateway_;
  // Last: it goes first, before the gateway its handler calls.
  std::unique_ptr<http::HttpServer> http_;
};

}  // namespace ringserve::openai

#endif  // RINGSERVE_COMMON_OPENAI_OPENAI_FRONT_H_
