#include "router/router_server.h"

#include <unistd.h>

#include <chrono>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/grpc/listen_address.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"
#include "grpcpp/support/channel_arguments.h"
#include "grpcpp/support/client_interceptor.h"

namespace ringserve::router {
namespace {

constexpr char kInferenceServiceName[] = "ringserve.v1.Inference";

}  // namespace

absl::StatusOr<std::unique_ptr<RouterServer>> RouterServer::Create(RouterOptions options,
                                                                   prometheus::Registry* registry) {
  RS_RETURN_IF_ERROR(CheckListenAddress(options.listen_address));
  std::unique_ptr<RouterServer> router(new RouterServer());
  if (registry != nullptr) router->metrics_ = std::make_unique<RouterMetrics>(*registry);
  options.membership.on_publish = [r = router.get(),
                                   caller = std::move(options.membership.on_publish)](int workers) {
    r->UpdateInferenceHealth();
    if (caller) caller(workers);
  };
  auto membership = Membership::Create(std::move(options.membership), router->metrics_.get());
  if (!membership.ok()) return membership.status();
  router->membership_ = std::move(*membership);
  router->policy_ = std::make_unique<CallPolicy>(std::move(options.policy));
  router->env_ = std::make_unique<ProxyEnv>(
      ProxyEnv{*router->membership_, router->metrics_.get(), *router->policy_, router->draining_,
               options.prefix_affinity_bytes, options.adapter_affinity});
  router->inference_ = std::make_unique<InferenceService>(*router->env_);
  router->admin_ =
      std::make_unique<AdminService>(*router->env_, [r = router.get()] { return r->BeginDrain(); });

  // Process-wide switches of gRPC: they take effect for servers built afterwards.
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  const bool tls = options.credentials != nullptr;
  builder.AddListeningPort(options.listen_address,
                           tls ? options.credentials : grpc::InsecureServerCredentials(),
                           &router->port_);
  builder.SetMaxReceiveMessageSize(options.max_request_bytes);
  // The HTTP front's calls (LocalChannel): a Unix socket in the abstract namespace (no file
  // to create on a read-only root), named so no other router on the machine shares it.
  // Not in-process: gRPC's in-process transport has no flow control, so a slow HTTP client
  // would let the router buffer its worker's whole stream; HTTP/2 windows hold it back.
  router->local_address_ = absl::StrCat("unix-abstract:ringserve-router-", ::getpid(), "-",
                                        router->policy_->local_call_key());
  builder.AddListeningPort(router->local_address_, grpc::InsecureServerCredentials());
  ListenExclusively(builder);
  builder.RegisterService(router->inference_.get());
  builder.RegisterService(router->admin_.get());
  router->server_ = builder.BuildAndStart();
  if (router->server_ == nullptr || router->port_ == 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on ", options.listen_address,
        tls ? " (or gRPC rejected the TLS certificate or key; its log says which)" : ""));
  }
  {
    std::lock_guard lock(router->health_mu_);
    router->health_ = router->server_->GetHealthCheckService();
    router->health_->SetServingStatus(true);
  }
  router->UpdateInferenceHealth();
  Log(LogLevel::kInfo, "router", "serving",
      {{"address", options.listen_address},
       {"port", absl::StrCat(router->port_)},
       {"tls", tls ? "on" : "off"},
       {"auth", router->policy_->requires_token() ? "bearer token" : "off"}});
  return router;
}

namespace {

// Proves a call came through LocalChannel (CallPolicy::ClientHost).
class LocalCallKeyInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit LocalCallKeyInterceptor(const std::string& key) : key_(key) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      methods->GetSendInitialMetadata()->emplace(kLocalCallKey, key_);
    }
    methods->Proceed();
  }

 private:
  const std::string key_;
};

class LocalCallKeyFactory final : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit LocalCallKeyFactory(std::string key) : key_(std::move(key)) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo* /*info*/) override {
    // gRPC's interface takes ownership as a raw pointer and deletes it when the call ends.
    return std::make_unique<LocalCallKeyInterceptor>(key_).release();
  }

 private:
  const std::string key_;
};

}  // namespace

std::shared_ptr<grpc::Channel> RouterServer::LocalChannel() {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);  // the router's own limit applies to requests
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> factories;
  factories.push_back(std::make_unique<LocalCallKeyFactory>(policy_->local_call_key()));
  return grpc::experimental::CreateCustomChannelWithInterceptors(
      local_address_, grpc::InsecureChannelCredentials(), args, std::move(factories));
}

RouterServer::~RouterServer() {
  Shutdown(absl::ZeroDuration());
  std::lock_guard lock(health_mu_);
  health_ = nullptr;  // the server goes before Membership's thread stops
}

void RouterServer::UpdateInferenceHealth() {
  std::lock_guard lock(health_mu_);
  if (health_ == nullptr) return;  // not serving yet: Create sets it once it is
  const bool serving = !draining_ && membership_->snapshot()->ring->num_endpoints() > 0;
  health_->SetServingStatus(kInferenceServiceName, serving);
}

int64_t RouterServer::BeginDrain() {
  if (!draining_.exchange(true)) {
    {
      std::lock_guard lock(health_mu_);
      if (health_ != nullptr) health_->SetServingStatus(false);
    }
    Log(LogLevel::kInfo, "router", "draining: health NOT_SERVING, new calls refused");
  }
  int64_t in_flight = 0;
  for (const auto& worker : membership_->known()) in_flight += worker->endpoint->in_flight();
  return in_flight;
}

void RouterServer::Shutdown(absl::Duration grace) {
  if (server_ == nullptr || shut_down_.exchange(true)) return;
  const int64_t in_flight = BeginDrain();
  Log(LogLevel::kInfo, "router", "shutting down",
      {{"in_flight", absl::StrCat(in_flight)}, {"grace", absl::FormatDuration(grace)}});
  // Stops accepting at once; calls in flight get until the deadline, then are cancelled.
  server_->Shutdown(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(grace));
  server_->Wait();
}

}  // namespace ringserve::router
