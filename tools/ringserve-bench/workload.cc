#include "tools/ringserve-bench/workload.h"

#include <random>

#include "absl/strings/str_cat.h"

namespace ringserve::tools::bench {
namespace {

// A stream of ids for one purpose (the shared prefix, or request i), independent of the
// order in which requests happen to be started.
std::vector<int32_t> RandomTokens(uint64_t seed, uint64_t stream, int count, int vocab_size) {
  std::seed_seq seq{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32),
                    static_cast<uint32_t>(stream), static_cast<uint32_t>(stream >> 32)};
  std::mt19937_64 rng(seq);
  std::uniform_int_distribution<int32_t> id(Workload::kFirstTokenId, vocab_size - 1);
  std::vector<int32_t> tokens(count);
  for (int32_t& t : tokens) t = id(rng);
  return tokens;
}

}  // namespace

absl::Status WorkloadOptions::Validate() const {
  if (num_requests <= 0) return absl::InvalidArgumentError("--requests must be > 0");
  if (num_sessions < 0) return absl::InvalidArgumentError("--sessions must be >= 0");
  if (turns < 1) return absl::InvalidArgumentError("--turns must be >= 1");
  if (prompt_tokens < 1) return absl::InvalidArgumentError("--prompt-tokens must be >= 1");
  if (shared_prefix_tokens < 0 || shared_prefix_tokens > prompt_tokens) {
    return absl::InvalidArgumentError("--shared-prefix must be in [0, --prompt-tokens]");
  }
  if (vocab_size <= Workload::kFirstTokenId) {
    return absl::FailedPreconditionError(
        absl::StrCat("the model's vocab_size ", vocab_size, " leaves no ids to draw from"));
  }
  return absl::OkStatus();
}

Workload::Workload(WorkloadOptions options) : options_(std::move(options)) {
  shared_prefix_ =
      RandomTokens(options_.seed, 0, options_.shared_prefix_tokens, options_.vocab_size);
  std::vector<int> turns_done(options_.num_sessions, 0);
  requests_.reserve(options_.num_requests);
  for (int i = 0; i < options_.num_requests; ++i) {
    PlannedRequest r;
    r.index = i;
    if (options_.num_sessions == 0) {
      r.session = i;
    } else {
      // Round-robin over sessions, so with N = sessions x turns every conversation is
      // complete.
      r.session = i % options_.num_sessions;
      r.turn = turns_done[r.session]++ % options_.turns + 1;
    }
    requests_.push_back(r);
  }
}

int Workload::num_conversations() const {
  return options_.num_sessions == 0 ? options_.num_requests : options_.num_sessions;
}

std::string Workload::SessionId(int session) const {
  if (options_.num_sessions == 0) return "";
  return absl::StrCat(options_.session_prefix, "-", options_.seed, "-", session);
}

std::vector<int32_t> Workload::PromptTokens(const PlannedRequest& request) const {
  const int prefix = request.turn == 1 ? options_.shared_prefix_tokens : 0;
  std::vector<int32_t> tokens = RandomTokens(options_.seed, request.index + 1,
                                             options_.prompt_tokens - prefix, options_.vocab_size);
  tokens.insert(tokens.begin(), shared_prefix_.begin(), shared_prefix_.begin() + prefix);
  return tokens;
}

}  // namespace ringserve::tools::bench
