// What ringserve-bench sends: which session each request belongs to, which turn of its
// conversation it is, and its prompt tokens. Pure and seeded, so two runs (say, through
// the router and straight to a worker) send the same requests.
#ifndef RINGSERVE_TOOLS_RINGSERVE_BENCH_WORKLOAD_H_
#define RINGSERVE_TOOLS_RINGSERVE_BENCH_WORKLOAD_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace ringserve::tools::bench {

struct WorkloadOptions {
  int num_requests = 0;
  // 0: every request is a one-off without a session.
  int num_sessions = 0;
  // Turns per conversation; a session that finishes its last turn starts a new
  // conversation (turn 1 again) with its next request.
  int turns = 1;
  // New tokens each request sends (turn 1: the whole prompt; later turns: the appended
  // user message).
  int prompt_tokens = 128;
  // Leading tokens every turn-1 prompt (and every one-off prompt) shares.
  int shared_prefix_tokens = 0;
  // Token ids are drawn from [kFirstTokenId, vocab_size).
  int vocab_size = 0;
  uint64_t seed = 0;
  std::string session_prefix = "bench";

  absl::Status Validate() const;
};

// One planned request.
struct PlannedRequest {
  int index = 0;
  // Index into the sessions, in [0, num_sessions) or, for one-off requests, the request's
  // own index (each one-off is its own "conversation" of one turn).
  int session = 0;
  // 1-based turn within the conversation; turn 1 sends its whole context.
  int turn = 1;
};

class Workload {
 public:
  // Ids below this are the special tokens of common vocabularies (unk, bos, eos).
  static constexpr int32_t kFirstTokenId = 3;

  explicit Workload(WorkloadOptions options);

  const WorkloadOptions& options() const { return options_; }
  const std::vector<PlannedRequest>& requests() const { return requests_; }
  // How many conversations requests() spreads over (sessions, or one per request).
  int num_conversations() const;
  // The session id of conversation `session`; empty for one-off requests.
  std::string SessionId(int session) const;
  // The new tokens request `index` sends; the same on every call and every run with the
  // same options.
  std::vector<int32_t> PromptTokens(const PlannedRequest& request) const;

 private:
  WorkloadOptions options_;
  std::vector<PlannedRequest> requests_;
  std::vector<int32_t> shared_prefix_;
};

}  // namespace ringserve::tools::bench

#endif  // RINGSERVE_TOOLS_RINGSERVE_BENCH_WORKLOAD_H_
