#include "tests/unit/router/openai_stack.h"

#include <utility>

#include "gtest/gtest.h"

namespace ringserve::router::testing {

OpenAiStack::OpenAiStack(RouterOptions options, openai::GatewayOptions gateway_options)
    : worker_(std::make_unique<FakeWorker>("w0")) {
  options.listen_address = "127.0.0.1:0";
  options.membership.source = *WorkerSource::Parse(worker_->address());
  options.membership.check_health = false;
  auto router = RouterServer::Create(std::move(options), nullptr);
  EXPECT_TRUE(router.ok()) << router.status();
  router_ = std::move(*router);
  gateway_ =
      std::make_unique<openai::OpenAiGateway>(router_->LocalChannel(), std::move(gateway_options));
  http::HttpServerOptions http_options;
  http_options.host = "127.0.0.1";
  auto http = http::HttpServer::Start(
      http_options, [g = gateway_.get()](http::HttpRequest request,
                                         std::shared_ptr<http::ResponseWriter> writer) {
        g->Handle(std::move(request), std::move(writer));
      });
  EXPECT_TRUE(http.ok()) << http.status();
  http_ = std::move(*http);
}

OpenAiStack::~OpenAiStack() {
  http_.reset();
  gateway_.reset();
  router_.reset();
  worker_.reset();
}

}  // namespace ringserve::router::testing
