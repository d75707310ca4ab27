#include "worker/server/worker_server.h"

#include <unistd.h>

#include <cstdint>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/grpc/listen_address.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/server_builder.h"

namespace ringserve::server {
namespace {

// Above the API's 4 MiB text limit, so an oversized prompt reaches validation and gets an
// INVALID_ARGUMENT naming the field rather than gRPC's generic size error.
constexpr int kMaxReceiveBytes = 16 << 20;
constexpr absl::Duration kStatsWindow = absl::Seconds(60);
// Compiled response formats and tool-call grammars: as many as the distinct schemas and tool
// sets a busy worker sees recur; keys are the texts compiled (at most 64 KiB each).
constexpr size_t kGrammarCacheEntries = 256;
constexpr size_t kGrammarCacheKeyBytes = size_t{16} << 20;

}  // namespace

absl::StatusOr<std::unique_ptr<WorkerServer>> WorkerServer::Create(
    WorkerServerOptions options, std::unique_ptr<engine::ModelRunner> runner,
    std::unique_ptr<tokenizer::Tokenizer> tokenizer, metrics::MetricsServer* metrics_server) {
  RS_RETURN_IF_ERROR(CheckListenAddress(options.listen_address));
  auto server = std::unique_ptr<WorkerServer>(new WorkerServer());
  WorkerServer* s = server.get();
  s->tokenizer_ = std::move(tokenizer);
  if (metrics_server != nullptr) {
    s->metrics_ = std::make_unique<WorkerMetrics>(metrics_server->registry());
  }
  s->steps_ = std::make_unique<StepWindow>(kStatsWindow);
  auto generator =
      engine::Generator::Create(std::move(runner), s->tokenizer_.get(), options.generator,
                                [s](const engine::StepRecord& step) {
                                  s->steps_->Add(step);
                                  if (s->metrics_ != nullptr) s->metrics_->RecordStep(step);
                                });
  if (!generator.ok()) return generator.status();
  s->generator_ = *std::move(generator);
  s->grammars_ =
      std::make_unique<grammar::GrammarCache>(kGrammarCacheEntries, kGrammarCacheKeyBytes);
  if (metrics_server != nullptr) {
    s->scrape_hook_ = metrics_server->OnScrape([s] {
      s->metrics_->Refresh(s->generator_->Stats());
      s->metrics_->RefreshGrammarCache(s->grammars_->counts());
    });
  }
  s->env_ = ServiceEnv{s->generator_.get(), s->tokenizer_.get(), s->metrics_.get(),
                       options.model,       options.worker_id,   s->grammars_.get()};
  s->inference_ = std::make_unique<InferenceService>(s->env_);
  s->admin_ = std::make_unique<AdminService>(AdminEnv{.service = &s->env_,
                                                      .steps = s->steps_.get(),
                                                      .started = absl::Now(),
                                                      .queue_capacity = options.generator.max_jobs,
                                                      .begin_drain = [s] { s->BeginDrain(); },
                                                      .draining = [s] { return s->draining(); },
                                                      .read_adapter = options.read_adapter});

  // Process-wide switches of gRPC: they take effect for servers built afterwards.
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  const bool tls = options.credentials != nullptr;
  builder.AddListeningPort(options.listen_address,
                           tls ? options.credentials : grpc::InsecureServerCredentials(),
                           &s->port_);
  builder.SetMaxReceiveMessageSize(kMaxReceiveBytes);
  // The HTTP API's calls (LocalChannel), named so no other worker on the machine (or in the
  // pod's network namespace) shares the socket.
  std::random_device random;
  s->local_address_ = absl::StrCat("unix-abstract:ringserve-worker-", ::getpid(), "-",
                                   absl::Hex((uint64_t{random()} << 32) | random()));
  builder.AddListeningPort(s->local_address_, grpc::InsecureServerCredentials());
  ListenExclusively(builder);
  builder.RegisterService(s->inference_.get());
  builder.RegisterService(s->admin_.get());
  s->server_ = builder.BuildAndStart();
  if (s->server_ == nullptr || s->port_ == 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on ", options.listen_address,
        tls ? " (or gRPC rejected the TLS certificate or key; its log says which)" : ""));
  }
  grpc::HealthCheckServiceInterface* health = s->server_->GetHealthCheckService();
  health->SetServingStatus(true);
  health->SetServingStatus("ringserve.v1.Inference", true);
  Log(LogLevel::kInfo, "worker", "serving",
      {{"address", options.listen_address},
       {"port", absl::StrCat(s->port_)},
       {"id", options.worker_id},
       {"tls", tls ? "on" : "off"},
       {"kv_blocks", absl::StrCat(s->generator_->num_kv_blocks())}});
  return server;
}

WorkerServer::~WorkerServer() { Shutdown(absl::ZeroDuration()); }

std::shared_ptr<grpc::Channel> WorkerServer::LocalChannel() const {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);  // the worker's own limit applies to requests
  return grpc::CreateCustomChannel(local_address_, grpc::InsecureChannelCredentials(), args);
}

void WorkerServer::BeginDrain() {
  if (draining_.exchange(true)) return;
  server_->GetHealthCheckService()->SetServingStatus(false);
  generator_->Drain(absl::ZeroDuration());  // refuse new jobs from now on
  Log(LogLevel::kInfo, "worker", "draining: health NOT_SERVING, new requests refused");
}

void WorkerServer::Shutdown(absl::Duration grace) {
  if (server_ == nullptr || shut_down_.exchange(true)) return;
  BeginDrain();
  const bool drained = generator_->Drain(grace);
  Log(LogLevel::kInfo, "worker", "shutting down", {{"drained", drained ? "true" : "false"}});
  // Ends the jobs still running (UNAVAILABLE), so their streams can finish, then stops.
  generator_->Shutdown();
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  server_->Wait();
}

}  // namespace ringserve::server
