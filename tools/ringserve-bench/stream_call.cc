#include "tools/ringserve-bench/stream_call.h"

#include "tools/grpc_client/grpc_client.h"

namespace ringserve::tools::bench {

StreamCall::StreamCall(int index, ringserve::v1::GenerateRequest request, double timeout_s,
                       ringserve::v1::Inference::Stub* stub, OnCallDone on_done)
    : request_(std::move(request)), stub_(stub), on_done_(std::move(on_done)) {
  result_.index = index;
  result_.input_tokens = request_.tokens().ids_size();
  SetTimeout(&context_, timeout_s);
}

void StreamCall::Start() {
  result_.start = Clock::now();
  stub_->async()->Generate(&context_, &request_, this);
  StartRead(&response_);
  StartCall();
}

void StreamCall::OnReadDone(bool ok) {
  if (!ok) return;  // the stream ended; OnDone brings the status
  result_.AddTokens(response_.token_ids(), Clock::now());
  if (response_.has_final()) {
    const auto& usage = response_.final().usage();
    result_.prompt_tokens = usage.prompt_tokens();
    result_.cached_tokens = usage.cached_tokens();
    result_.history_tokens = response_.final().history_tokens();
    saw_final_ = true;
  }
  StartRead(&response_);
}

void StreamCall::OnDone(const grpc::Status& status) {
  result_.e2e_ms = MsBetween(result_.start, Clock::now());
  result_.code = status.error_code();
  result_.message = status.error_message();
  if (status.ok() && !saw_final_) {
    // The API promises a final message on every successful stream.
    result_.code = grpc::StatusCode::DATA_LOSS;
    result_.message = "the stream ended OK without a final message";
  }
  // The driver may destroy this call as soon as it hears of it, so the callback runs
  // from a copy and nothing of this object is touched afterwards.
  const OnCallDone on_done = on_done_;
  on_done(result_.index);
}

}  // namespace ringserve::tools::bench
