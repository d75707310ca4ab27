// ringserve-bench: the online load generator (after vLLM's benchmark_serving). It asks the
// server for its vocabulary, sends a seeded workload of token-id prompts closed-loop
// (--concurrency) or open-loop (--rate), and reports throughput and latency percentiles.
// Exit status: 0 when the run completed (failed requests are in the report), 1 when it
// could not start, 2 for a bad command line.
#include <iostream>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "ringserve/v1/inference.grpc.pb.h"
#include "tools/common/arg_parser.h"
#include "tools/grpc_client/grpc_client.h"
#include "tools/ringserve-bench/load_driver.h"
#include "tools/ringserve-bench/progress_bar.h"
#include "tools/ringserve-bench/report.h"
#include "tools/ringserve-bench/workload.h"

namespace ringserve::tools::bench {
namespace {

constexpr char kUsage[] =
    "usage: ringserve-bench --target HOST:PORT [--concurrency C | --rate R] [--requests N]\n"
    "       [--sessions S --turns T] [--prompt-tokens P] [--output-tokens O]\n"
    "       [--shared-prefix K] [--regex RE] [--adapter NAME]... [--seed N] [--timeout-s S]\n"
    "       [--connections N] [--stateless] [--embed K]\n"
    "       [--json]\n"
    "       [--tls-ca PEM [--tls-cert PEM --tls-key PEM]] [--token T (or env RINGSERVE_TOKEN)]";

struct BenchFlags {
  WorkloadOptions workload;
  DriverOptions driver;
  ClientSecurity security;
  int64_t seed = 0;
  bool json = false;
};

absl::Status ParseFlags(int argc, char** argv, BenchFlags& flags) {
  ArgParser parser;
  parser.SetUsage(kUsage);
  parser.AddString("target", &flags.driver.target, "HOST:PORT of a router or worker");
  parser.AddInt("concurrency", &flags.driver.concurrency,
                "most streams in flight (default 1; with --rate: unlimited)");
  parser.AddFloat("rate", &flags.driver.rate, "requests/s, Poisson arrivals (0 = closed loop)");
  parser.AddInt("requests", &flags.workload.num_requests,
                "requests to send (default sessions x turns, else 100)");
  parser.AddInt("sessions", &flags.workload.num_sessions, "sessions (0 = one-off requests)");
  parser.AddInt("turns", &flags.workload.turns, "turns per conversation; later turns append");
  parser.AddInt("prompt-tokens", &flags.workload.prompt_tokens, "new tokens per request");
  parser.AddInt("output-tokens", &flags.driver.output_tokens,
                "tokens per completion (max_tokens with ignore_eos)");
  parser.AddInt("shared-prefix", &flags.workload.shared_prefix_tokens,
                "leading tokens every first-turn prompt shares");
  parser.AddString("regex", &flags.driver.regex,
                   "hold every reply to this regular expression (structured output; the model "
                   "needs a tokenizer)");
  parser.AddRepeated("adapter", &flags.driver.adapters,
                     "a LoRA adapter of the server's; repeated, conversations take them in turn "
                     "(conversation i the i-th mod their count)");
  parser.AddInt("seed", &flags.seed, "workload seed");
  parser.AddFloat("timeout-s", &flags.driver.timeout_s, "per-request deadline; 0 = none");
  parser.AddInt("connections", &flags.driver.connections, "HTTP/2 connections to spread over");
  parser.AddBool("stateless", &flags.driver.stateless,
                 "conversations without session ids: each turn resends the whole context");
  parser.AddString("session-prefix", &flags.workload.session_prefix, "session ids' prefix");
  parser.AddInt("embed", &flags.driver.embed_inputs,
                "send Embed calls of K inputs (--prompt-tokens each) instead of Generate streams",
                {.min = 0});
  parser.AddBool("json", &flags.json, "print one JSON object");
  flags.security.Register(parser);
  RS_RETURN_IF_ERROR(parser.Parse(argc, argv));
  RS_ASSIGN_OR_RETURN(flags.driver.channels, ChannelFactory::Create(flags.security));
  if (flags.driver.target.empty()) return absl::InvalidArgumentError("--target is required");
  if (!parser.IsSet("concurrency") && flags.driver.rate > 0) flags.driver.concurrency = 0;
  if (flags.driver.rate <= 0 && flags.driver.concurrency < 1) {
    return absl::InvalidArgumentError("closed loop needs --concurrency >= 1");
  }
  if (flags.driver.output_tokens < 1) {
    return absl::InvalidArgumentError("--output-tokens must be >= 1");
  }
  if (flags.driver.embed_inputs > 0 &&
      (flags.workload.num_sessions > 0 || !flags.driver.regex.empty() ||
       parser.IsSet("output-tokens"))) {
    return absl::InvalidArgumentError(
        "--embed sends one-off Embed calls: no --sessions, --regex or --output-tokens");
  }
  if (flags.driver.embed_inputs > 64) {
    return absl::InvalidArgumentError("--embed: at most 64 inputs a call");
  }
  if (!parser.IsSet("requests")) {
    flags.workload.num_requests =
        flags.workload.num_sessions > 0 ? flags.workload.num_sessions * flags.workload.turns : 100;
  }
  flags.workload.seed = static_cast<uint64_t>(flags.seed);
  flags.workload.vocab_size = Workload::kFirstTokenId + 1;  // checked for real once known
  return flags.workload.Validate();
}

absl::StatusOr<ringserve::v1::ModelInfo> FetchModelInfo(const DriverOptions& driver) {
  auto stub = ringserve::v1::Inference::NewStub(driver.channels.Make(driver.target));
  grpc::ClientContext context;
  SetTimeout(&context, 10);
  ringserve::v1::ModelInfo info;
  if (grpc::Status s = stub->GetModelInfo(&context, {}, &info); !s.ok()) {
    return FromGrpcStatus(s);
  }
  return info;
}

absl::Status Run(BenchFlags flags) {
  RS_ASSIGN_OR_RETURN(ringserve::v1::ModelInfo info, FetchModelInfo(flags.driver));
  flags.workload.vocab_size = info.vocab_size();
  RS_RETURN_IF_ERROR(flags.workload.Validate());
  const int64_t longest = static_cast<int64_t>(flags.workload.turns) *
                          (flags.workload.prompt_tokens +
                           (flags.driver.embed_inputs > 0 ? 1 : flags.driver.output_tokens));
  if (info.context_length() > 0 && longest > info.context_length()) {
    return absl::FailedPreconditionError(
        absl::StrCat("a conversation grows to ", longest, " tokens, beyond the model's context of ",
                     info.context_length(), "; lower --turns, --prompt-tokens or --output-tokens"));
  }
  const Workload workload(flags.workload);
  ProgressBar progress(flags.workload.num_requests);
  if (progress.enabled()) {
    flags.driver.progress = [&progress](int done, int failed) { progress.Update(done, failed); };
  }
  const DriverRun run = LoadDriver(workload, flags.driver).Run();
  const BenchReport report = BuildReport(run);
  if (!flags.json) {
    PrintReport(report, std::cout);
    return absl::OkStatus();
  }
  nlohmann::json out = ReportJson(report);
  out["config"] = {{"target", flags.driver.target},
                   {"model", info.model_name()},
                   {"concurrency", flags.driver.concurrency},
                   {"rate", flags.driver.rate},
                   {"requests", flags.workload.num_requests},
                   {"sessions", flags.workload.num_sessions},
                   {"turns", flags.workload.turns},
                   {"prompt_tokens", flags.workload.prompt_tokens},
                   {"output_tokens", flags.driver.output_tokens},
                   {"shared_prefix", flags.workload.shared_prefix_tokens},
                   {"regex", flags.driver.regex},
                   {"embed_inputs", flags.driver.embed_inputs},
                   {"adapters", flags.driver.adapters},
                   {"seed", flags.workload.seed}};
  std::cout << out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  return absl::OkStatus();
}

}  // namespace
}  // namespace ringserve::tools::bench

int main(int argc, char** argv) {
  ringserve::tools::bench::BenchFlags flags;
  if (absl::Status s = ringserve::tools::bench::ParseFlags(argc, argv, flags); !s.ok()) {
    std::cerr << "ringserve-bench: " << s.message() << " (see --help)\n";
    return 2;
  }
  if (absl::Status s = ringserve::tools::bench::Run(std::move(flags)); !s.ok()) {
    std::cerr << "error: " << absl::StatusCodeToString(s.code()) << ": " << s.message() << "\n";
    return 1;
  }
  return 0;
}
