// Anthropic's Messages API request (POST /v1/messages, /v1/messages/count_tokens) as a
// ringserve.v1 chat, so clients written for it (Anthropic's SDKs, coding agents) run on a
// served model: the system prompt and the messages' content blocks (text, tool_use,
// tool_result) become the chat's messages, tools their function tools (input_schema as the
// parameters), tool_choice and thinking the chat's switches. Blocks ringserve cannot honour
// (images, documents, server tools) are INVALID_ARGUMENT naming them.
#ifndef RINGSERVE_COMMON_OPENAI_MESSAGES_REQUEST_H_
#define RINGSERVE_COMMON_OPENAI_MESSAGES_REQUEST_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "ringserve/v1/inference.pb.h"

namespace ringserve::openai {

// One POST /v1/messages.
struct MessagesCall {
  // As the client named it (empty when it named none).
  std::string model;
  // The chat to run.
  ringserve::v1::GenerateRequest request;
  bool stream = false;
};

absl::StatusOr<MessagesCall> ParseMessagesRequest(absl::string_view text);

// One POST /v1/messages/count_tokens: the same conversation, tokenized as generation would
// render it.
struct CountTokensCall {
  std::string model;
  ringserve::v1::TokenizeRequest request;
};

absl::StatusOr<CountTokensCall> ParseCountTokensRequest(absl::string_view text);

}  // namespace ringserve::openai

#endif  // RINGSERVE_COMMON_OPENAI_MESSAGES_REQUEST_H_
