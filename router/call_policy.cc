#include "router/call_policy.h"

#include <optional>
#include <random>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"

namespace ringserve::router {

std::string PeerHost(absl::string_view peer) {
  absl::string_view rest = peer;
  if (!absl::ConsumePrefix(&rest, "ipv4:") && !absl::ConsumePrefix(&rest, "ipv6:")) {
    return std::string(peer);
  }
  const size_t colon = rest.rfind(':');
  if (colon == absl::string_view::npos) return std::string(rest);
  absl::string_view host = rest.substr(0, colon);
  if (absl::ConsumePrefix(&host, "[")) absl::ConsumeSuffix(&host, "]");
  // gRPC URL-encodes an IPv6 zone's '%'; the host stays a usable key either way.
  return std::string(host);
}

namespace {

std::string RandomKey() {
  std::random_device device;
  return absl::StrFormat("%08x%08x%08x%08x", device(), device(), device(), device());
}

std::optional<absl::string_view> Metadata(const grpc::ServerContextBase& context,
                                          absl::string_view key) {
  const auto& metadata = context.client_metadata();
  const auto it = metadata.find(grpc::string_ref(key.data(), key.size()));
  if (it == metadata.end()) return std::nullopt;
  return absl::string_view(it->second.data(), it->second.size());
}

}  // namespace

CallPolicy::CallPolicy(CallPolicyOptions options)
    : options_(std::move(options)),
      local_call_key_(RandomKey()),
      limiter_(options_.max_concurrent_per_client) {}

std::string CallPolicy::ClientHost(const grpc::ServerContextBase& context) const {
  const std::optional<absl::string_view> key = Metadata(context, kLocalCallKey);
  const std::optional<absl::string_view> address = Metadata(context, kClientAddressKey);
  if (key.has_value() && address.has_value() && ConstantTimeEquals(*key, local_call_key_)) {
    return std::string(*address);
  }
  return PeerHost(context.peer());
}

absl::StatusOr<std::string> CallPolicy::Identify(const grpc::ServerContextBase& context) const {
  if (!requires_token()) return absl::StrCat("ip:", ClientHost(context));
  const auto& metadata = context.client_metadata();
  const auto it = metadata.find(kAuthorizationKey);
  if (it == metadata.end()) {
    return absl::UnauthenticatedError(
        "this router requires a bearer token: send metadata 'authorization: Bearer <token>'");
  }
  const std::optional<absl::string_view> token =
      BearerToken(absl::string_view(it->second.data(), it->second.size()));
  const int index = token.has_value() ? options_.tokens.Find(*token) : -1;
  if (index < 0) return absl::UnauthenticatedError("invalid bearer token");
  return absl::StrCat("token:", index);
}

absl::Status CallPolicy::Authenticate(const grpc::ServerContextBase& context) const {
  if (!requires_token()) return absl::OkStatus();
  return Identify(context).status();
}

absl::StatusOr<CallPolicy::Admission> CallPolicy::AdmitGenerate(
    const grpc::ServerContextBase& context, const ringserve::v1::GenerateRequest& request) {
  RS_ASSIGN_OR_RETURN(std::string client, Identify(context));
  Admission admission;
  const int32_t cap = options_.max_tokens;
  if (cap > 0) {
    if (!request.stop().has_max_tokens()) {
      admission.impose_max_tokens = cap;
    } else if (request.stop().max_tokens() > cap) {
      return absl::InvalidArgumentError(
          absl::StrCat("stop.max_tokens: ", request.stop().max_tokens(),
                       " is above this router's limit of ", cap, " (--max-tokens)"));
    }
  }
  std::optional<ClientLimiter::Lease> lease = limiter_.TryAcquire(client);
  if (!lease.has_value()) {
    return absl::ResourceExhaustedError(
        absl::StrCat("this client already has ", limiter_.max_per_client(),
                     " Generate streams in flight, the most this router allows per client "
                     "(--max-concurrent-per-client); retry when one of them ends"));
  }
  admission.lease = *std::move(lease);
  return admission;
}

}  // namespace ringserve::router
