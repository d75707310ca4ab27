// OpenAiTransport: ringserve-bench's requests over OpenAI's HTTP API (openai_calls.h), all on
// one HttpClient: one thread reads every stream.
#ifndef RINGSERVE_TOOLS_RINGSERVE_BENCH_OPENAI_TRANSPORT_H_
#define RINGSERVE_TOOLS_RINGSERVE_BENCH_OPENAI_TRANSPORT_H_

#include <memory>

#include "common/http/http_client.h"
#include "tools/ringserve-bench/bench_call.h"
#include "tools/ringserve-bench/openai_calls.h"

namespace ringserve::tools::bench {

class OpenAiTransport final : public Transport {
 public:
  // `client` outlives the transport and every call it makes.
  OpenAiTransport(http::HttpClient* client, OpenAiCallOptions options)
      : client_(client), options_(std::move(options)) {}

  std::unique_ptr<BenchCall> Generate(int index, ringserve::v1::GenerateRequest request,
                                      OnCallDone on_done) override {
    return std::make_unique<OpenAiStreamCall>(index, client_, request, options_,
                                              std::move(on_done));
  }
  std::unique_ptr<BenchCall> Embed(int index, ringserve::v1::EmbedRequest request,
                                   OnCallDone on_done) override {
    return std::make_unique<OpenAiEmbedCall>(index, client_, request, options_, std::move(on_done));
  }

 private:
  http::HttpClient* const client_;
  const OpenAiCallOptions options_;
};

}  // namespace ringserve::tools::bench

#endif  // RINGSERVE_TOOLS_RINGSERVE_BENCH_OPENAI_TRANSPORT_H_
