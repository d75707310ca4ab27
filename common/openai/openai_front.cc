#include "common/openai/openai_front.h"

#include <utility>

namespace ringserve::openai {

absl::StatusOr<std::unique_ptr<OpenAiFront>> OpenAiFront::Start(
    const std::shared_ptr<grpc::Channel>& channel, OpenAiFrontOptions options) {
  auto front = std::unique_ptr<OpenAiFront>(new OpenAiFront());
  front->metrics_ = std::make_unique<HttpMetrics>(options.metrics->registry(), options.metric_name);
  options.gateway.metrics_text = [m = options.metrics] { return m->Render(); };
  front->gateway_ =
      std::make_unique<OpenAiGateway>(channel, std::move(options.gateway), front->metrics_.get());
  http::HttpServerOptions http_options;
  http_options.host = options.host;
  http_options.port = options.port;
  http_options.max_body_bytes = options.max_body_bytes;
  absl::StatusOr<std::unique_ptr<http::HttpServer>> http = http::HttpServer::Start(
      std::move(http_options),
      [g = front->gateway_.get()](http::HttpRequest request,
                                  std::shared_ptr<http::ResponseWriter> writer) {
        g->Handle(std::move(request), std::move(writer));
      });
  if (!http.ok()) return http.status();
  front->http_ = *std::move(http);
  return front;
}

}  // namespace ringserve::openai
