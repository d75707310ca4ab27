// ringserve-worker: one model, one generator, one KV cache, served over gRPC
// (docs/design.md, "The engine"). The router spreads sessions over many of these.
#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/grpc/tls_credentials.h"
#include "common/log.h"
#include "common/metrics/metrics_server.h"
#include "common/termination_signals.h"
#include "kernels/dtype.h"
#include "tools/common/arg_parser.h"
#include "tools/common/model_setup.h"
#include "worker/engine/llama_runner.h"
#include "worker/server/worker_server.h"

namespace {

using ringserve::engine::KvMemory;

constexpr char kUsage[] =
    "usage: ringserve-worker (--model PATH [--tokenizer PATH] | --dummy-weights --preset NAME)\n"
    "                        [--port P] [--device cpu|cuda:N] [--id NAME] [flags]\n"
    "Serves ringserve.v1.Inference and Admin for one model on one device. SIGTERM or SIGINT\n"
    "drains: health NOT_SERVING, new requests refused, admitted ones finish (up to\n"
    "--drain-timeout-s), then exit.\n";

struct Flags {
  ringserve::tools::ModelFlags model;
  int port = 50051;
  std::string host = "0.0.0.0";
  std::string id;
  std::string kv_memory;  // empty: 1GiB on the CPU, 0.9 of free memory on a GPU
  int kv_blocks = 0;
  int block_size = 16;
  int max_seqs = 256;
  int max_sessions = 16384;
  int session_ttl_s = 1800;
  int max_queue = 4096;
  int max_pending_tokens = 4096;
  int metrics_port = 0;
  int drain_timeout_s = 30;
  int min_step_ms = 0;
  ringserve::ServerTlsFiles tls;
};

// "0.5" (a fraction of free memory), "1073741824", "512MiB", "2GiB", "1GB".
absl::StatusOr<KvMemory> ParseKvMemory(const std::string& text) {
  struct Unit {
    const char* suffix;
    double scale;
  };
  static constexpr Unit kUnits[] = {{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10},
                                    {"GB", 1e9},      {"MB", 1e6},      {"KB", 1e3}};
  absl::string_view number = text;
  double scale = 1;
  for (const Unit& unit : kUnits) {
    if (absl::EndsWith(number, unit.suffix)) {
      number.remove_suffix(std::strlen(unit.suffix));
      scale = unit.scale;
      break;
    }
  }
  double value = 0;
  if (!absl::SimpleAtod(number, &value) || value <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("--kv-memory: cannot read '", text, "'"));
  }
  KvMemory memory;
  if (scale == 1 && value <= 1) {
    memory.fraction_of_free = value;
  } else {
    memory.bytes = static_cast<size_t>(value * scale);
  }
  return memory;
}

std::string DefaultId() {
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  return absl::StrCat(host, "-", getpid());
}

int Run(int argc, char** argv) {
  Flags flags;
  ringserve::tools::ArgParser args;
  flags.model.Register(args);
  args.AddInt("port", &flags.port, "gRPC port (default 50051; 0 picks a free one)");
  args.AddString("host", &flags.host, "address to listen on (default 0.0.0.0)");
  args.AddString("id", &flags.id, "worker id in responses and metrics (default host-pid)");
  args.AddString("kv-memory", &flags.kv_memory,
                 "KV pool: bytes (2GiB, 512MiB) or a fraction of free memory (0.9); default "
                 "1GiB on the CPU, 0.9 on a GPU");
  args.AddInt("kv-blocks", &flags.kv_blocks, "KV pool in blocks (overrides --kv-memory)");
  args.AddInt("block-size", &flags.block_size, "tokens per KV block (default 16)");
  args.AddInt("max-seqs", &flags.max_seqs, "most sequences per step (default 256)");
  args.AddInt("max-sessions", &flags.max_sessions, "most live sessions; LRU beyond (16384)");
  args.AddInt("session-ttl-s", &flags.session_ttl_s, "idle session lifetime (1800)");
  args.AddInt("max-queue", &flags.max_queue,
              "most admitted unfinished requests; beyond: RESOURCE_EXHAUSTED (4096)");
  args.AddInt("max-pending-tokens", &flags.max_pending_tokens,
              "tokens a slow reader may fall behind before its request is cancelled (4096)");
  args.AddInt("metrics-port", &flags.metrics_port, "Prometheus /metrics port (0 = off)");
  args.AddInt("drain-timeout-s", &flags.drain_timeout_s,
              "on SIGTERM, how long admitted requests may take (30)");
  args.AddInt("min-step-ms", &flags.min_step_ms,
              "pace the engine: each step lasts at least this long (fault tests, demos; 0)");
  args.AddString("tls-cert", &flags.tls.cert_path, "PEM certificate chain: serve TLS");
  args.AddString("tls-key", &flags.tls.key_path, "PEM private key of --tls-cert");
  args.AddString("tls-client-ca", &flags.tls.client_ca_path,
                 "PEM CA: only clients (routers) with a certificate it signed get in (mTLS)");
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
  // Before the model loads: a bad certificate path should fail in milliseconds.
  auto credentials = ringserve::LoadServerCredentials(flags.tls);
  if (!credentials.ok()) {
    std::cerr << "ringserve-worker: " << credentials.status().message() << "\n";
    return 2;
  }
  if (flags.id.empty()) flags.id = DefaultId();
  absl::StatusOr<KvMemory> kv_memory = ParseKvMemory(!flags.kv_memory.empty()      ? flags.kv_memory
                                                     : flags.model.device == "cpu" ? "1GiB"
                                                                                   : "0.9");
  if (!kv_memory.ok()) {
    std::cerr << kv_memory.status().message() << "\n";
    return 2;
  }

  ringserve::BlockTerminationSignals();

  auto fail = [](const absl::Status& status) {
    ringserve::Log(ringserve::LogLevel::kError, "worker", "cannot start",
                   {{"error", std::string(status.message())}});
    std::cerr << "ringserve-worker: " << status << "\n";
    return 1;
  };
  absl::StatusOr<ringserve::tools::LoadedModel> loaded = ringserve::tools::OpenModel(flags.model);
  if (!loaded.ok()) return fail(loaded.status());
  ringserve::engine::LlamaRunnerOptions runner_options;
  runner_options.block_size_tokens = flags.block_size;
  runner_options.max_batch_tokens = flags.model.max_batch_tokens;
  runner_options.max_seqs = flags.max_seqs;
  runner_options.num_kv_blocks = flags.kv_blocks;
  runner_options.kv_memory = *kv_memory;
  auto model = ringserve::tools::CreateModel(
      *loaded, flags.model, ringserve::engine::ToModelOptions(runner_options, *loaded->backend));
  if (!model.ok()) return fail(model.status());

  ringserve::server::WorkerServerOptions options;
  options.listen_address = absl::StrCat(flags.host, ":", flags.port);
  if (flags.tls.enabled()) options.credentials = *std::move(credentials);
  options.worker_id = flags.id;
  options.model.model_name =
      flags.model.dummy_weights ? flags.model.preset
                                : std::filesystem::path(flags.model.model_path).filename().string();
  options.model.num_parameters = loaded->config.NumParameters();
  if (loaded->tokenizer != nullptr) {
    options.model.tokenizer_kind =
        loaded->tokenizer->vocab().model == ringserve::tokenizer::TokenizerModel::kByteLevelBpe
            ? "byte_level_bpe"
            : "sentencepiece";
  }
  options.model.dtype =
      std::string(ringserve::kernels::DTypeName(loaded->backend->activation_dtype()));
  options.model.device = flags.model.device;
  options.generator.max_seqs = flags.max_seqs;
  options.generator.max_sessions = flags.max_sessions;
  options.generator.session_ttl = absl::Seconds(flags.session_ttl_s);
  options.generator.max_jobs = flags.max_queue;
  options.generator.max_pending_tokens = flags.max_pending_tokens;
  options.generator.min_step_time = absl::Milliseconds(flags.min_step_ms);

  auto metrics = ringserve::metrics::MetricsServer::Create(
      {.serve = flags.metrics_port != 0, .host = flags.host, .port = flags.metrics_port});
  if (!metrics.ok()) return fail(metrics.status());
  auto server = ringserve::server::WorkerServer::Create(
      std::move(options), std::make_unique<ringserve::engine::LlamaRunner>(*std::move(model)),
      std::move(loaded->tokenizer), metrics->get());
  if (!server.ok()) return fail(server.status());
  std::printf("ringserve-worker %s listening on %s:%d (%d KV blocks of %d tokens)\n",
              flags.id.c_str(), flags.host.c_str(), (*server)->port(),
              (*server)->generator().num_kv_blocks(), flags.block_size);
  std::fflush(stdout);

  const std::string signal = ringserve::WaitForTerminationSignal();
  ringserve::Log(ringserve::LogLevel::kInfo, "worker", "signal received; draining",
                 {{"signal", signal}});
  (*server)->Shutdown(absl::Seconds(flags.drain_timeout_s));
  ringserve::Log(ringserve::LogLevel::kInfo, "worker", "stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return Run(argc, argv); }
