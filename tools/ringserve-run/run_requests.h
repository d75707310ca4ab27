// `ringserve-run`'s prompts as generator jobs: each prompt's tokens (plain text, token ids,
// or text sent as the user's message of a conversation in the model's chat format) with the
// command line's sampling and stop settings, checked against the model's context before the
// model loads; and the KV pool that lets every running job finish without preemption.
#ifndef RINGSERVE_TOOLS_RINGSERVE_RUN_RUN_REQUESTS_H_
#define RINGSERVE_TOOLS_RINGSERVE_RUN_RUN_REQUESTS_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/engine/job.h"
#include "worker/tokenizer/chat_format.h"
#include "worker/tokenizer/tokenizer.h"

namespace ringserve::tools {

// What the command line asks of every prompt.
struct RunSettings {
  engine::SamplingParams sampling;
  int32_t max_tokens = 64;
  std::vector<std::string> stop_strings;
  bool ignore_eos = false;
  // Structured output (null: free text).
  std::shared_ptr<const grammar::Grammar> response_format;
  std::optional<int32_t> prompt_logprobs;  // JobRequest::prompt_logprobs
  // Chat: each text prompt is a user message, after `system` (when not empty) or else the
  // format's default system message; the reply also stops at the format's end of turn.
  bool chat = false;
  tokenizer::ChatFormat chat_format = tokenizer::ChatFormat::kNone;
  std::string system;
  std::string default_system;
  // A model that thinks first (tokenizer::ThinkingOf): false closes the reply's thought in
  // the generation prompt. The thought is split from the answer when printed.
  bool think = true;
  tokenizer::Thinking thinking = tokenizer::Thinking::kNone;
  // Every prompt is embedded (JobRequest::embed) rather than generated from; max_tokens 0.
  bool embed = false;
  std::string adapter;  // JobRequest::adapter
};

// One job per text prompt, then one per id list, in that order. `tokenizer` may be null
// when there are no text prompts. INVALID_ARGUMENT naming the prompt when one encodes to no
// tokens or when its tokens plus max_tokens exceed `context_tokens`; FAILED_PRECONDITION
// for text without a tokenizer, or chat without a chat format.
absl::StatusOr<std::vector<engine::JobRequest>> BuildJobRequests(
    std::span<const std::string> texts, std::span<const std::vector<int32_t>> ids,
    const RunSettings& settings, const tokenizer::Tokenizer* tokenizer, int32_t context_tokens);

// KV blocks for the `max_seqs` jobs that need the most, each its input plus max_tokens plus
// `extra_tokens` (speculative drafts): with that many blocks the generator never preempts.
int64_t RunKvBlocks(std::span<const engine::JobRequest> requests, int32_t max_seqs,
                    int32_t block_size_tokens, int32_t extra_tokens);

}  // namespace ringserve::tools

#endif  // RINGSERVE_TOOLS_RINGSERVE_RUN_RUN_REQUESTS_H_
