// OpenAI's Responses API request (POST /v1/responses) as a ringserve.v1 chat Generate.
//
// A stored response is a session on the worker that served it: the response's id names the
// session, whose history (and KV blocks) holds the conversation up to and including the reply.
// previous_response_id forks that session and appends the new input to the fork, so a
// continued conversation is neither resent nor computed again, and any response can be
// continued more than once (each continuation its own fork). A response lives as long as its
// session does (the worker's --session-ttl-s and --max-sessions); after that,
// previous_response_id is NOT_FOUND and the client resends the conversation as input.
#ifndef RINGSERVE_COMMON_OPENAI_RESPONSES_REQUEST_H_
#define RINGSERVE_COMMON_OPENAI_RESPONSES_REQUEST_H_

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/openai/openai_response.h"
#include "ringserve/v1/inference.pb.h"

namespace ringserve::openai {

// One POST /v1/responses.
struct ResponsesCall {
  // As the client named it (empty when it named none).
  std::string model;
  // The chat to run: "instructions" as a system message, then the input items as messages;
  // the caller sets its session (and append, for a continuation).
  ringserve::v1::GenerateRequest request;
  // The stored response this one continues, as its session id ("" when none).
  std::string previous_session;
  bool store = true;
  bool stream = false;
  // top_logprobs, or logprobs asked by "include": alternatives at each output token (0: the
  // token's own logprob only); nullopt: no logprobs.
  std::optional<int> logprobs;
  // The request's settings as the response object repeats them (instructions, tools, text,
  // temperature, ...), in OpenAI's order.
  OrderedJson settings;
};

absl::StatusOr<ResponsesCall> ParseResponsesRequest(absl::string_view text);

// A stored response's id from its session's id: a fork's '#' is written '-' so that the id
// travels in URL paths (DELETE /v1/responses/{id}) without escaping.
std::string ResponseIdOfSession(absl::string_view session_id);
// The inverse: the session a response id names; INVALID_ARGUMENT naming `field` when the id is
// not one this server makes.
absl::StatusOr<std::string> SessionOfResponseId(absl::string_view response_id,
                                                absl::string_view field);

}  // namespace ringserve::openai

#endif  // RINGSERVE_COMMON_OPENAI_RESPONSES_REQUEST_H_
