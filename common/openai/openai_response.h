// ringserve.v1 Generate streams rendered as OpenAI's responses: a whole text_completion or
// chat.completion object, or the stream of chunk objects as Server-Sent Events ending in
// "data: [DONE]".
#ifndef RINGSERVE_COMMON_OPENAI_OPENAI_RESPONSE_H_
#define RINGSERVE_COMMON_OPENAI_OPENAI_RESPONSE_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/openai/generate_renderer.h"
#include "common/openai/openai_request.h"
#include "nlohmann/json.hpp"
#include "ringserve/v1/inference.pb.h"

namespace ringserve::openai {

using OrderedJson = nlohmann::ordered_json;

// What every object of one response repeats.
struct ResponseMeta {
  ApiKind kind = ApiKind::kCompletion;
  std::string id;       // "cmpl-..." or "chatcmpl-..."
  int64_t created = 0;  // Unix seconds
  std::string model;    // as the client named it (or the served name)
  int n = 1;            // completions per request
  std::optional<int> logprobs;
  // Per request: text that goes before each of its choices' text (completions' echo).
  std::vector<std::string> echo;
  // echo with logprobs: the echoed prompt's tokens lead the logprobs (GenerateRequest.
  // prompt_logprobs scored them; the first, with nothing before it, has null), as
  // evaluation harnesses read them to score a continuation.
  bool echo_logprobs = false;
  // GenerateCall::token_ids: choices carry "token_ids" (a chunk's: the ids it adds) and
  // "prompt_token_ids" (a completion choice's, or a chat response's at its top level; in a
  // stream, on the first chunk).
  bool token_ids = false;
  // stream_options.include_usage: a successful stream ends with a chunk holding the usage.
  bool include_usage = false;
  // GenerateCall::continuous_usage: every chunk carries its choice's usage so far (the prompt
  // from GenerateResponse.prompt_tokens, the tokens generated up to the chunk).
  bool continuous_usage = false;
};

// A float as the shortest decimal that reads back as it (-0.1f prints as -0.1, not as the
// double -0.10000000149011612); infinities and NaN as -9999.0, vLLM's floor for logprobs
// JSON cannot carry.
double ShortestDouble(float value);

// JSON text; bytes that are not UTF-8 (a token holding part of a character) become U+FFFD.
std::string Dump(const OrderedJson& json);

// One output token's logprobs as chat completions (and the Responses API) write them: token,
// logprob, bytes, and its `top` most likely alternatives in "top_logprobs".
OrderedJson ChatLogprob(const ringserve::v1::PositionLogprobs& position, int top);

// OpenAI's finish_reason for a GenerateFinal's.
const char* FinishReasonName(ringserve::v1::FinishReason reason);

// The longest prefix of `pending` that does not end inside a UTF-8 character; removed from it.
std::string TakeCompleteUtf8(std::string& pending);

// /v1/completions and /v1/chat/completions. Thread: one at a time (the caller serializes the
// streams' messages).
class ResponseRenderer final : public GenerateRenderer {
 public:
  ResponseRenderer(ResponseMeta meta, int num_requests);

  std::string StreamEvents(int request, const ringserve::v1::GenerateResponse& message) override;
  // An error as an event (as vLLM sends one after the stream began), else the usage chunk when
  // asked; then "data: [DONE]".
  std::string StreamEnd(const absl::Status& error) override;

  void Accumulate(int request, const ringserve::v1::GenerateResponse& message) override;
  // The text_completion or chat.completion object.
  std::string Body() const override;

 private:
  struct Choice {
    std::string text;
    std::string reasoning;
    OrderedJson tool_calls = OrderedJson::array();
    // chat: logprobs.content entries; completions: the four parallel arrays.
    OrderedJson logprobs;
    std::string finish_reason;
    OrderedJson stop_reason;
    bool started = false;     // streaming: the first chunk (role, echo) went out
    int64_t text_offset = 0;  // completions' logprobs.text_offset of the next token
    std::map<int, std::string> held_arguments;  // streamed call arguments' partial characters
    std::vector<bool> calls_streamed;           // streamed call indices announced by a delta
    int whole_calls = 0;                        // whole calls seen
    // echo_logprobs: the prompt's scores, held until the first generated token or the end,
    // when they go out with the echoed text (their offsets need the whole prompt).
    std::vector<ringserve::v1::PositionLogprobs> prompt_scores;
    // meta.token_ids: the prompt's ids (whole, or held until a chunk carries them) and the
    // generated ids (all of them, or those no chunk has carried yet).
    std::vector<int32_t> prompt_ids;
    std::vector<int32_t> token_ids;
    bool prompt_ids_sent = false;
    // meta.continuous_usage: the context's tokens (from the first generated token's message,
    // then the final's) and the tokens generated so far.
    int64_t prompt_tokens = 0;
    int64_t generated = 0;
  };

  Choice& ChoiceOf(int request, const ringserve::v1::GenerateResponse& message);
  int ChoiceIndex(int request, const ringserve::v1::GenerateResponse& message) const;
  void CountUsage(int request, const ringserve::v1::GenerateResponse& message);
  // meta.token_ids: adds the message's prompt and generated ids to the choice's.
  void TakeIds(Choice& choice, const ringserve::v1::GenerateResponse& message) const;
  // meta.token_ids, streaming: moves the ids the choice holds into a chunk's "token_ids"
  // (`ids_into`) and, the first time only, its prompt's into "prompt_token_ids"
  // (`prompt_into`, the choice or, for a chat, the chunk).
  void SendIds(Choice& choice, OrderedJson& ids_into, OrderedJson& prompt_into) const;
  // The request's echoed prompt, or null without echo.
  const std::string* EchoOf(int request) const;
  // Takes the message's prompt scores; true once the echo may go out (the message carries
  // generated tokens or ends the completion), or at once when scores are not wanted.
  bool EchoReady(Choice& choice, const ringserve::v1::GenerateResponse& message) const;
  // The echoed prompt's tokens in completions' logprobs format, appended to `into`; the
  // generated tokens' offsets then continue after the prompt.
  void AddPromptLogprobs(Choice& choice, const std::string& echo, OrderedJson& into);
  // The message's logprobs in the response's format, appended to `into`.
  void AddLogprobs(Choice& choice, const ringserve::v1::GenerateResponse& message,
                   OrderedJson& into);
  OrderedJson ChunkHead() const;
  // meta.continuous_usage: the choice's usage so far.
  static OrderedJson ChoiceUsage(const Choice& choice);
  OrderedJson Usage() const;

  const ResponseMeta meta_;
  std::vector<Choice> choices_;
  int64_t prompt_tokens_ = 0;
  int64_t cached_tokens_ = 0;
  int64_t completion_tokens_ = 0;
};

// One Server-Sent Event carrying `data`.
std::string SseEvent(const std::string& data);

}  // namespace ringserve::openai

#endif  // RINGSERVE_COMMON_OPENAI_OPENAI_RESPONSE_H_
