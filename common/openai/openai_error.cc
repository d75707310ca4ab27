#include "common/openai/openai_error.h"

#include "absl/status/status.h"
#include "nlohmann/json.hpp"

namespace ringserve::openai {
namespace {

// The error's type, by HTTP status, as OpenAI's and as Anthropic's clients name it.
struct ErrorTypes {
  const char* openai;
  const char* anthropic;
};
ErrorTypes TypesOf(int http_status) {
  switch (http_status) {
    case 400:
      return {"invalid_request_error", "invalid_request_error"};
    case 401:
      return {"authentication_error", "authentication_error"};
    case 403:
      return {"permission_error", "permission_error"};
    case 404:
      return {"not_found_error", "not_found_error"};
    case 429:
      return {"rate_limit_error", "rate_limit_error"};
    case 503:
      return {"server_error", "overloaded_error"};
    default:
      if (http_status < 500) return {"invalid_request_error", "invalid_request_error"};
      return {"server_error", "api_error"};
  }
}

}  // namespace

int HttpStatusOf(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return 200;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange:
      return 400;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kAborted:
      return 409;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kCancelled:
      return 499;
    case absl::StatusCode::kUnimplemented:
      return 501;
    case absl::StatusCode::kUnavailable:
      return 503;
    case absl::StatusCode::kDeadlineExceeded:
      return 504;
    default:
      return 500;
  }
}

std::string ErrorBody(const absl::Status& status) {
  const int http_status = HttpStatusOf(status.code());
  const nlohmann::ordered_json body{{"error",
                                     {{"message", std::string(status.message())},
                                      {"type", TypesOf(http_status).openai},
                                      {"param", nullptr},
                                      {"code", absl::StatusCodeToString(status.code())}}}};
  return body.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

std::string AnthropicErrorBody(const absl::Status& status) {
  const nlohmann::ordered_json body{{"type", "error"},
                                    {"error",
                                     {{"type", TypesOf(HttpStatusOf(status.code())).anthropic},
                                      {"message", std::string(status.message())}}}};
  return body.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

}  // namespace ringserve::openai
