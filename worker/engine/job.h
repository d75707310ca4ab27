// What a caller hands the generator (JobRequest) and what it gets back (JobEvent, ending
// in a JobResult). Plain data shared by the generator, the worker server and the tools.
#ifndef RINGSERVE_WORKER_ENGINE_JOB_H_
#define RINGSERVE_WORKER_ENGINE_JOB_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "worker/engine/sampler.h"
#include "worker/grammar/matcher.h"
#include "worker/grammar/token_constraint.h"

namespace ringserve::engine {

// The most stop ids a request names (inference.proto), and the most a job holds: a chat
// request also stops at its format's end-of-turn id and, offering tools, Llama 3.x's
// <|eom_id|>.
inline constexpr int32_t kMaxRequestStopTokenIds = 64;
inline constexpr int32_t kMaxStopTokenIds = kMaxRequestStopTokenIds + 2;

struct JobRequest {
  std::string request_id;  // echoed in the result and in logs
  // Empty: a one-off job. Else the session's history is the context (with append) or is
  // replaced by `tokens` (without), and the job's output extends it.
  std::string session_id;
  bool append = false;
  // With append: the history must hold exactly this many tokens, else FAILED_PRECONDITION.
  std::optional<int32_t> expected_history_tokens;
  std::vector<int32_t> tokens;  // the input; may be empty only with append
  SamplingParams sampling;      // sampling.seed is used as given
  // Unset: until a stop condition or the context is full.
  std::optional<int32_t> max_tokens;
  std::vector<std::string> stop_strings;
  bool include_stop_string = false;     // the matched stop string ends the text
  std::vector<int32_t> stop_token_ids;  // at most kMaxStopTokenIds
  bool ignore_eos = false;
  // The end-of-sequence tokens (unless ignore_eos) and stop_token_ids cannot be picked
  // before this many tokens are generated; stop strings still end the job. <= max_tokens.
  int32_t min_tokens = 0;
  int32_t priority = 0;  // higher is admitted first and preempted last
  // The LoRA adapter to run with, by name (Generator::AdapterNames; empty: the model's own
  // weights); resolved when the job starts, NOT_FOUND then when no loaded adapter has the
  // name. A session's pinned K/V is continued only by a job with the load of the adapter that
  // computed it.
  std::string adapter;
  // Null: free text. Else every token keeps the text a prefix of a value this grammar
  // accepts; the job ends once the value is complete and nothing may follow it
  // (kResponseComplete), and may end on an end-of-sequence token once it is complete.
  std::shared_ptr<const grammar::Grammar> response_format;
  // With response_format: it binds only from each appearance of this text, whose grammar's
  // text starts with it, to where that text is finished (grammar::Trigger: a tool call in a
  // reply that may also be text); the job ends as kResponseComplete only after the stretch
  // of a trigger that binds once (Trigger::once).
  std::optional<grammar::Trigger> format_trigger;
  // Control tokens the job's text spells as their pieces (they have no text otherwise):
  // Mistral v11's tool-call markers and Magistral's thought tags, which the reply's parsers
  // read the calls and the thought by.
  std::vector<int32_t> spelled_control_ids;
  // Set: score the input (prompt logprobs). Each input token that has a token before it in
  // the context gets its log-probability given the context before it, with this many of the
  // most likely tokens at its position (0..kernels::kMaxTopLogprobs), delivered before the
  // first generated token (JobEvent::prompt_logprobs). Those positions are computed, never
  // taken from the prefix cache.
  std::optional<int32_t> prompt_logprobs;
  // The id (JobHandle::id) of a job submitted before this one with the same input, whose
  // prefill this one waits for before it is admitted, so that it finds the input's full
  // blocks cached instead of computing them too (the completions of GenerateRequest.n). No
  // wait when that job has ended or is unknown.
  std::optional<uint64_t> follows;
  // Input tokens the request's truncate_prompt_tokens dropped before `tokens` (reported in
  // the final usage; the engine never sees them).
  int32_t truncated_tokens = 0;
  // An embedding: the input is computed and the job ends with the final hidden state of its
  // last token (JobResult::embedding), generating nothing. Needs max_tokens = 0 and no
  // session, prompt_logprobs or response_format.
  bool embed = false;
};

enum class FinishReason {
  kEos,
  kMaxTokens,
  kStopString,
  kStopToken,
  kContextLength,
  kResponseComplete,  // the response_format's value is complete and nothing may follow
};

const char* FinishReasonName(FinishReason reason);

struct GeneratedToken {
  int32_t id = -1;
  // With sampling.num_logprobs > 0: the token's log-probability and the top alternatives.
  float logprob = 0;
  std::vector<std::pair<int32_t, float>> top_logprobs;
};

struct JobUsage {
  int32_t prompt_tokens = 0;      // the whole context the job was conditioned on
  int32_t cached_tokens = 0;      // of those, K/V reused (session or prefix cache)
  int32_t completion_tokens = 0;  // generated by this job
  int32_t scored_tokens = 0;      // input tokens scored (prompt_logprobs)
  int32_t num_preemptions = 0;    // times the job gave its blocks back and recomputed
  absl::Duration queue_time;      // submission to first scheduled step
  absl::Duration time_to_first_token;
  absl::Duration total_time;
};

struct JobResult {
  FinishReason finish_reason = FinishReason::kMaxTokens;
  std::string stop_match;  // the stop string, or the stop token id in decimal
  JobUsage usage;
  int32_t history_tokens = 0;  // the session's history after the job; 0 without a session
  // With JobRequest::embed: the output norm's output at the input's last token (the model's
  // width of values; what a last-token-pooling embedding model returns, before any
  // normalisation).
  std::vector<float> embedding;
};

// One delivery to the job's reader: the tokens sampled since the previous event and the
// text they complete (stop strings held back and never emitted), then, on the last event,
// the outcome: an error status, or OK with the result.
struct JobEvent {
  // With JobRequest::prompt_logprobs: the next scored input tokens, in order (every one of
  // them arrives before the first generated token).
  std::vector<GeneratedToken> prompt_logprobs;
  std::vector<GeneratedToken> tokens;
  std::string text;
  // On the event with the first generated token: the context's tokens the job is conditioned
  // on (JobUsage::prompt_tokens, as the result will report it), so a reader can count usage
  // before the end. 0 on the others.
  int32_t prompt_tokens = 0;
  bool finished = false;
  absl::Status status;  // when finished
  JobResult result;     // when finished with OK
};

}  // namespace ringserve::engine

#endif  // RINGSERVE_WORKER_ENGINE_JOB_H_
