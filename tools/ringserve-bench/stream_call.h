// StreamCall: one Generate stream driven on gRPC's callback API, timing each message as
// it arrives. Hundreds run at once on gRPC's own threads; none holds a thread of its own.
#ifndef RINGSERVE_TOOLS_RINGSERVE_BENCH_STREAM_CALL_H_
#define RINGSERVE_TOOLS_RINGSERVE_BENCH_STREAM_CALL_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "grpcpp/client_context.h"
#include "grpcpp/support/client_callback.h"
#include "ringserve/v1/inference.grpc.pb.h"

namespace ringserve::tools::bench {

using Clock = std::chrono::steady_clock;

// What one request saw. Times are milliseconds.
struct RequestResult {
  int index = 0;
  grpc::StatusCode code = grpc::StatusCode::UNKNOWN;
  std::string message;
  // Tokens this request sent (not the session history the worker added to them).
  int input_tokens = 0;
  // The ids streamed back.
  std::vector<int32_t> output_ids;
  // From the final message (0 when the stream failed).
  int prompt_tokens = 0;
  int cached_tokens = 0;
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

  bool ok() const { return code == grpc::StatusCode::OK; }
};

// One request in flight, whichever call it makes (StreamCall, EmbedCall).
class BenchCall {
 public:
  virtual ~BenchCall() = default;
  virtual void Start(ringserve::v1::Inference::Stub* stub) = 0;
  virtual RequestResult& result() = 0;
};

// Owner: LoadDriver, which destroys it only after `on_done` ran (its last act).
// Thread: Start() on the driver's thread; the reactions on gRPC's callback threads, one
// at a time (a new read starts only after the last one was handled).
class StreamCall final : public grpc::ClientReadReactor<ringserve::v1::GenerateResponse>,
                         public BenchCall {
 public:
  // `on_done(index)` is called once, from OnDone, when result() is complete.
  StreamCall(int index, ringserve::v1::GenerateRequest request, double timeout_s,
             std::function<void(int)> on_done);

  void Start(ringserve::v1::Inference::Stub* stub) override;
  RequestResult& result() override { return result_; }

  void OnReadDone(bool ok) override;
  void OnDone(const grpc::Status& status) override;

 private:
  grpc::ClientContext context_;
  const ringserve::v1::GenerateRequest request_;
  const std::function<void(int)> on_done_;
  ringserve::v1::GenerateResponse response_;
  RequestResult result_;
  Clock::time_point last_token_;
  bool saw_final_ = false;
};

}  // namespace ringserve::tools::bench

#endif  // RINGSERVE_TOOLS_RINGSERVE_BENCH_STREAM_CALL_H_
