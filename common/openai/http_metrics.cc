#include "common/openai/http_metrics.h"

#include <atomic>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/openai/head_hook_writer.h"
#include "prometheus/counter.h"

namespace ringserve::openai {
namespace {

constexpr const char* kEndpoints[] = {"/v1/chat/completions",
                                      "/v1/completions",
                                      "/v1/responses",
                                      "/v1/messages",
                                      "/v1/messages/count_tokens",
                                      "/v1/embeddings",
                                      "/v1/models",
                                      "/tokenize",
                                      "/detokenize",
                                      "/health",
                                      "/metrics"};
// Paths that end in an id, labelled by their pattern.
constexpr const char* kIdPrefixes[] = {"/v1/models/", "/v1/responses/"};

std::string EndpointLabel(const std::string& path) {
  for (const char* endpoint : kEndpoints) {
    if (path == endpoint) return endpoint;
  }
  for (const char* prefix : kIdPrefixes) {
    if (absl::StartsWith(path, prefix)) return absl::StrCat(prefix, "{id}");
  }
  return "other";
}

// The first head (Respond or StartStream) is counted.
class CountingWriter final : public HeadHookWriter {
 public:
  CountingWriter(HttpMetrics& metrics, std::string endpoint,
                 std::shared_ptr<http::ResponseWriter> inner)
      : HeadHookWriter(std::move(inner)), metrics_(metrics), endpoint_(std::move(endpoint)) {}

 private:
  void OnHead(int status, http::Headers& /*headers*/) override {
    if (!counted_.exchange(true)) metrics_.Count(endpoint_, status);
  }

  HttpMetrics& metrics_;
  const std::string endpoint_;
  std::atomic<bool> counted_{false};
};

}  // namespace

HttpMetrics::HttpMetrics(prometheus::Registry& registry, const std::string& name)
    : requests_(prometheus::BuildCounter()
                    .Name(name)
                    .Help("Responses of the OpenAI HTTP API by endpoint and HTTP status")
                    .Register(registry)) {}

std::shared_ptr<http::ResponseWriter> HttpMetrics::Counting(
    const std::string& path, std::shared_ptr<http::ResponseWriter> writer) {
  return std::make_shared<CountingWriter>(*this, EndpointLabel(path), std::move(writer));
}

void HttpMetrics::Count(const std::string& endpoint, int status) {
  requests_.Add({{"endpoint", endpoint}, {"code", absl::StrCat(status)}}).Increment();
}

}  // namespace ringserve::openai
