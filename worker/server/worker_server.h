// WorkerServer: the worker process's gRPC server around one generator: Inference and
// Admin, grpc.health.v1, server reflection; drain on request or SIGTERM.
#ifndef RINGSERVE_WORKER_SERVER_WORKER_SERVER_H_
#define RINGSERVE_WORKER_SERVER_WORKER_SERVER_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/metrics/metrics_server.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "worker/grammar/grammar_cache.h"
#include "worker/server/admin_service.h"
#include "worker/server/inference_service.h"
#include "worker/server/step_window.h"
#include "worker/server/worker_metrics.h"

namespace ringserve::server {

struct WorkerServerOptions {
  std::string listen_address = "0.0.0.0:0";  // port 0 picks a free one (see port())
  // How routers connect (TLS; mutual TLS admits only routers with a CA-signed client
  // certificate: common/grpc/tls_credentials.h); null: plaintext.
  std::shared_ptr<grpc::ServerCredentials> credentials;
  std::string worker_id;
  ModelDescription model;
  engine::GeneratorOptions generator;
  // Reads LoRA adapters for Admin.LoadAdapter (AdminEnv::read_adapter); null: none loaded
  // while serving.
  std::function<absl::StatusOr<std::shared_ptr<const model::LoraAdapter>>(const std::string& name,
                                                                          const std::string& path)>
      read_adapter;
};

// Owner: main or a test. Thread: any.
class WorkerServer {
 public:
  // Takes the model runner (and the tokenizer, which may be null) and starts serving.
  // UNAVAILABLE when the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<WorkerServer>> Create(
      WorkerServerOptions options, std::unique_ptr<engine::ModelRunner> runner,
      std::unique_ptr<tokenizer::Tokenizer> tokenizer, metrics::MetricsServer* metrics_server);
  ~WorkerServer();
  WorkerServer(const WorkerServer&) = delete;
  WorkerServer& operator=(const WorkerServer&) = delete;

  int port() const { return port_; }
  engine::Generator& generator() { return *generator_; }
  // A channel to this server over a Unix socket in the abstract namespace, for the worker's
  // own HTTP API (openai::OpenAiFront): its calls take the gRPC path, flow control included.
  std::shared_ptr<grpc::Channel> LocalChannel() const;

  // Health NOT_SERVING and new Generate calls UNAVAILABLE; admitted jobs go on.
  void BeginDrain();
  bool draining() const { return draining_.load(); }
  // BeginDrain, waits up to `grace` for admitted jobs, then stops the server (jobs still
  // running end with UNAVAILABLE).
  void Shutdown(absl::Duration grace);

 private:
  WorkerServer() = default;

  std::unique_ptr<tokenizer::Tokenizer> tokenizer_;
  std::unique_ptr<WorkerMetrics> metrics_;
  std::unique_ptr<StepWindow> steps_;
  std::unique_ptr<engine::Generator> generator_;
  std::unique_ptr<grammar::GrammarCache> grammars_;
  ServiceEnv env_;
  std::unique_ptr<InferenceService> inference_;
  std::unique_ptr<AdminService> admin_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::string local_address_;  // "unix-abstract:..." (LocalChannel)
  std::atomic<bool> draining_{false};
  std::atomic<bool> shut_down_{false};
  // Last, so scrapes stop reading the generator before it goes.
  std::unique_ptr<metrics::MetricsServer::ScrapeHook> scrape_hook_;
};

}  // namespace ringserve::server

#endif  // RINGSERVE_WORKER_SERVER_WORKER_SERVER_H_
