// LoadDriver: sends a Workload to a server, closed-loop (a fixed number of streams in
// flight) or open-loop (Poisson arrivals), keeping each session's turns in order.
#ifndef RINGSERVE_TOOLS_RINGSERVE_BENCH_LOAD_DRIVER_H_
#define RINGSERVE_TOOLS_RINGSERVE_BENCH_LOAD_DRIVER_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tools/ringserve-bench/bench_call.h"
#include "tools/ringserve-bench/workload.h"

namespace ringserve::tools::bench {

struct DriverOptions {
  // How requests reach the server (gRPC or OpenAI's HTTP API); outlives the driver's Run.
  Transport* transport = nullptr;
  // Most streams in flight; 0: no limit (open loop only).
  int concurrency = 1;
  // Requests per second with exponential gaps (a Poisson process); 0: all at once, the
  // concurrency limit alone paces them (closed loop).
  double rate = 0;
  // Sent as max_tokens with ignore_eos, so every completion has exactly this length.
  int output_tokens = 128;
  // Not empty: every request's reply is held to this regular expression (response_format
  // regex), to measure structured output under load.
  std::string regex;
  // Conversations without session ids: every turn resends the whole context, as clients of
  // stateless APIs do (where the router's prefix affinity matters).
  bool stateless = false;
  // > 0: every request is an Embed of this many inputs (the request's prompt and variants
  // of it), not a Generate; one-off requests only.
  int embed_inputs = 0;
  // Not empty: conversation i (or one-off request i) runs with LoRA adapter
  // adapters[i % size] (GenerateRequest.adapter, EmbedRequest.adapter).
  std::vector<std::string> adapters;
  // Called about ten times a second from the driving thread with (finished, failed).
  std::function<void(int, int)> progress;
};

struct DriverRun {
  std::vector<RequestResult> results;  // in request order
  double duration_s = 0;
};

// Thread: Run() on the caller's thread, which starts every call, harvests the finished
// ones and keeps the sessions' state; the transport's threads only hand
// finished calls over.
class LoadDriver {
 public:
  LoadDriver(const Workload& workload, DriverOptions options);
  ~LoadDriver();

  DriverRun Run();

 private:
  class State;
  std::unique_ptr<State> state_;
};

}  // namespace ringserve::tools::bench

#endif  // RINGSERVE_TOOLS_RINGSERVE_BENCH_LOAD_DRIVER_H_
