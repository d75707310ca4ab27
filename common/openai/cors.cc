#include "common/openai/cors.h"

#include <algorithm>
#include <utility>

#include "common/openai/head_hook_writer.h"

namespace ringserve::openai {

std::optional<std::string> CorsPolicy::AllowOrigin(const std::string& origin) const {
  if (std::find(allowed_.begin(), allowed_.end(), "*") != allowed_.end()) return "*";
  if (std::find(allowed_.begin(), allowed_.end(), origin) != allowed_.end()) return origin;
  return std::nullopt;
}

std::shared_ptr<http::ResponseWriter> CorsPolicy::Wrap(
    std::string allow_origin, std::shared_ptr<http::ResponseWriter> writer) {
  http::Headers headers = {{"Access-Control-Expose-Headers", "X-Ringserve-Worker, X-Request-Id"}};
  // The answer depends on the Origin asked with, so caches must keep them apart.
  if (allow_origin != "*") headers.emplace_back("Vary", "Origin");
  headers.emplace_back("Access-Control-Allow-Origin", std::move(allow_origin));
  return WithHeaders(std::move(headers), std::move(writer));
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
