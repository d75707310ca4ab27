// ringserve-router: the stateless front of a ringserve fleet. Consistently hashes each
// session onto a healthy worker and relays the call (docs/design.md, "The router").
#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/auth_token.h"
#include "common/grpc/tls_credentials.h"
#include "common/log.h"
#include "common/metrics/metrics_server.h"
#include "common/open_file_limit.h"
#include "common/openai/openai_front.h"
#include "common/termination_signals.h"
#include "router/router_server.h"
#include "tools/common/arg_parser.h"
#include "tools/common/http_api_flags.h"

namespace {

constexpr char kUsage[] =
    "usage: ringserve-router --port P --workers host:port,host:port|dns:NAME:PORT\n"
    "                        [--metrics-port M] [flags]\n"
    "Serves ringserve.v1.Inference and Admin on --port and forwards each call to the\n"
    "worker that owns its session. SIGTERM or SIGINT drains: health NOT_SERVING, no new\n"
    "calls, in-flight calls finish (up to --drain-timeout-s), then exit.\n"
    "Security: --tls-cert/--tls-key serve TLS, --tls-client-ca requires client certificates;\n"
    "--worker-tls-* secure the connections to workers; --auth-token-file (or the env\n"
    "RINGSERVE_AUTH_TOKEN) requires 'authorization: Bearer <token>' on every Inference and\n"
    "Admin call (grpc.health stays open). A bad file is a startup error (exit 2).\n"
    "OpenAI API: --http-port serves /v1/completions, /v1/chat/completions, /v1/embeddings\n"
    "and /v1/models over HTTP (plain text: terminate TLS in front of it), each request\n"
    "routed, authenticated and limited as a gRPC call is.\n";

struct Flags {
  int port = 50050;
  std::string host = "0.0.0.0";
  std::string workers;
  int metrics_port = 0;
  int vnodes = 160;
  double load_factor = 1.25;
  int prefix_affinity_bytes = 256;
  bool adapter_affinity = false;
  int health_interval_ms = 1000;
  int health_timeout_ms = 500;
  int dns_interval_s = 5;
  int drain_timeout_s = 30;
  ringserve::ServerTlsFiles tls;
  ringserve::ClientTlsFiles worker_tls;
  std::string worker_tls_server_name;
  std::string auth_token_file;
  int max_request_bytes = 16 << 20;
  int max_tokens = 0;
  int max_concurrent_per_client = 0;
  ringserve::tools::HttpApiFlags http_api;
};

void AddSecurityFlags(ringserve::tools::ArgParser& args, Flags& flags) {
  args.AddString("tls-cert", &flags.tls.cert_path, "PEM certificate chain: serve clients TLS");
  args.AddString("tls-key", &flags.tls.key_path, "PEM private key of --tls-cert");
  args.AddString("tls-client-ca", &flags.tls.client_ca_path,
                 "PEM CA: clients must present a certificate it signed (mutual TLS)");
  args.AddString("worker-tls-ca", &flags.worker_tls.ca_path,
                 "PEM CA that signed the workers' certificates: connect to workers over TLS");
  args.AddString("worker-tls-cert", &flags.worker_tls.cert_path,
                 "PEM client certificate for workers that require one (mutual TLS)");
  args.AddString("worker-tls-key", &flags.worker_tls.key_path, "PEM private key of it");
  args.AddString("worker-tls-server-name", &flags.worker_tls_server_name,
                 "name the workers' certificates carry (default: the address dialled)");
  args.AddString("auth-token-file", &flags.auth_token_file,
                 "accepted bearer tokens, one per line ('#' comments); default: the env "
                 "RINGSERVE_AUTH_TOKEN; neither: no authentication");
  args.AddInt("max-request-bytes", &flags.max_request_bytes,
              "largest request message; larger: RESOURCE_EXHAUSTED (default 16 MiB)");
  args.AddInt("max-tokens", &flags.max_tokens,
              "cap on a Generate's max_tokens: above it INVALID_ARGUMENT, unset gets the cap "
              "(0 = no cap)");
  args.AddInt("max-concurrent-per-client", &flags.max_concurrent_per_client,
              "Generate streams in flight per client (its token, else its IP); beyond it "
              "RESOURCE_EXHAUSTED (0 = no limit)");
}

// The router's credentials, tokens and limits from the flags into `options`. A file that
// cannot be read or holds the wrong thing is an error naming it; the token never appears.
absl::Status ApplySecurityFlags(const Flags& flags, ringserve::router::RouterOptions& options) {
  if (flags.max_request_bytes < 1 || flags.max_tokens < 0 || flags.max_concurrent_per_client < 0) {
    return absl::InvalidArgumentError(
        "--max-request-bytes must be >= 1, --max-tokens and --max-concurrent-per-client >= 0");
  }
  if (flags.tls.enabled()) {
    auto credentials = ringserve::LoadServerCredentials(flags.tls);
    if (!credentials.ok()) return credentials.status();
    options.credentials = *std::move(credentials);
  }
  if (flags.worker_tls.enabled()) {
    auto credentials = ringserve::LoadChannelCredentials(flags.worker_tls);
    if (!credentials.ok()) {
      return absl::Status(credentials.status().code(),
                          absl::StrCat("--worker-tls-*: ", credentials.status().message()));
    }
    options.membership.worker_credentials = *std::move(credentials);
  }
  options.membership.worker_server_name = flags.worker_tls_server_name;
  absl::StatusOr<ringserve::TokenSet> tokens = ringserve::LoadTokens(flags.auth_token_file);
  if (!tokens.ok()) return tokens.status();
  options.policy.tokens = *std::move(tokens);
  if (!options.policy.tokens.empty() && !flags.tls.enabled()) {
    ringserve::Log(ringserve::LogLevel::kWarning, "router",
                   "bearer tokens are required but --tls-cert is not set: tokens cross the "
                   "network in plain text");
  }
  options.max_request_bytes = flags.max_request_bytes;
  options.policy.max_tokens = flags.max_tokens;
  options.policy.max_concurrent_per_client = flags.max_concurrent_per_client;
  return absl::OkStatus();
}

int Run(int argc, char** argv) {
  Flags flags;
  ringserve::tools::ArgParser args;
  args.AddInt("port", &flags.port, "gRPC port (default 50050; 0 picks a free one)");
  args.AddString("host", &flags.host, "address to listen on (default 0.0.0.0)");
  args.AddString("workers", &flags.workers,
                 "host:port,host:port (static) or dns:NAME:PORT (re-resolved)");
  args.AddInt("metrics-port", &flags.metrics_port, "Prometheus /metrics port (0 = off)");
  args.AddInt("vnodes", &flags.vnodes, "ring points per worker (default 160)");
  args.AddFloat("load-factor", &flags.load_factor,
                "bounded loads c: skip a worker above ceil(c * mean) in flight (default 1.25)");
  args.AddInt("prefix-affinity-bytes", &flags.prefix_affinity_bytes,
              "requests without a session go to the ring owner of their input's first N bytes "
              "(bounded loads apply), so those sharing a prompt's start share a worker's prefix "
              "cache (default 256; 0: the less loaded of two random workers)",
              {.min = 0, .max = 1 << 20});
  args.AddBool("adapter-affinity", &flags.adapter_affinity,
               "requests without a session that name a LoRA adapter go to the ring owner of "
               "the adapter's name (bounded loads apply), so each worker swaps among fewer "
               "adapters (default false: placed by their input's prefix like the others)");
  args.AddInt("health-interval-ms", &flags.health_interval_ms, "health-check period (1000)");
  args.AddInt("health-timeout-ms", &flags.health_timeout_ms, "health-check deadline (500)");
  args.AddInt("dns-interval-s", &flags.dns_interval_s, "dns: re-resolution period (5)");
  args.AddInt("drain-timeout-s", &flags.drain_timeout_s,
              "on SIGTERM, how long in-flight calls may take (30)", {.min = 0});
  flags.http_api.Register(args, "the name the workers report");
  AddSecurityFlags(args, flags);
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
      std::cout << kUsage << "flags:\n" << args.Help();
      return 0;
    }
  }
  if (absl::Status s = args.Parse(argc, argv); !s.ok() || !args.positional().empty()) {
    std::cerr << (s.ok() ? "unexpected argument " + args.positional()[0] : std::string(s.message()))
              << "\n"
              << kUsage;
    return 2;
  }
  if (flags.workers.empty()) {
    std::cerr << "--workers is required\n" << kUsage;
    return 2;
  }
  auto source = ringserve::router::WorkerSource::Parse(flags.workers);
  if (!source.ok()) {
    std::cerr << source.status().message() << "\n";
    return 2;
  }
  ringserve::router::RouterOptions options;
  if (absl::Status s = ApplySecurityFlags(flags, options); !s.ok()) {
    std::cerr << "ringserve-router: " << s.message() << "\n";
    return 2;
  }

  // Signals are taken synchronously by this thread (sigwait), so they are blocked before
  // gRPC starts any thread that would otherwise inherit the default disposition.
  ringserve::BlockTerminationSignals();
  ringserve::LogOpenFileLimit("router");

  auto metrics = ringserve::metrics::MetricsServer::Create(
      {.serve = flags.metrics_port != 0, .host = flags.host, .port = flags.metrics_port});
  if (!metrics.ok()) {
    std::cerr << metrics.status().message() << "\n";
    return 1;
  }
  options.listen_address = absl::StrCat(flags.host, ":", flags.port);
  options.membership.source = *std::move(source);
  options.membership.ring.points_per_endpoint = flags.vnodes;
  options.membership.ring.load_factor = flags.load_factor;
  options.prefix_affinity_bytes = flags.prefix_affinity_bytes;
  options.adapter_affinity = flags.adapter_affinity;
  options.membership.health_interval = absl::Milliseconds(flags.health_interval_ms);
  options.membership.health_timeout = absl::Milliseconds(flags.health_timeout_ms);
  options.membership.dns_interval = absl::Seconds(flags.dns_interval_s);
  auto router =
      ringserve::router::RouterServer::Create(std::move(options), &(*metrics)->registry());
  if (!router.ok()) {
    std::cerr << router.status().message() << "\n";
    return 1;
  }
  std::printf("ringserve-router listening on %s:%d\n", flags.host.c_str(), (*router)->port());

  // The HTTP front calls the router (LocalChannel), so it goes before the router at shutdown.
  std::unique_ptr<ringserve::openai::OpenAiFront> http;
  if (flags.http_api.http_port != 0) {
    ringserve::openai::OpenAiFrontOptions front = flags.http_api.FrontOptions();
    front.host = flags.host;
    front.max_body_bytes = static_cast<size_t>(flags.max_request_bytes);
    front.metrics = metrics->get();
    auto started = ringserve::openai::OpenAiFront::Start((*router)->LocalChannel(), front);
    if (!started.ok()) {
      std::cerr << "--http-port: " << started.status().message() << "\n";
      return 1;
    }
    http = *std::move(started);
    if (flags.tls.enabled()) {
      ringserve::Log(ringserve::LogLevel::kWarning, "router",
                     "--http-port serves plain HTTP although --tls-cert is set: terminate TLS "
                     "in front of it");
    }
    std::printf("ringserve-router OpenAI API on http://%s:%d/v1\n", flags.host.c_str(),
                http->port());
  }
  std::fflush(stdout);

  const std::string signal = ringserve::WaitForTerminationSignal();
  ringserve::Log(ringserve::LogLevel::kInfo, "router", "signal received; draining",
                 {{"signal", signal}});
  const absl::Duration grace = absl::Seconds(flags.drain_timeout_s);
  if (http != nullptr) {
    (*router)->BeginDrain();  // health NOT_SERVING first, as without the HTTP front
    http->Shutdown(grace);
  }
  (*router)->Shutdown(grace);
  ringserve::Log(ringserve::LogLevel::kInfo, "router", "stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return Run(argc, argv); }
