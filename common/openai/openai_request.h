// OpenAI's request bodies (/v1/completions, /v1/chat/completions, /v1/embeddings) as
// ringserve.v1 requests. Parameters OpenAI defines map to their GenerateRequest fields;
// the extras vLLM accepts (top_k, min_p, repetition_penalty, min_tokens, ignore_eos,
// stop_token_ids, guided_json, ...) and ringserve's own (session_id, append, priority)
// are read from the same body, as `extra_body` sends them. A parameter ringserve cannot
// honour is INVALID_ARGUMENT naming it, never silently dropped.
#ifndef RINGSERVE_COMMON_OPENAI_OPENAI_REQUEST_H_
#define RINGSERVE_COMMON_OPENAI_OPENAI_REQUEST_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
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

}  // namespace ringserve::openai

#endif  // RINGSERVE_COMMON_OPENAI_OPENAI_REQUEST_H_
