// ringserve-worker: one model, one generator, one KV cache, served over gRPC
// (docs/design.md, "The engine"). The router spreads sessions over many of these.
#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/auth_token.h"
#include "common/grpc/tls_credentials.h"
#include "common/log.h"
#include "common/metrics/metrics_server.h"
#include "common/open_file_limit.h"
#include "common/openai/openai_front.h"
#include "common/tcp_bind.h"
#include "common/termination_signals.h"
#include "kernels/cpu/cpu_isa.h"
#include "kernels/dtype.h"
#include "tools/common/arg_parser.h"
#include "tools/common/chat_format_flag.h"
#include "tools/common/model_setup.h"
#include "worker/engine/llama_runner.h"
#include "worker/server/worker_flags.h"
#include "worker/server/worker_server.h"

namespace {

using ringserve::engine::KvMemory;

constexpr char kUsage[] =
    "usage: ringserve-worker (--model PATH [--tokenizer PATH] | --dummy-weights --preset NAME)\n"
    "                        [--port P] [--device cpu|cuda:N] [--id NAME] [flags]\n"
    "Serves ringserve.v1.Inference and Admin for one model on one device. SIGTERM or SIGINT\n"
    "drains: health NOT_SERVING, new requests refused, admitted ones finish (up to\n"
    "--drain-timeout-s), then exit.\n";

std::string DefaultId() {
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  return absl::StrCat(host, "-", getpid());
}

// A read adapter as the generator and the admin service hold it.
absl::StatusOr<std::shared_ptr<const ringserve::model::LoraAdapter>> Shared(
    absl::StatusOr<ringserve::model::LoraAdapter> adapter) {
  if (!adapter.ok()) return adapter.status();
  return std::make_shared<const ringserve::model::LoraAdapter>(*std::move(adapter));
}

int Run(int argc, char** argv) {
  ringserve::server::WorkerFlags flags;
  ringserve::tools::ArgParser args;
  flags.Register(args);
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
  // Everything that needs no model is checked before it loads: a bad value should fail in
  // milliseconds, not after minutes of loading (the number flags' ranges already did at
  // parse time).
  absl::StatusOr<KvMemory> kv_memory = ringserve::server::KvMemoryFor(flags);
  absl::StatusOr<size_t> kv_host_memory = ringserve::server::KvHostMemoryFor(flags);
  for (const absl::Status& s : {kv_memory.status(), kv_host_memory.status()}) {
    if (!s.ok()) {
      std::cerr << "ringserve-worker: " << s.message() << "\n";
      return 2;
    }
  }
  for (const absl::Status& s :
       {flags.speculation.Validate(), ringserve::server::CheckLoraDir(flags),
        ringserve::server::CheckHttpApi(flags)}) {
    if (!s.ok()) {
      std::cerr << "ringserve-worker: " << s.message() << "\n";
      return 2;
    }
  }
  auto credentials = ringserve::LoadServerCredentials(flags.tls);
  if (!credentials.ok()) {
    std::cerr << "ringserve-worker: " << credentials.status().message() << "\n";
    return 2;
  }
  if (flags.id.empty()) flags.id = DefaultId();

  ringserve::BlockTerminationSignals();
  ringserve::LogOpenFileLimit("worker");
  // Until the server is up, a signal ends the process at once (a load can take minutes).
  std::optional<ringserve::ExitOnTerminationSignal> starting;
  starting.emplace();

  auto fail = [](const absl::Status& status) {
    ringserve::Log(ringserve::LogLevel::kError, "worker", "cannot start",
                   {{"error", std::string(status.message())}});
    std::cerr << "ringserve-worker: " << status << "\n";
    return 1;
  };
  // Bound before the model loads, so a port in use fails at once; /metrics answers with
  // what is registered so far until the server below registers the worker's families.
  auto metrics = ringserve::metrics::MetricsServer::Create(
      {.serve = flags.metrics_port != 0, .host = flags.host, .port = flags.metrics_port});
  if (!metrics.ok()) return fail(metrics.status());
  // The gRPC port is tried now too (and let go: the server binds it once the model is
  // ready), so a port in use fails in milliseconds rather than after the load.
  if (flags.port != 0) {
    if (absl::StatusOr<ringserve::UniqueFd> probe = ringserve::BindTcp(flags.host, flags.port);
        !probe.ok()) {
      return fail(probe.status());
    }
  }
  absl::StatusOr<ringserve::tools::LoadedModel> loaded = ringserve::tools::OpenModel(flags.model);
  if (!loaded.ok()) return fail(loaded.status());
  ringserve::engine::LlamaRunnerOptions runner_options;
  runner_options.block_size_tokens = flags.block_size;
  runner_options.max_batch_tokens = flags.model.max_batch_tokens;
  runner_options.max_seqs = flags.max_seqs;
  ringserve::engine::GeneratorOptions extra_rows;
  flags.speculation.Apply(extra_rows);
  extra_rows.prompt_logprob_rows = flags.prompt_logprob_rows;
  runner_options.max_sampled_rows =
      ringserve::engine::SampledRowsFor(extra_rows, flags.max_seqs, flags.model.max_batch_tokens);
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
  options.model.embedding_size = loaded->config.dim;
  if (loaded->tokenizer != nullptr) {
    options.model.tokenizer_kind =
        loaded->tokenizer->vocab().model == ringserve::tokenizer::TokenizerModel::kByteLevelBpe
            ? "byte_level_bpe"
            : "sentencepiece";
  }
  options.model.dtype =
      std::string(ringserve::kernels::DTypeName(loaded->backend->activation_dtype()));
  options.model.kv_dtype = std::string(ringserve::kernels::DTypeName(loaded->kv_dtype));
  options.model.device = flags.model.device;
  absl::StatusOr<ringserve::tokenizer::ChatFormat> chat_format =
      ringserve::tools::ChatFormatFor(flags.chat_format, loaded->tokenizer.get());
  if (!chat_format.ok()) return fail(chat_format.status());
  options.model.chat_format = *chat_format;
  if (loaded->tokenizer != nullptr) {
    options.model.default_system_prompt =
        ringserve::tokenizer::DefaultSystemPromptOf(*loaded->tokenizer, *chat_format);
  }
  if (flags.model.max_loras > 0) {
    options.read_adapter = [config = loaded->config](const std::string& name,
                                                     const std::string& path) {
      return Shared(ringserve::model::LoadLoraAdapter(name, path, config));
    };
  }
  options.generator.max_seqs = flags.max_seqs;
  options.generator.lora_adapters =
      ringserve::tools::LoraAdaptersInHostMemory(*loaded, flags.model);
  options.generator.max_adapters = flags.model.max_cpu_loras;
  if (!flags.lora_dir.empty()) {
    options.generator.find_adapter = [config = loaded->config,
                                      dir = flags.lora_dir](const std::string& name) {
      return Shared(ringserve::model::FindLoraAdapter(dir, name, config));
    };
  }
  flags.speculation.Apply(options.generator);
  options.generator.prompt_logprob_rows = flags.prompt_logprob_rows;
  options.generator.max_sessions = flags.max_sessions;
  options.generator.session_ttl = absl::Seconds(flags.session_ttl_s);
  options.generator.max_jobs = flags.max_queue;
  options.generator.max_pending_tokens = flags.max_pending_tokens;
  // A CPU worker's cores belong to the backend's pool, and its models' vocabularies are
  // small: it samples on the engine thread unless told otherwise.
  options.generator.sampling_threads =
      flags.sampling_threads == 0 && flags.model.device == "cpu" ? 1 : flags.sampling_threads;
  options.generator.min_step_time = absl::Milliseconds(flags.min_step_ms);

  auto runner = std::make_unique<ringserve::engine::LlamaRunner>(*std::move(model));
  if (absl::Status s = runner->AllocateHostTier(*kv_host_memory); !s.ok()) return fail(s);
  auto server = ringserve::server::WorkerServer::Create(
      std::move(options), std::move(runner), std::move(loaded->tokenizer), metrics->get());
  if (!server.ok()) return fail(server.status());
  // OpenAI's HTTP API on the worker's own local channel, as the router serves it.
  std::unique_ptr<ringserve::openai::OpenAiFront> http;
  if (flags.http_api.http_port != 0) {
    ringserve::openai::OpenAiFrontOptions front = flags.http_api.FrontOptions();
    front.host = flags.host;
    front.metrics = metrics->get();
    front.metric_name = "ringserve_worker_http_requests_total";
    absl::StatusOr<ringserve::TokenSet> tokens = ringserve::LoadTokens(flags.auth_token_file);
    if (!tokens.ok()) return fail(tokens.status());
    front.gateway.tokens = *std::move(tokens);
    auto started = ringserve::openai::OpenAiFront::Start((*server)->LocalChannel(), front);
    if (!started.ok()) return fail(started.status());
    http = *std::move(started);
  }
  starting.reset();  // from here a signal drains
  // A CPU worker names the instruction set its kernels run on (RINGSERVE_CPU_ISA caps it).
  const std::string isa =
      flags.model.device == "cpu"
          ? std::string(", ") + ringserve::kernels::cpu::IsaName(ringserve::kernels::cpu::BestIsa())
          : std::string();
  const int32_t host_blocks = (*server)->generator().num_host_kv_blocks();
  const std::string host_tier =
      host_blocks > 0 ? absl::StrCat(" + ", host_blocks, " in host memory") : std::string();
  std::printf("ringserve-worker %s listening on %s:%d (%d KV blocks%s of %d tokens, %s%s)\n",
              flags.id.c_str(), flags.host.c_str(), (*server)->port(),
              (*server)->generator().num_kv_blocks(), host_tier.c_str(), flags.block_size,
              std::string(ringserve::kernels::DTypeName(loaded->kv_dtype)).c_str(), isa.c_str());
  if (http != nullptr) {
    std::printf("ringserve-worker %s OpenAI API on http://%s:%d/v1\n", flags.id.c_str(),
                flags.host.c_str(), http->port());
  }
  std::fflush(stdout);

  const std::string signal = ringserve::WaitForTerminationSignal();
  ringserve::Log(ringserve::LogLevel::kInfo, "worker", "signal received; draining",
                 {{"signal", signal}});
  const absl::Duration grace = absl::Seconds(flags.drain_timeout_s);
  if (http != nullptr) {
    // Health NOT_SERVING and new jobs refused first; the HTTP streams in progress then finish
    // through the gRPC server, which stops last.
    (*server)->BeginDrain();
    http->Shutdown(grace);
  }
  (*server)->Shutdown(grace);
  ringserve::Log(ringserve::LogLevel::kInfo, "worker", "stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return Run(argc, argv); }
