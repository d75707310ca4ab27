#include "router/openai/http_metrics.h"

#include <atomic>
#include <utility>

#include "absl/strings/str_cat.h"
#include "prometheus/counter.h"

namespace ringserve::openai {
namespace {

constexpr const char* kEndpoints[] = {"/v1/chat/completions", "/v1/completions", "/v1/embeddings",
                                      "/v1/models", "/health"};

std::string EndpointLabel(const std::string& path) {
  for (const char* endpoint : kEndpoints) {
    if (path == endpoint) return endpoint;
  }
  return "other";
}

// Forwards to the server's writer; the first head (Respond or StartStream) is counted.
class CountingWriter final : public http::ResponseWriter {
 public:
  CountingWriter(HttpMetrics& metrics, std::string endpoint,
                 std::shared_ptr<http::ResponseWriter> inner)
      : metrics_(metrics), endpoint_(std::move(endpoint)), inner_(std::move(inner)) {}

  void Respond(int status, absl::string_view content_type, std::string body,
               http::Headers extra_headers) override {
    CountOnce(status);
    inner_->Respond(status, content_type, std::move(body), std::move(extra_headers));
  }
  void StartStream(int status, absl::string_view content_type,
                   http::Headers extra_headers) override {
    CountOnce(status);
    inner_->StartStream(status, content_type, std::move(extra_headers));
  }
  void Write(std::string data) override { inner_->Write(std::move(data)); }
  void Finish() override { inner_->Finish(); }
  void OnClientGone(std::function<void()> callback) override {
    inner_->OnClientGone(std::move(callback));
  }
  size_t pending_bytes() const override { return inner_->pending_bytes(); }
  void OnWritable(size_t low_water, std::function<void()> callback) override {
    inner_->OnWritable(low_water, std::move(callback));
  }

 private:
  void CountOnce(int status) {
    if (!counted_.exchange(true)) metrics_.Count(endpoint_, status);
  }

  HttpMetrics& metrics_;
  const std::string endpoint_;
  const std::shared_ptr<http::ResponseWriter> inner_;
  std::atomic<bool> counted_{false};
};

}  // namespace

HttpMetrics::HttpMetrics(prometheus::Registry& registry)
    : requests_(prometheus::BuildCounter()
                    .Name("ringserve_router_http_requests_total")
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
