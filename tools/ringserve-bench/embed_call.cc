#include "tools/ringserve-bench/embed_call.h"

#include <chrono>
#include <utility>

#include "tools/grpc_client/grpc_client.h"

namespace ringserve::tools::bench {

EmbedCall::EmbedCall(int index, ringserve::v1::EmbedRequest request, double timeout_s,
                     ringserve::v1::Inference::Stub* stub, OnCallDone on_done)
    : request_(std::move(request)), stub_(stub), on_done_(std::move(on_done)) {
  result_.index = index;
  for (const ringserve::v1::EmbedInput& input : request_.inputs()) {
    result_.input_tokens += input.tokens().ids_size();
  }
  SetTimeout(&context_, timeout_s);
}

void EmbedCall::Start() {
  result_.start = Clock::now();
  stub_->async()->Embed(&context_, &request_, &response_, this);
  StartCall();
}

void EmbedCall::OnDone(const grpc::Status& status) {
  result_.e2e_ms = MsBetween(result_.start, Clock::now());
  result_.code = status.error_code();
  result_.message = status.error_message();
  if (status.ok() && response_.embeddings_size() != request_.inputs_size()) {
    result_.code = grpc::StatusCode::DATA_LOSS;
    result_.message = "fewer embeddings than inputs";
  }
  for (const ringserve::v1::Embedding& e : response_.embeddings()) {
    result_.prompt_tokens += e.prompt_tokens();
    result_.cached_tokens += e.cached_tokens();
  }
  result_.embeddings = response_.embeddings_size();
  // The driver may destroy this call as soon as it hears of it, so the callback runs
  // from a copy and nothing of this object is touched afterwards.
  const OnCallDone on_done = on_done_;
  on_done(result_.index);
}

}  // namespace ringserve::tools::bench
