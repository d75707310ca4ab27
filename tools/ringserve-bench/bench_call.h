// What ringserve-bench records of one request, and the call that records it, whichever API
// carries it (gRPC's Generate and Embed, OpenAI's HTTP API).
#ifndef RINGSERVE_TOOLS_RINGSERVE_BENCH_BENCH_CALL_H_
#define RINGSERVE_TOOLS_RINGSERVE_BENCH_BENCH_CALL_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "grpcpp/support/status_code_enum.h"
#include "ringserve/v1/inference.pb.h"

namespace ringserve::tools::bench {

using Clock = std::chrono::steady_clock;

// What one request saw. Times are milliseconds.
struct RequestResult {
  int index = 0;
  // gRPC's status code; an HTTP status is mapped to the code it stands for.
  grpc::StatusCode code = grpc::StatusCode::UNKNOWN;
  std::string message;
  // Tokens this request sent (not the session history the worker added to them).
  int input_tokens = 0;
  // The ids streamed back (empty when the API returned text only).
  std::vector<int32_t> output_ids;
  // Tokens streamed back: output_ids' count, or the server's count when it sent no ids.
  int output_tokens = 0;
  // From the final message (0 when the stream failed).
  int prompt_tokens = 0;
  int cached_tokens = 0;
  // The session's history after this turn (0 when the API does not say).
  int history_tokens = 0;
  Clock::time_point start;
  // Start to the first message carrying tokens; < 0 when none came.
  double ttft_ms = -1;
  // Start to the end of the call.
  double e2e_ms = 0;
  // Gaps between consecutive token-carrying messages after the first.
  std::vector<double> itl_ms;
  // Embeddings returned (an Embed request's; 0 for a Generate).
  int embeddings = 0;
  // When the last token-carrying message arrived.
  Clock::time_point last_token;

  bool ok() const { return code == grpc::StatusCode::OK; }
  // One message's tokens, arrived at `now`: the first sets ttft_ms, later ones add a gap.
  template <typename Ids>
  void AddTokens(const Ids& ids, Clock::time_point now) {
    if (ids.empty()) return;
    AddArrival(static_cast<int>(ids.size()), now);
    output_ids.insert(output_ids.end(), ids.begin(), ids.end());
  }
  // `count` tokens whose ids the message did not carry.
  void AddArrival(int count, Clock::time_point now);
};

// Milliseconds from `from` to `to`.
inline double MsBetween(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

inline void RequestResult::AddArrival(int count, Clock::time_point now) {
  if (ttft_ms < 0) {
    ttft_ms = MsBetween(start, now);
  } else {
    itl_ms.push_back(MsBetween(last_token, now));
  }
  last_token = now;
  output_tokens += count;
}

// One request in flight. Owner: LoadDriver, which destroys it only after the call's
// `on_done(index)` ran (the call's last act).
class BenchCall {
 public:
  virtual ~BenchCall() = default;
  // Thread: the driver's. A reaction, on_done included, may run before this returns.
  virtual void Start() = 0;
  virtual RequestResult& result() = 0;
};

using OnCallDone = std::function<void(int index)>;

// How requests reach the server: makes the call for a Generate or an Embed request, not yet
// started. Thread: the driver's.
class Transport {
 public:
  virtual ~Transport() = default;
  virtual std::unique_ptr<BenchCall> Generate(int index, ringserve::v1::GenerateRequest request,
                                              OnCallDone on_done) = 0;
  virtual std::unique_ptr<BenchCall> Embed(int index, ringserve::v1::EmbedRequest request,
                                           OnCallDone on_done) = 0;
};

}  // namespace ringserve::tools::bench

#endif  // RINGSERVE_TOOLS_RINGSERVE_BENCH_BENCH_CALL_H_
