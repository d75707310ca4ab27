#include "common/openai/head_hook_writer.h"

namespace ringserve::openai {
namespace {

class HeadersWriter final : public HeadHookWriter {
 public:
  HeadersWriter(http::Headers headers, std::shared_ptr<http::ResponseWriter> inner)
      : HeadHookWriter(std::move(inner)), headers_(std::move(headers)) {}

 private:
  void OnHead(int /*status*/, http::Headers& headers) override {
    headers.insert(headers.end(), headers_.begin(), headers_.end());
  }

  const http::Headers headers_;
};

}  // namespace

std::shared_ptr<http::ResponseWriter> WithHeaders(http::Headers headers,
                                                  std::shared_ptr<http::ResponseWriter> writer) {
  return std::make_shared<HeadersWriter>(std::move(headers), std::move(writer));
}

}  // namespace ringserve::openai
