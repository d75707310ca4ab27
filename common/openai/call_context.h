// What each gRPC call made for an HTTP request carries from it: the bearer token (the
// router's CallPolicy checks it as for any client) and the client's address, by which the
// router counts per-client limits for calls arriving through its local channel.
#ifndef RINGSERVE_COMMON_OPENAI_CALL_CONTEXT_H_
#define RINGSERVE_COMMON_OPENAI_CALL_CONTEXT_H_

#include <string>

#include "absl/status/status.h"
#include "grpcpp/client_context.h"
#include "grpcpp/support/status.h"

namespace ringserve::openai {

// Metadata key of the HTTP client's address on local calls; router/call_policy.h
// (kClientAddressKey, the same string) trusts it only beside the router's local-call key.
inline constexpr char kClientAddressKey[] = "x-ringserve-client-address";

struct HttpClient {
  std::string authorization;  // the Authorization header as sent; empty: none
  std::string address;        // the peer's IP address
};

// Adds the client's metadata to a call's context (before the call starts).
void PrepareContext(const HttpClient& client, grpc::ClientContext& context);

// The status a call ended with, as absl::Status (the codes are the same numbers).
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace ringserve::openai

#endif  // RINGSERVE_COMMON_OPENAI_CALL_CONTEXT_H_
