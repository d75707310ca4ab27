// EmbedCall: one Embed call driven on gRPC's callback API, for ringserve-bench --embed.
#ifndef RINGSERVE_TOOLS_RINGSERVE_BENCH_EMBED_CALL_H_
#define RINGSERVE_TOOLS_RINGSERVE_BENCH_EMBED_CALL_H_

#include "grpcpp/client_context.h"
#include "grpcpp/support/client_callback.h"
#include "ringserve/v1/inference.grpc.pb.h"
#include "tools/ringserve-bench/bench_call.h"

namespace ringserve::tools::bench {

// Owner: LoadDriver, which destroys it only after `on_done` ran (its last act).
// Thread: Start() on the driver's thread; OnDone on one of gRPC's.
class EmbedCall final : public grpc::ClientUnaryReactor, public BenchCall {
 public:
  // `on_done(index)` is called once, from OnDone, when result() is complete. `stub` outlives
  // the call.
  EmbedCall(int index, ringserve::v1::EmbedRequest request, double timeout_s,
            ringserve::v1::Inference::Stub* stub, OnCallDone on_done);

  void Start() override;
  RequestResult& result() override { return result_; }

  void OnDone(const grpc::Status& status) override;

 private:
  grpc::ClientContext context_;
  const ringserve::v1::EmbedRequest request_;
  ringserve::v1::Inference::Stub* const stub_;
  const OnCallDone on_done_;
  ringserve::v1::EmbedResponse response_;
  RequestResult result_;
};

}  // namespace ringserve::tools::bench

#endif  // RINGSERVE_TOOLS_RINGSERVE_BENCH_EMBED_CALL_H_
