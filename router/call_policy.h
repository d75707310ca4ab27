// CallPolicy: what the router checks before it forwards a client's call: the bearer
// token, the max_tokens cap and the per-client limit on Generate streams.
#ifndef RINGSERVE_ROUTER_CALL_POLICY_H_
#define RINGSERVE_ROUTER_CALL_POLICY_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "grpcpp/server_context.h"
#include "ringserve/v1/inference.pb.h"
#include "common/auth_token.h"
#include "router/client_limiter.h"

namespace ringserve::router {

struct CallPolicyOptions {
  // Accepted bearer tokens; empty: no authentication.
  TokenSet tokens;
  // The most max_tokens a Generate may ask for; 0: no cap.
  int32_t max_tokens = 0;
  // The most Generate streams one client may have in flight; 0: no limit. A client is its
  // token when tokens are required, else its IP address.
  int max_concurrent_per_client = 0;
};

// Why a proxy rather than gRPC machinery runs these checks: an AuthMetadataProcessor works
// only on TLS ports (gRPC aborts when one is set on insecure credentials) and a server
// interceptor in gRPC C++ cannot finish a call with a status of its own. The router's
// Inference calls all start in one of two proxies and Admin has two methods, so the
// checks run at those entries (grpc.health and reflection stay open for probes).
//
// Owner: RouterServer; outlives every call. Thread: any.
class CallPolicy {
 public:
  explicit CallPolicy(CallPolicyOptions options);
  CallPolicy(const CallPolicy&) = delete;
  CallPolicy& operator=(const CallPolicy&) = delete;

  bool requires_token() const { return !options_.tokens.empty(); }

  // OK, or UNAUTHENTICATED when a token is required and the call's "authorization"
  // metadata does not carry an accepted one. The token never appears in the message.
  absl::Status Authenticate(const grpc::ServerContextBase& context) const;

  // A Generate that may go ahead: it holds a slot of its client's concurrency until the
  // lease is dropped, and, when the router caps max_tokens and the request left it
  // unset, the cap to impose.
  struct Admission {
    ClientLimiter::Lease lease;
    std::optional<int32_t> impose_max_tokens;
  };
  // Authenticate, then the max_tokens cap (INVALID_ARGUMENT naming stop.max_tokens), then
  // the client's concurrency (RESOURCE_EXHAUSTED, retriable once a stream of the client
  // ends). A refusal takes no slot.
  absl::StatusOr<Admission> AdmitGenerate(const grpc::ServerContextBase& context,
                                          const ringserve::v1::GenerateRequest& request);

  const ClientLimiter& limiter() const { return limiter_; }

  // 128 random bits, made at construction: what a call through RouterServer::LocalChannel
  // carries as kLocalCallKey.
  const std::string& local_call_key() const { return local_call_key_; }

  // The calling client's host: the HTTP client's address (kClientAddressKey) for a call
  // that proves it came through LocalChannel, else PeerHost of the call's peer. A client over the
  // network cannot claim another's address: it does not know the key.
  std::string ClientHost(const grpc::ServerContextBase& context) const;

 private:
  // The caller's identity for limits ("token:<index>" or "ip:<address>"), or
  // UNAUTHENTICATED.
  absl::StatusOr<std::string> Identify(const grpc::ServerContextBase& context) const;

  const CallPolicyOptions options_;
  const std::string local_call_key_;
  ClientLimiter limiter_;
};

// The metadata key that carries an HTTP client's address on the router's local calls
// (common/openai/call_context.h sets it), and the one that proves a call came through
// RouterServer::LocalChannel: its value is CallPolicy::local_call_key(), which never leaves
// the process (LocalChannel adds it to every call).
inline constexpr char kClientAddressKey[] = "x-ringserve-client-address";
inline constexpr char kLocalCallKey[] = "x-ringserve-local-call";

// The host part of a gRPC peer string: "ipv4:10.0.0.1:5000" -> "10.0.0.1",
// "ipv6:[::1]:5000" -> "::1"; anything else is returned whole.
std::string PeerHost(absl::string_view peer);

}  // namespace ringserve::router

#endif  // RINGSERVE_ROUTER_CALL_POLICY_H_
