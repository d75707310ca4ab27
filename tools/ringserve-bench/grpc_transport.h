// GrpcTransport: ringserve-bench's requests as ringserve.v1 Generate streams and Embed calls,
// spread over a few HTTP/2 connections.
#ifndef RINGSERVE_TOOLS_RINGSERVE_BENCH_GRPC_TRANSPORT_H_
#define RINGSERVE_TOOLS_RINGSERVE_BENCH_GRPC_TRANSPORT_H_

#include <memory>
#include <string>
#include <vector>

#include "ringserve/v1/inference.grpc.pb.h"
#include "tools/grpc_client/grpc_client.h"
#include "tools/ringserve-bench/bench_call.h"

namespace ringserve::tools::bench {

class GrpcTransport final : public Transport {
 public:
  // Calls go round `connections` channels to `target`; `timeout_s` > 0 is each call's deadline.
  GrpcTransport(const std::string& target, const ChannelFactory& channels, int connections,
                double timeout_s);

  std::unique_ptr<BenchCall> Generate(int index, ringserve::v1::GenerateRequest request,
                                      OnCallDone on_done) override;
  std::unique_ptr<BenchCall> Embed(int index, ringserve::v1::EmbedRequest request,
                                   OnCallDone on_done) override;

 private:
  ringserve::v1::Inference::Stub* StubFor(int index) const;

  std::vector<std::unique_ptr<ringserve::v1::Inference::Stub>> stubs_;
  const double timeout_s_;
};

}  // namespace ringserve::tools::bench

#endif  // RINGSERVE_TOOLS_RINGSERVE_BENCH_GRPC_TRANSPORT_H_
