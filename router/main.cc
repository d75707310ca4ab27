// ringserve-router: the stateless front of a ringserve fleet. Consistently hashes each
// session onto a healthy worker and relays the call (docs/design.md, "The router").
#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/log.h"
#include "common/metrics/metrics_server.h"
#include "common/termination_signals.h"
#include "router/router_server.h"
#include "tools/common/arg_parser.h"

namespace {

constexpr char kUsage[] =
    "usage: ringserve-router --port P --workers host:port,host:port|dns:NAME:PORT\n"
    "                        [--metrics-port M] [flags]\n"
    "Serves ringserve.v1.Inference and Admin on --port and forwards each call to the\n"
    "worker that owns its session. SIGTERM or SIGINT drains: health NOT_SERVING, no new\n"
    "calls, in-flight calls finish (up to --drain-timeout-s), then exit.\n";

struct Flags {
  int port = 50050;
  std::string host = "0.0.0.0";
  std::string workers;
  int metrics_port = 0;
  int vnodes = 160;
  double load_factor = 1.25;
  int health_interval_ms = 1000;
  int health_timeout_ms = 500;
  int dns_interval_s = 5;
  int drain_timeout_s = 30;
};

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
  args.AddInt("health-interval-ms", &flags.health_interval_ms, "health-check period (1000)");
  args.AddInt("health-timeout-ms", &flags.health_timeout_ms, "health-check deadline (500)");
  args.AddInt("dns-interval-s", &flags.dns_interval_s, "dns: re-resolution period (5)");
  args.AddInt("drain-timeout-s", &flags.drain_timeout_s,
              "on SIGTERM, how long in-flight calls may take (30)");
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

  // Signals are taken synchronously by this thread (sigwait), so they are blocked before
  // gRPC starts any thread that would otherwise inherit the default disposition.
  ringserve::BlockTerminationSignals();

  auto metrics = ringserve::metrics::MetricsServer::Create(
      {.serve = flags.metrics_port != 0, .host = flags.host, .port = flags.metrics_port});
  if (!metrics.ok()) {
    std::cerr << metrics.status().message() << "\n";
    return 1;
  }
  ringserve::router::RouterOptions options;
  options.listen_address = absl::StrCat(flags.host, ":", flags.port);
  options.membership.source = *std::move(source);
  options.membership.ring.points_per_endpoint = flags.vnodes;
  options.membership.ring.load_factor = flags.load_factor;
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
  std::fflush(stdout);

  const std::string signal = ringserve::WaitForTerminationSignal();
  ringserve::Log(ringserve::LogLevel::kInfo, "router", "signal received; draining",
                 {{"signal", signal}});
  (*router)->Shutdown(absl::Seconds(flags.drain_timeout_s));
  ringserve::Log(ringserve::LogLevel::kInfo, "router", "stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return Run(argc, argv); }
