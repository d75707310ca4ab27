#include "common/grpc/tls_credentials.h"

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/text_file.h"

namespace ringserve {
namespace {

enum class PemKind { kCertificate, kPrivateKey };

// Reads a PEM file and checks it holds a block of the expected kind, so a swapped
// certificate and key, or a DER file, is reported by name at startup rather than as a
// handshake that fails later for every caller.
absl::StatusOr<std::string> ReadPem(const std::string& path, const std::string& what,
                                    PemKind kind) {
  RS_ASSIGN_OR_RETURN(std::string pem, ReadTextFile(path, what));
  const bool found = kind == PemKind::kCertificate
                         ? absl::StrContains(pem, "-----BEGIN CERTIFICATE-----")
                         : absl::StrContains(pem, "PRIVATE KEY-----");
  if (!found) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " '", path, "' holds no PEM ",
                     kind == PemKind::kCertificate ? "certificate" : "private key"));
  }
  return pem;
}

// A certificate and its key come as a pair or not at all.
absl::Status CheckPair(const std::string& cert_path, const std::string& key_path) {
  if (cert_path.empty() != key_path.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a TLS certificate needs its private key and a key needs its certificate (got only the ",
        cert_path.empty() ? "key" : "certificate", ")"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> LoadServerCredentials(
    const ServerTlsFiles& files) {
  if (!files.enabled()) return grpc::InsecureServerCredentials();
  RS_RETURN_IF_ERROR(CheckPair(files.cert_path, files.key_path));
  if (files.cert_path.empty()) {
    return absl::InvalidArgumentError(
        "a client CA (mutual TLS) needs the server's own TLS certificate and key");
  }
  grpc::SslServerCredentialsOptions options(
      files.client_ca_path.empty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                                   : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
  RS_ASSIGN_OR_RETURN(pair.cert_chain,
                      ReadPem(files.cert_path, "TLS certificate", PemKind::kCertificate));
  RS_ASSIGN_OR_RETURN(pair.private_key, ReadPem(files.key_path, "TLS key", PemKind::kPrivateKey));
  options.pem_key_cert_pairs.push_back(std::move(pair));
  if (!files.client_ca_path.empty()) {
    RS_ASSIGN_OR_RETURN(options.pem_root_certs,
                        ReadPem(files.client_ca_path, "client CA", PemKind::kCertificate));
  }
  return grpc::SslServerCredentials(options);
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> LoadChannelCredentials(
    const ClientTlsFiles& files) {
  if (!files.enabled()) return grpc::InsecureChannelCredentials();
  RS_RETURN_IF_ERROR(CheckPair(files.cert_path, files.key_path));
  grpc::SslCredentialsOptions options;
  if (!files.ca_path.empty()) {
    RS_ASSIGN_OR_RETURN(options.pem_root_certs,
                        ReadPem(files.ca_path, "TLS CA", PemKind::kCertificate));
  }
  if (!files.cert_path.empty()) {
    RS_ASSIGN_OR_RETURN(options.pem_cert_chain,
                        ReadPem(files.cert_path, "TLS client certificate", PemKind::kCertificate));
    RS_ASSIGN_OR_RETURN(options.pem_private_key,
                        ReadPem(files.key_path, "TLS client key", PemKind::kPrivateKey));
  }
  return grpc::SslCredentials(options);
}

}  // namespace ringserve
