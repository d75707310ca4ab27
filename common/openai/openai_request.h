// OpenAI's request bodies (/v1/completions, /v1/chat/completions, /v1/embeddings) as
// ringserve.v1 requests. Parameters OpenAI defines map to their GenerateRequest fields;
// the extras vLLM accepts (top_k, min_p, repetition_penalty, min_tokens, ignore_eos,
// stop_token_ids, guided_json, ...) and ringserve's own (session_id, append, priority)
// are read from the same body, as `extra_body` sends them. A parameter ringserve cannot
// honour is INVALID_ARGUMENT naming it, never silently dropped.
#ifndef RINGSERVE_COMMON_OPENAI_OPENAI_REQUEST_H_
#define RINGSERVE_COMMON_OPENAI_OPENAI_REQUEST_H_

#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/openai/json_fields.h"
#include "ringserve/v1/inference.pb.h"

namespace ringserve::openai {

enum class ApiKind { kCompletion, kChat };

// One /v1/completions or /v1/chat/completions call.
struct GenerateCall {
  ApiKind kind = ApiKind::kCompletion;
  // As the client named it (empty when it named none).
  std::string model;
  // One request per prompt: a completion's "prompt" may be an array of them; a chat has one.
  // Each asks for `n` completions; choice k * n + i is request k's completion i.
  std::vector<ringserve::v1::GenerateRequest> requests;
  int n = 1;
  bool stream = false;
  // stream_options.include_usage: a last chunk with the usage and no choices.
  bool include_usage = false;
  // stream_options.continuous_usage_stats (vLLM's): every chunk carries the usage so far.
  bool continuous_usage = false;
  // How many alternatives to report at each token (0: the token's own logprob only);
  // nullopt: no logprobs.
  std::optional<int> logprobs;
  // completions' echo: the prompt's text goes before each of its choices' text.
  bool echo = false;
  // vLLM's return_token_ids: each choice carries the ids it generated ("token_ids") and the
  // ids its prompt became ("prompt_token_ids"), so a client that sent text can go on in ids.
  bool token_ids = false;
};

absl::StatusOr<GenerateCall> ParseCompletionRequest(absl::string_view text);
absl::StatusOr<GenerateCall> ParseChatRequest(absl::string_view text);

// One /v1/embeddings call.
struct EmbedCall {
  std::string model;
  ringserve::v1::EmbedRequest request;
  // encoding_format "base64": each embedding as base64 of its little-endian float32 values.
  bool base64 = false;
};

absl::StatusOr<EmbedCall> ParseEmbeddingRequest(absl::string_view text);

// One /tokenize call (vLLM's): a "prompt" or a chat's "messages" (with its tools and template
// options), rendered as generation would.
struct TokenizeCall {
  std::string model;
  ringserve::v1::TokenizeRequest request;
  // return_token_strs: each token's text beside its id.
  bool token_strs = false;
};

absl::StatusOr<TokenizeCall> ParseTokenizeRequest(absl::string_view text);

// One /detokenize call (vLLM's): "tokens", the ids to decode.
struct DetokenizeCall {
  std::string model;
  ringserve::v1::DetokenizeRequest request;
};

absl::StatusOr<DetokenizeCall> ParseDetokenizeRequest(absl::string_view text);

// What the Responses and Messages API parsers share with these:
// "model", as the client named it ("" when it named none).
absl::StatusOr<std::string> ModelField(const JsonObject& body);
// ringserve's "priority" extra (GenerateRequest.priority and EmbedRequest.priority); 0 unset.
absl::StatusOr<int32_t> PriorityField(const JsonObject& body);
// OpenAI's sampling parameters and vLLM's extras (temperature, top_p, top_k, min_p, the
// penalties, seed, logit_bias) into `sampling`.
absl::Status ParseSamplingFields(const JsonObject& body, ringserve::v1::SamplingParams& sampling);
// A message's "content": a string, or an array of parts of the given types holding "text"
// (joined with newlines, as vLLM joins them); other parts are INVALID_ARGUMENT naming them.
absl::StatusOr<std::string> TextContent(const JsonObject& holder,
                                        std::initializer_list<absl::string_view> part_types);
// "tools", "tool_choice" and "parallel_tool_calls" into the chat. Function tools and a named
// choice are read as chat completions nest them ({"type": "function", "function": {...}}) or as
// the Responses API writes them flat ({"type": "function", "name": ...}).
absl::Status ParseToolFields(const JsonObject& body, ringserve::v1::Chat& chat);
// The JSON text of a schema given as an object (or as a string holding one).
absl::StatusOr<std::string> SchemaText(const Json& schema, absl::string_view field);

}  // namespace ringserve::openai

#endif  // RINGSERVE_COMMON_OPENAI_OPENAI_REQUEST_H_
