#include "tools/grpc_client/grpc_client.h"

#include <chrono>
#include <cstdlib>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/support/channel_arguments.h"
#include "grpcpp/support/client_interceptor.h"

namespace ringserve::tools {
namespace {

constexpr char kWorkerKey[] = "x-ringserve-worker";
constexpr const char* kSecurityFlags[] = {"--tls-ca", "--tls-cert", "--tls-key",
                                          "--tls-server-name", "--token"};

// Adds the bearer token to every call's initial metadata. An interceptor rather than call
// credentials: gRPC refuses call credentials on plaintext channels, and a router without
// TLS may still require a token (behind a TLS-terminating proxy, or in tests).
class BearerTokenInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit BearerTokenInterceptor(const std::string& value) : value_(value) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      methods->GetSendInitialMetadata()->emplace("authorization", value_);
    }
    methods->Proceed();
  }

 private:
  const std::string value_;
};

class BearerTokenInterceptorFactory final
    : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit BearerTokenInterceptorFactory(const std::string& token)
      : value_(absl::StrCat("Bearer ", token)) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo* /*info*/) override {
    // gRPC's interface hands ownership over as a raw pointer; it deletes the interceptor
    // when the call ends.
    return std::make_unique<BearerTokenInterceptor>(value_).release();
  }

 private:
  const std::string value_;
};

std::string FindWorker(const std::multimap<grpc::string_ref, grpc::string_ref>& metadata) {
  const auto it = metadata.find(kWorkerKey);
  return it == metadata.end() ? std::string() : std::string(it->second.data(), it->second.size());
}

}  // namespace

void ClientSecurity::Register(ArgParser& parser) {
  parser.AddString("tls-ca", &tls.ca_path, "PEM CA that signed the server's certificate: use TLS");
  parser.AddString("tls-cert", &tls.cert_path, "PEM client certificate (servers requiring mTLS)");
  parser.AddString("tls-key", &tls.key_path, "PEM private key of --tls-cert");
  parser.AddString("tls-server-name", &tls_server_name,
                   "name the server's certificate carries (default: the target's host)");
  parser.AddString("token", &token, "bearer token (default: the env RINGSERVE_TOKEN)");
}

bool ClientSecurity::IsFlag(const std::string& flag) {
  for (const char* name : kSecurityFlags) {
    if (flag == name) return true;
  }
  return false;
}

ChannelFactory::ChannelFactory() : credentials_(grpc::InsecureChannelCredentials()) {}

absl::StatusOr<ChannelFactory> ChannelFactory::Create(const ClientSecurity& security) {
  ChannelFactory factory;
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      LoadChannelCredentials(security.tls);
  if (!credentials.ok()) return credentials.status();
  factory.credentials_ = *std::move(credentials);
  factory.server_name_ = security.tls_server_name;
  factory.token_ = security.token;
  if (const char* env = std::getenv(kTokenEnv); factory.token_.empty() && env != nullptr) {
    factory.token_ = env;
  }
  return factory;
}

std::shared_ptr<grpc::Channel> ChannelFactory::Make(const std::string& target,
                                                    int connection) const {
  grpc::ChannelArguments args;
  // Subchannels are pooled process-wide by address and arguments; a local pool per
  // channel is what makes each channel open its own connection.
  if (connection > 0) args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  if (!server_name_.empty()) args.SetSslTargetNameOverride(server_name_);
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> interceptors;
  if (!token_.empty()) {
    interceptors.push_back(std::make_unique<BearerTokenInterceptorFactory>(token_));
  }
  return grpc::experimental::CreateCustomChannelWithInterceptors(target, credentials_, args,
                                                                 std::move(interceptors));
}

void SetTimeout(grpc::ClientContext* context, double timeout_s) {
  if (timeout_s <= 0) return;
  context->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::microseconds(static_cast<int64_t>(timeout_s * 1e6)));
}

absl::Status FromGrpcStatus(const grpc::Status& status) {
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

std::string CodeName(grpc::StatusCode code) {
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
}

std::string ServingWorker(const grpc::ClientContext& context, const std::string& reported) {
  if (!reported.empty()) return reported;
  std::string id = FindWorker(context.GetServerTrailingMetadata());
  return id.empty() ? FindWorker(context.GetServerInitialMetadata()) : id;
}

}  // namespace ringserve::tools
