// HttpMetrics: the HTTP API's responses by endpoint and status code
// (ringserve_router_http_requests_total{endpoint,code}), counted as each response's head
// goes out. Errors the gateway answers itself (bad JSON, unknown paths) never reach the
// router's gRPC metrics; this counts them with the rest.
#ifndef RINGSERVE_COMMON_OPENAI_HTTP_METRICS_H_
#define RINGSERVE_COMMON_OPENAI_HTTP_METRICS_H_

#include <memory>
#include <string>

#include "common/http/http_server.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/registry.h"

namespace ringserve::openai {

// Owner: the serving binary's OpenAiFront (the registry outlives it). Thread: any.
class HttpMetrics {
 public:
  // `name`: the counter's, the serving binary's (ringserve_worker_http_requests_total for a
  // worker's own HTTP port).
  explicit HttpMetrics(prometheus::Registry& registry,
                       const std::string& name = "ringserve_router_http_requests_total");

  // `writer`, counting its response's status once under `path` (an endpoint the API has,
  // else "other", so clients cannot grow the label set).
  std::shared_ptr<http::ResponseWriter> Counting(const std::string& path,
                                                 std::shared_ptr<http::ResponseWriter> writer);

  void Count(const std::string& endpoint, int status);

 private:
  prometheus::Family<prometheus::Counter>& requests_;
};

}  // namespace ringserve::openai

#endif  // RINGSERVE_COMMON_OPENAI_HTTP_METRICS_H_
