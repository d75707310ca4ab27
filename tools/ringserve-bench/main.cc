// ringserve-bench: the online load generator (after vLLM's benchmark_serving). It asks the
// server for its vocabulary, sends a seeded workload of token-id prompts closed-loop
// (--concurrency) or open-loop (--rate), and reports throughput and latency percentiles.
// --api openai sends the same workload through OpenAI's HTTP API instead of gRPC.
// Exit status: 0 when the run completed (failed requests are in the report), 1 when it
// could not start, 2 for a bad command line.
#include <iostream>
#include <memory>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/http/http_client.h"
#include "common/open_file_limit.h"
#include "common/status_macros.h"
#include "ringserve/v1/inference.grpc.pb.h"
#include "tools/common/arg_parser.h"
#include "tools/grpc_client/grpc_client.h"
#include "tools/ringserve-bench/grpc_transport.h"
#include "tools/ringserve-bench/load_driver.h"
#include "tools/ringserve-bench/openai_transport.h"
#include "tools/ringserve-bench/progress_bar.h"
#include "tools/ringserve-bench/report.h"
#include "tools/ringserve-bench/workload.h"

namespace ringserve::tools::bench {
namespace {

constexpr char kUsage[] =
    "usage: ringserve-bench --target HOST:PORT [--concurrency C | --rate R] [--requests N]\n"
    "       [--api grpc | --api openai [--model NAME] --vocab-size V]\n"
    "       [--sessions S --turns T] [--prompt-tokens P] [--output-tokens O]\n"
    "       [--shared-prefix K] [--regex RE] [--adapter NAME]... [--seed N] [--timeout-s S]\n"
    "       [--connections N] [--stateless] [--embed K]\n"
    "       [--json]\n"
    "       [--tls-ca PEM [--tls-cert PEM --tls-key PEM]] [--token T (or env RINGSERVE_TOKEN)]";

struct BenchFlags {
  WorkloadOptions workload;
  DriverOptions driver;
  std::string target;
  std::string api = "grpc";
  std::string model;    // --api openai: requests' "model" (default: the server's first)
  int vocab_size = 0;   // --api openai: prompts' ids are drawn below it
  int connections = 4;  // gRPC's HTTP/2 connections
  double timeout_s = 0;
  ClientSecurity security;
  int64_t seed = 0;
  bool json = false;
};

// HOST and PORT of "[http://]HOST:PORT[/v1]" ("[::1]:8000" for an IPv6 address; an OpenAI
// SDK's base URL, with its /v1, is taken as it is).
absl::Status SplitHttpTarget(std::string target, std::string& host, int& port) {
  if (absl::StartsWith(target, "https://")) {
    return absl::InvalidArgumentError("--api openai speaks plain HTTP: no https:// targets");
  }
  if (absl::StartsWith(target, "http://")) target = target.substr(7);
  if (!target.empty() && target.back() == '/') target.pop_back();
  if (absl::EndsWith(target, "/v1")) target.resize(target.size() - 3);
  const size_t colon = target.rfind(':');
  if (colon == std::string::npos || !absl::SimpleAtoi(target.substr(colon + 1), &port) ||
      port <= 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("--target \"", target, "\" is not [http://]HOST:PORT"));
  }
  host = target.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return absl::OkStatus();
}

absl::Status ParseFlags(int argc, char** argv, BenchFlags& flags) {
  ArgParser parser;
  parser.SetUsage(kUsage);
  parser.AddString("target", &flags.target,
                   "HOST:PORT of a router or worker (--api openai: [http://]HOST:PORT)");
  parser.AddString("api", &flags.api,
                   "grpc (ringserve.v1) or openai (streamed /v1/completions, /v1/embeddings)");
  parser.AddString("model", &flags.model,
                   "--api openai: the model to ask for (default: the first /v1/models lists)");
  parser.AddInt("vocab-size", &flags.vocab_size,
                "--api openai: the model's vocabulary size (prompts are random ids below it)");
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
  parser.AddFloat("timeout-s", &flags.timeout_s, "per-request deadline; 0 = none");
  parser.AddInt("connections", &flags.connections,
                "gRPC: HTTP/2 connections to spread over (HTTP/1.1 takes one per stream)");
  parser.AddBool("stateless", &flags.driver.stateless,
                 "conversations without session ids: each turn resends the whole context");
  parser.AddString("session-prefix", &flags.workload.session_prefix, "session ids' prefix");
  parser.AddInt("embed", &flags.driver.embed_inputs,
                "send Embed calls of K inputs (--prompt-tokens each) instead of Generate streams",
                {.min = 0});
  parser.AddBool("json", &flags.json, "print one JSON object");
  flags.security.Register(parser);
  RS_RETURN_IF_ERROR(parser.Parse(argc, argv));
  if (flags.target.empty()) return absl::InvalidArgumentError("--target is required");
  if (flags.api != "grpc" && flags.api != "openai") {
    return absl::InvalidArgumentError("--api must be grpc or openai");
  }
  if (flags.api == "openai") {
    std::string host;
    int port = 0;
    RS_RETURN_IF_ERROR(SplitHttpTarget(flags.target, host, port));
    if (flags.vocab_size <= Workload::kFirstTokenId) {
      return absl::InvalidArgumentError(
          "--api openai needs --vocab-size (OpenAI's API does not say it)");
    }
    if (flags.security.tls.enabled() || parser.IsSet("connections")) {
      return absl::InvalidArgumentError(
          "--api openai speaks plain HTTP/1.1: no --tls-* or --connections");
    }
  } else if (parser.IsSet("model") || parser.IsSet("vocab-size")) {
    return absl::InvalidArgumentError("--model and --vocab-size go with --api openai");
  }
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

// What the workload needs to know of the model.
struct ServedModel {
  std::string name;
  int vocab_size = 0;
  int context_length = 0;  // 0: unknown
};

absl::StatusOr<ServedModel> FetchGrpcModel(const std::string& target,
                                           const ChannelFactory& channels) {
  auto stub = ringserve::v1::Inference::NewStub(channels.Make(target));
  grpc::ClientContext context;
  SetTimeout(&context, 10);
  ringserve::v1::ModelInfo info;
  if (grpc::Status s = stub->GetModelInfo(&context, {}, &info); !s.ok()) {
    return FromGrpcStatus(s);
  }
  return ServedModel{info.model_name(), info.vocab_size(), info.context_length()};
}

// The model's name from /v1/models (the first listed unless --model names one) and its
// context (vLLM's and ringserve's "max_model_len").
absl::StatusOr<ServedModel> FetchOpenAiModel(http::HttpClient& client, const BenchFlags& flags,
                                             const std::string& token) {
  http::HttpClientRequest request;
  request.target = "/v1/models";
  request.timeout = absl::Seconds(10);
  if (!token.empty()) request.headers.emplace_back("Authorization", "Bearer " + token);
  RS_ASSIGN_OR_RETURN(http::HttpFetchResult models, http::Fetch(client, request));
  ServedModel served{flags.model, flags.vocab_size, 0};
  if (models.head.status != 200) {
    RequestResult error;
    ErrorOf(models.head.status, models.body, error);
    return absl::Status(static_cast<absl::StatusCode>(error.code),
                        absl::StrCat("GET /v1/models: ", error.message));
  }
  const nlohmann::json json = nlohmann::json::parse(models.body, nullptr, false);
  if (!json.is_object() || !json.contains("data") || !json["data"].is_array()) {
    return absl::FailedPreconditionError("GET /v1/models did not answer with a list of models");
  }
  for (const nlohmann::json& model : json["data"]) {
    if (!model.is_object() || !model.contains("id") || !model["id"].is_string()) continue;
    const std::string id = model["id"].get<std::string>();
    if (!served.name.empty() && id != served.name) continue;
    served.name = id;
    if (model.contains("max_model_len") && model["max_model_len"].is_number_integer()) {
      served.context_length = model["max_model_len"].get<int>();
    }
    return served;
  }
  return absl::NotFoundError(
      served.name.empty() ? std::string("GET /v1/models lists no model")
                          : absl::StrCat("GET /v1/models does not list \"", served.name, "\""));
}

absl::Status Run(BenchFlags flags) {
  // An HTTP stream is a connection, so thousands of them need as many descriptors.
  if (const absl::StatusOr<uint64_t> limit = RaiseOpenFileLimit(); !limit.ok()) {
    std::cerr << "warning: " << limit.status().message() << "\n";
  }
  // Whichever API: the transport, and what the workload needs to know of the model.
  std::unique_ptr<http::HttpClient> http_client;
  std::unique_ptr<Transport> transport;
  ServedModel served;
  if (flags.api == "openai") {
    std::string host;
    int port = 0;
    RS_RETURN_IF_ERROR(SplitHttpTarget(flags.target, host, port));
    RS_ASSIGN_OR_RETURN(http_client, http::HttpClient::Create(host, port));
    std::string token = flags.security.token;
    if (const char* env = std::getenv("RINGSERVE_TOKEN"); token.empty() && env != nullptr) {
      token = env;
    }
    RS_ASSIGN_OR_RETURN(served, FetchOpenAiModel(*http_client, flags, token));
    transport = std::make_unique<OpenAiTransport>(
        http_client.get(), OpenAiCallOptions{.model = served.name,
                                             .token = token,
                                             .timeout_s = flags.timeout_s,
                                             .need_ids = flags.workload.turns > 1});
  } else {
    RS_ASSIGN_OR_RETURN(const ChannelFactory channels, ChannelFactory::Create(flags.security));
    RS_ASSIGN_OR_RETURN(served, FetchGrpcModel(flags.target, channels));
    transport =
        std::make_unique<GrpcTransport>(flags.target, channels, flags.connections, flags.timeout_s);
  }
  flags.driver.transport = transport.get();
  flags.workload.vocab_size = served.vocab_size;
  RS_RETURN_IF_ERROR(flags.workload.Validate());
  const int64_t longest = static_cast<int64_t>(flags.workload.turns) *
                          (flags.workload.prompt_tokens +
                           (flags.driver.embed_inputs > 0 ? 1 : flags.driver.output_tokens));
  if (served.context_length > 0 && longest > served.context_length) {
    return absl::FailedPreconditionError(
        absl::StrCat("a conversation grows to ", longest, " tokens, beyond the model's context of ",
                     served.context_length, "; lower --turns, --prompt-tokens or --output-tokens"));
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
  out["config"] = {{"target", flags.target},
                   {"api", flags.api},
                   {"model", served.name},
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
