// TLS credentials for ringserve's gRPC servers and channels, built from PEM files named on
// the command line. The one place that reads certificates and keys, so the router, the
// worker and the client tools check them alike and fail at startup, not at the first call.
#ifndef RINGSERVE_COMMON_GRPC_TLS_CREDENTIALS_H_
#define RINGSERVE_COMMON_GRPC_TLS_CREDENTIALS_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"

namespace ringserve {

// A server's TLS identity as PEM file paths. All empty: plaintext.
struct ServerTlsFiles {
  std::string cert_path;  // certificate chain presented to clients
  std::string key_path;   // its private key
  // When set, mutual TLS: a client must present a certificate signed by this CA, or the
  // handshake fails (GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY).
  std::string client_ca_path;

  bool enabled() const {
    return !cert_path.empty() || !key_path.empty() || !client_ca_path.empty();
  }
};

// What a client trusts and, for mutual TLS, presents. All empty: plaintext.
struct ClientTlsFiles {
  std::string ca_path;  // roots that verify the server; empty: gRPC's default roots
  std::string cert_path;
  std::string key_path;

  bool enabled() const { return !ca_path.empty() || !cert_path.empty() || !key_path.empty(); }
};

// Insecure credentials when `files` is empty, else TLS ones. INVALID_ARGUMENT for a
// certificate without its key (or the reverse), a client CA without a server certificate,
// or a file that holds no PEM block of the expected kind; NOT_FOUND / PERMISSION_DENIED
// naming the file when it cannot be read.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> LoadServerCredentials(
    const ServerTlsFiles& files);
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> LoadChannelCredentials(
    const ClientTlsFiles& files);

}  // namespace ringserve

#endif  // RINGSERVE_COMMON_GRPC_TLS_CREDENTIALS_H_
