// Errors as OpenAI's (and Anthropic's) clients read them: an HTTP status and {"error": {message,
// type, param, code}}, from the gRPC status a ringserve call ended with.
#ifndef RINGSERVE_COMMON_OPENAI_OPENAI_ERROR_H_
#define RINGSERVE_COMMON_OPENAI_OPENAI_ERROR_H_

#include <string>

#include "absl/status/status.h"

namespace ringserve::openai {

// 400 for bad input (INVALID_ARGUMENT, FAILED_PRECONDITION, OUT_OF_RANGE), 401, 403, 404,
// 409 (ALREADY_EXISTS), 429 (RESOURCE_EXHAUSTED: limits, a prompt larger than the KV pool),
// 499 (CANCELLED), 501, 503 (UNAVAILABLE), 504 (DEADLINE_EXCEEDED), else 500.
int HttpStatusOf(absl::StatusCode code);

// The error object's JSON text; "code" is the gRPC status name ("INVALID_ARGUMENT").
std::string ErrorBody(const absl::Status& status);

// The same error as Anthropic's Messages API writes it: {"type": "error", "error": {type,
// message}}, the type by HTTP status (invalid_request_error, authentication_error, ...,
// overloaded_error for 503).
std::string AnthropicErrorBody(const absl::Status& status);

}  // namespace ringserve::openai

#endif  // RINGSERVE_COMMON_OPENAI_OPENAI_ERROR_H_
