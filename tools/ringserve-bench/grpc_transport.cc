#include "tools/ringserve-bench/grpc_transport.h"

#include <algorithm>
#include <utility>

#include "tools/ringserve-bench/embed_call.h"
#include "tools/ringserve-bench/stream_call.h"

namespace ringserve::tools::bench {

GrpcTransport::GrpcTransport(const std::string& target, const ChannelFactory& channels,
                             int connections, double timeout_s)
    : timeout_s_(timeout_s) {
  for (int c = 0; c < std::max(1, connections); ++c) {
    stubs_.push_back(ringserve::v1::Inference::NewStub(channels.Make(target, c)));
  }
}

ringserve::v1::Inference::Stub* GrpcTransport::StubFor(int index) const {
  return stubs_[static_cast<size_t>(index) % stubs_.size()].get();
}

std::unique_ptr<BenchCall> GrpcTransport::Generate(int index,
                                                   ringserve::v1::GenerateRequest request,
                                                   OnCallDone on_done) {
  return std::make_unique<StreamCall>(index, std::move(request), timeout_s_, StubFor(index),
                                      std::move(on_done));
}

std::unique_ptr<BenchCall> GrpcTransport::Embed(int index, ringserve::v1::EmbedRequest request,
                                                OnCallDone on_done) {
  return std::make_unique<EmbedCall>(index, std::move(request), timeout_s_, StubFor(index),
                                     std::move(on_done));
}

}  // namespace ringserve::tools::bench
