// Between the public API (ringserve.v1 messages) and the generator's plain types: request
// validation that needs only the request and the model's limits (each error names the
// field), tokenisation of text input, and the response messages built from job events.
#ifndef RINGSERVE_WORKER_SERVER_REQUEST_CONVERSION_H_
#define RINGSERVE_WORKER_SERVER_REQUEST_CONVERSION_H_

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "ringserve/v1/inference.pb.h"
#include "worker/engine/job.h"
#include "worker/engine/session_table.h"
#include "worker/grammar/grammar_cache.h"
#include "worker/tokenizer/chat_format.h"
#include "worker/tokenizer/tokenizer.h"

namespace ringserve::server {

struct ModelLimits {
  int32_t vocab_size = 0;
  int32_t context_length = 0;
  tokenizer::ChatFormat chat_format = tokenizer::ChatFormat::kNone;  // for chat input
  // Opens a new conversation that brings no system message (tokenizer::DefaultSystemPrompt);
  // owned by the caller, who outlives the conversion.
  std::string_view default_system_prompt = {};
  // Compiled response formats and tool-call grammars kept between requests; null: each
  // request compiles its own. Owned by the caller.
  grammar::GrammarCache* grammars = nullptr;
};

// Size limits of the API (inference.proto documents them).
inline constexpr size_t kMaxTextBytes = size_t{4} << 20;
inline constexpr size_t kMaxSchemaBytes = size_t{64} << 10;
inline constexpr size_t kMaxSessionIdBytes = engine::kMaxSessionIdBytes;
inline constexpr size_t kMaxRequestIdBytes = 128;

// INVALID_ARGUMENT naming the field for a malformed request. `tokenizer` may be null (then
// text and chat input are INVALID_ARGUMENT). A new context from text (no append) starts with
// BOS the way the vocabulary asks; appended text never does. Chat input is rendered in
// limits.chat_format (FAILED_PRECONDITION when none) and also stops at its end-of-turn
// token. An unset seed is drawn at random.
absl::StatusOr<engine::JobRequest> ToJobRequest(const ringserve::v1::GenerateRequest& request,
                                                const tokenizer::Tokenizer* tokenizer,
                                                const ModelLimits& limits);

// The tokens a Generate call with `chat` would start from (TokenizeRequest.chat): the
// conversation rendered as ToJobRequest renders GenerateRequest.chat, as a new conversation
// or, with `append`, a session's next turn, and not held to the context length.
absl::StatusOr<std::vector<int32_t>> ChatPromptTokens(const ringserve::v1::Chat& chat, bool append,
                                                      const tokenizer::Tokenizer* tokenizer,
                                                      ModelLimits limits);

// The most ids one Detokenize call may decode.
inline constexpr int kMaxDetokenizeIds = 1 << 20;
// OK when a Detokenize request can be decoded: FAILED_PRECONDITION without a tokenizer,
// INVALID_ARGUMENT naming token_ids when there are too many or one is out of the vocabulary.
absl::Status DetokenizeIdsError(const ringserve::v1::DetokenizeRequest& request,
                                const tokenizer::Tokenizer* tokenizer);

// OK when `session_id` can name a session Fork or CloseSession acts on; INVALID_ARGUMENT
// naming session_id when it is empty (Generate's one-off requests have no session, so no
// session has that id) or longer than kMaxSessionIdBytes.
absl::Status CheckExistingSessionId(const std::string& session_id);

// The most completions one request may ask for (GenerateRequest.n).
inline constexpr int32_t kMaxCompletions = 64;
// GenerateRequest.n as ToJobRequest validated it: 1 when unset.
int32_t NumCompletions(const ringserve::v1::GenerateRequest& request);
// The jobs of a request's n completions: `job` with seed + i for completion i (so each is
// the request with that seed, on any worker), and the input's scores asked of completion 0
// only.
std::vector<engine::JobRequest> CompletionJobs(const engine::JobRequest& job, int32_t n);

// The streamed message for the tokens and text of `event` (logprobs when asked); its scored
// prompt tokens go through FillPromptLogprobs.
// Each logprob entry carries its token's text from `tokenizer` (none when null).
void FillResponse(const engine::JobEvent& event, bool with_logprobs,
                  const tokenizer::Tokenizer* tokenizer, ringserve::v1::GenerateResponse* response);

// The most scored prompt tokens one message carries: 1024 entries with 20 alternatives each
// are about 300 KB, well inside gRPC's 4 MiB default message limit.
inline constexpr size_t kMaxPromptLogprobsPerMessage = 1024;
void FillPromptLogprobs(std::span<const engine::GeneratedToken> scored,
                        const tokenizer::Tokenizer* tokenizer,
                        ringserve::v1::GenerateResponse* response);

// The final summary of a successful job.
void FillFinal(const engine::JobResult& result, const engine::JobRequest& request,
               const std::string& request_id, const std::string& worker_id,
               ringserve::v1::GenerateFinal* final);

}  // namespace ringserve::server

#endif  // RINGSERVE_WORKER_SERVER_REQUEST_CONVERSION_H_
