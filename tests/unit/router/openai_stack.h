// OpenAiStack: ringserve-router's OpenAI front end in process: a RouterServer over one
// FakeWorker, its OpenAiGateway on the router's local channel, and an HTTP server on a free
// loopback port, as `ringserve-router --http-port` puts them together.
#ifndef RINGSERVE_TESTS_UNIT_ROUTER_OPENAI_STACK_H_
#define RINGSERVE_TESTS_UNIT_ROUTER_OPENAI_STACK_H_

#include <memory>

#include "common/http/http_server.h"
#include "common/openai/openai_gateway.h"
#include "router/router_server.h"
#include "tests/unit/router/fake_worker.h"

namespace ringserve::router::testing {

class OpenAiStack {
 public:
  // The worker is named "w0"; the router listens on 127.0.0.1 and checks no health.
  OpenAiStack(RouterOptions options = RouterOptions(),
              openai::GatewayOptions gateway_options = openai::GatewayOptions());
  // Stops the HTTP server first, then the gateway, the router and the worker.
  ~OpenAiStack();

  FakeWorker& worker() { return *worker_; }
  RouterServer& router() { return *router_; }
  http::HttpServer& http() { return *http_; }

 private:
  std::unique_ptr<FakeWorker> worker_;
  std::unique_ptr<RouterServer> router_;
  std::unique_ptr<openai::OpenAiGateway> gateway_;
  std::unique_ptr<http::HttpServer> http_;
};

}  // namespace ringserve::router::testing

#endif  // RINGSERVE_TESTS_UNIT_ROUTER_OPENAI_STACK_H_
