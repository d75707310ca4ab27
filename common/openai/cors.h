// CorsPolicy: which web origins may call the HTTP API from a browser
// (ringserve-router --http-allowed-origins), the headers their responses carry, and the
// answer to a browser's preflight. Off by default: a browser page then cannot read answers.
#ifndef RINGSERVE_COMMON_OPENAI_CORS_H_
#define RINGSERVE_COMMON_OPENAI_CORS_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/http/http_server.h"

namespace ringserve::openai {

// Thread: any (immutable after construction).
class CorsPolicy {
 public:
  // Origins as browsers send them ("https://app.example.com"); "*" allows any.
  explicit CorsPolicy(std::vector<std::string> allowed_origins)
      : allowed_(std::move(allowed_origins)) {}

  bool enabled() const { return !allowed_.empty(); }

  // The Access-Control-Allow-Origin value for a request from `origin`, or nullopt when that
  // origin may not call.
  std::optional<std::string> AllowOrigin(const std::string& origin) const;

  // `writer`, adding to every response's head what lets a page from `allow_origin` read it.
  static std::shared_ptr<http::ResponseWriter> Wrap(std::string allow_origin,
                                                    std::shared_ptr<http::ResponseWriter> writer);

  // A preflight (OPTIONS) from a permitted origin: 204 with the methods and request headers
  // the API takes; from any other, 403 saying so.
  static void AnswerPreflight(const std::optional<std::string>& allow_origin,
                              http::ResponseWriter& writer);

 private:
  const std::vector<std::string> allowed_;
};

}  // namespace ringserve::openai

#endif  // RINGSERVE_COMMON_OPENAI_CORS_H_
