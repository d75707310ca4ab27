#include "router/openai/cors.h"

#include <algorithm>
#include <utility>

#include "router/openai/head_hook_writer.h"

namespace ringserve::openai {
namespace {

constexpr char kAllowOrigin[] = "Access-Control-Allow-Origin";

class CorsWriter final : public HeadHookWriter {
 public:
  CorsWriter(std::string allow_origin, std::shared_ptr<http::ResponseWriter> inner)
      : HeadHookWriter(std::move(inner)), allow_origin_(std::move(allow_origin)) {}

 private:
  void OnHead(int /*status*/, http::Headers& headers) override {
    headers.emplace_back(kAllowOrigin, allow_origin_);
    // The answer depends on the Origin asked with, so caches must keep them apart.
    if (allow_origin_ != "*") headers.emplace_back("Vary", "Origin");
    headers.emplace_back("Access-Control-Expose-Headers", "X-Ringserve-Worker");
  }

  const std::string allow_origin_;
};

}  // namespace

std::optional<std::string> CorsPolicy::AllowOrigin(const std::string& origin) const {
  if (std::find(allowed_.begin(), allowed_.end(), "*") != allowed_.end()) return "*";
  if (std::find(allowed_.begin(), allowed_.end(), origin) != allowed_.end()) return origin;
  return std::nullopt;
}

std::shared_ptr<http::ResponseWriter> CorsPolicy::Wrap(
    std::string allow_origin, std::shared_ptr<http::ResponseWriter> writer) {
  return std::make_shared<CorsWriter>(std::move(allow_origin), std::move(writer));
}

void CorsPolicy::AnswerPreflight(const std::optional<std::string>& allow_origin,
                                 http::ResponseWriter& writer) {
  if (!allow_origin.has_value()) {
    writer.Respond(403, "text/plain; charset=utf-8",
                   "this origin may not call the API (--http-allowed-origins)\n");
    return;
  }
  // Authorization must be named: a wildcard never covers it.
  writer.Respond(204, "", "",
                 {{"Access-Control-Allow-Methods", "GET, POST, OPTIONS"},
                  {"Access-Control-Allow-Headers", "Authorization, Content-Type, X-Request-Id"},
                  {"Access-Control-Max-Age", "600"}});
}

}  // namespace ringserve::openai
