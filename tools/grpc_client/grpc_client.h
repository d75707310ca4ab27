// Client-side gRPC plumbing shared by ringserve-cli and ringserve-bench: channels (TLS and
// a bearer token when the server asks for them), deadlines, and the absl::Status view of
// a call's outcome.
#ifndef RINGSERVE_TOOLS_GRPC_CLIENT_GRPC_CLIENT_H_
#define RINGSERVE_TOOLS_GRPC_CLIENT_GRPC_CLIENT_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/grpc/tls_credentials.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/status.h"
#include "tools/common/arg_parser.h"

namespace ringserve::tools {

// The environment variable a bearer token is taken from when --token is not given.
inline constexpr char kTokenEnv[] = "RINGSERVE_TOKEN";

// How a client proves itself and checks the server: TLS files and a bearer token.
struct ClientSecurity {
  ClientTlsFiles tls;
  std::string tls_server_name;  // the name the server's certificate carries, if not the target's
  std::string token;            // empty: $RINGSERVE_TOKEN, when set

  // --tls-ca, --tls-cert, --tls-key, --tls-server-name, --token.
  void Register(ArgParser& parser);
  // Whether `flag` ("--token") is one of Register's flags; all of them take a value.
  static bool IsFlag(const std::string& flag);
};

// Makes channels that share one set of credentials, loaded once. Copyable; a
// default-constructed factory makes plaintext channels without a token.
class ChannelFactory {
 public:
  ChannelFactory();
  // Loads the TLS files and picks the token (the flag, else the environment). Errors name
  // the file that could not be used (common/grpc/tls_credentials.h).
  static absl::StatusOr<ChannelFactory> Create(const ClientSecurity& security);

  // A channel to "host:port" (or any gRPC target URI) that sends
  // "authorization: Bearer <token>" on every call when a token is set. Channels made with
  // different `connection` numbers never share a TCP connection, so a load generator can
  // spread its streams over several HTTP/2 connections as real clients would.
  std::shared_ptr<grpc::Channel> Make(const std::string& target, int connection = 0) const;

 private:
  std::shared_ptr<grpc::ChannelCredentials> credentials_;
  std::string server_name_;
  std::string token_;
};

// Gives the call a deadline `timeout_s` seconds from now; <= 0 leaves it without one.
void SetTimeout(grpc::ClientContext* context, double timeout_s);

// gRPC and absl share the canonical code numbering; the message carries over.
absl::Status FromGrpcStatus(const grpc::Status& status);

// The canonical upper-case code name, e.g. "UNAVAILABLE".
std::string CodeName(grpc::StatusCode code);

// The worker that served a finished call: `reported` (what the response said) when set,
// else the `x-ringserve-worker` metadata, trailing first; empty when neither has it.
std::string ServingWorker(const grpc::ClientContext& context, const std::string& reported);

}  // namespace ringserve::tools

#endif  // RINGSERVE_TOOLS_GRPC_CLIENT_GRPC_CLIENT_H_
