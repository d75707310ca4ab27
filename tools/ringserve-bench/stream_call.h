// StreamCall: one Generate stream driven on gRPC's callback API, timing each message as
// it arrives. Hundreds run at once on gRPC's own threads; none holds a thread of its own.
#ifndef RINGSERVE_TOOLS_RINGSERVE_BENCH_STREAM_CALL_H_
#define RINGSERVE_TOOLS_RINGSERVE_BENCH_STREAM_CALL_H_

#include "grpcpp/client_context.h"
#include "grpcpp/support/client_callback.h"
#include "ringserve/v1/inference.grpc.pb.h"
#include "tools/ringserve-bench/bench_call.h"

namespace ringserve::tools::bench {

// Owner: LoadDriver, which destroys it only after `on_done` ran (its last act).
// Thread: Start() on the driver's thread; the reactions on gRPC's callback threads, one
// at a time (a new read starts only after the last one was handled).
class StreamCall final : public grpc::ClientReadReactor<ringserve::v1::GenerateResponse>,
                         public BenchCall {
 public:
  // `on_done(index)` is called once, from OnDone, when result() is complete. `stub` outlives
  // the call.
  StreamCall(int index, ringserve::v1::GenerateRequest request, double timeout_s,
             ringserve::v1::Inference::Stub* stub, OnCallDone on_done);

  void Start() override;
  RequestResult& result() override { return result_; }

  void OnReadDone(bool ok) override;
  void OnDone(const grpc::Status& status) override;

 private:
  grpc::ClientContext context_;
  const ringserve::v1::GenerateRequest request_;
  ringserve::v1::Inference::Stub* const stub_;
  const OnCallDone on_done_;
  ringserve::v1::GenerateResponse response_;
  RequestResult result_;
  bool saw_final_ = false;
};

}  // namespace ringserve::tools::bench

#endif  // RINGSERVE_TOOLS_RINGSERVE_BENCH_STREAM_CALL_H_
