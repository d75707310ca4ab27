#include "tools/ringserve-run/run_requests.h"

#include <algorithm>
#include <functional>
#include <optional>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kvcache/sizing.h"

namespace ringserve::tools {
namespace {

absl::StatusOr<std::vector<int32_t>> EncodeText(const std::string& text,
                                                const RunSettings& settings,
                                                const tokenizer::Tokenizer& tok) {
  if (!settings.chat) return tok.Encode(text, {});
  std::vector<tokenizer::ChatMessage> messages;
  if (!settings.system.empty()) messages.push_back({"system", settings.system});
  messages.push_back({"user", text});
  return tokenizer::EncodeChat(
      tok, settings.chat_format, messages,
      {.start = true, .default_system = settings.default_system, .think = settings.think});
}

}  // namespace

absl::StatusOr<std::vector<engine::JobRequest>> BuildJobRequests(
    std::span<const std::string> texts, std::span<const std::vector<int32_t>> ids,
    const RunSettings& settings, const tokenizer::Tokenizer* tokenizer, int32_t context_tokens) {
  if (!texts.empty() && tokenizer == nullptr) {
    return absl::FailedPreconditionError(
        "the model has no tokenizer; pass --tokenizer PATH or give --prompt-ids");
  }
  if (settings.chat && settings.chat_format == tokenizer::ChatFormat::kNone) {
    return absl::FailedPreconditionError(
        "--chat: the model has no chat format; name one with --chat-format");
  }
  std::vector<engine::JobRequest> requests;
  for (const std::string& text : texts) {
    engine::JobRequest r;
    RS_ASSIGN_OR_RETURN(r.tokens, EncodeText(text, settings, *tokenizer));
    if (r.tokens.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("prompt '", text, "' encodes to no tokens and the model adds no BOS"));
    }
    if (settings.chat && !settings.ignore_eos) {
      const std::optional<int32_t> end = tokenizer::ChatStopId(*tokenizer, settings.chat_format);
      if (end.has_value()) r.stop_token_ids.push_back(*end);
    }
    requests.push_back(std::move(r));
  }
  for (const std::vector<int32_t>& prompt : ids) {
    engine::JobRequest r;
    r.tokens = prompt;
    requests.push_back(std::move(r));
  }
  for (size_t i = 0; i < requests.size(); ++i) {
    engine::JobRequest& r = requests[i];
    if (static_cast<int64_t>(r.tokens.size()) + settings.max_tokens > context_tokens) {
      return absl::InvalidArgumentError(absl::StrCat(
          "prompt ", i + 1, " has ", r.tokens.size(), " tokens + ", settings.max_tokens,
          " to generate, beyond the model's context of ", context_tokens, " tokens"));
    }
    r.sampling = settings.sampling;
    r.max_tokens = settings.max_tokens;
    r.stop_strings = settings.stop_strings;
    r.ignore_eos = settings.ignore_eos;
    r.response_format = settings.response_format;
    r.prompt_logprobs = settings.prompt_logprobs;
    r.embed = settings.embed;
    r.adapter = settings.adapter;
  }
  return requests;
}

int64_t RunKvBlocks(std::span<const engine::JobRequest> requests, int32_t max_seqs,
                    int32_t block_size_tokens, int32_t extra_tokens) {
  std::vector<int64_t> blocks;
  for (const engine::JobRequest& r : requests) {
    blocks.push_back(kvcache::NumBlocksForTokens(
        static_cast<int64_t>(r.tokens.size()) + r.max_tokens.value_or(0) + extra_tokens,
        block_size_tokens));
  }
  const size_t running = std::min(blocks.size(), static_cast<size_t>(std::max(max_seqs, 1)));
  std::partial_sort(blocks.begin(), blocks.begin() + static_cast<std::ptrdiff_t>(running),
                    blocks.end(), std::greater<>());
  int64_t total = 0;
  for (size_t i = 0; i < running; ++i) total += blocks[i];
  return total;
}

}  // namespace ringserve::tools
