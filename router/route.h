// Route: where one call may go (its placement rule and key), and RoutePlanner, which turns
// that into the worker of each attempt: at most two, the second only when the first worker
// was unreachable (or did not hold the session) before anything was relayed.
#ifndef RINGSERVE_ROUTER_ROUTE_H_
#define RINGSERVE_ROUTER_ROUTE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "grpcpp/support/status.h"
#include "ringserve/v1/inference.pb.h"
#include "router/endpoint.h"
#include "router/membership.h"

namespace ringserve::router {

enum class Placement {
  // No session: the less loaded of two random workers (power of two choices).
  kAnyWorker,
  // A session's new context (Generate without append), or a Generate without a session
  // placed by its input's prefix (prefix affinity): the ring owner of the key, or the next
  // worker clockwise when the owner is over its load bound (bounded loads).
  kSessionBounded,
  // A call on a session's existing state (append, Fork, CloseSession): the ring owner,
  // whatever its load, then the next owner, where a spilled session lives.
  kSessionOwner,
};

struct Route {
  Placement placement = Placement::kAnyWorker;
  uint64_t key_hash = 0;  // SessionHash or PrefixHash; unused for kAnyWorker
  // What placed the call, for the router's metrics: "session", "prefix" or "random".
  std::string_view key_kind = "random";

  // kAnyWorker for an empty session id, else `session_placement` keyed by its hash.
  static Route ForSession(const std::string& session_id, Placement session_placement);
  // A Generate: by its session as ForSession says (the owner with append, else bounded);
  // without a session, kSessionBounded keyed by its adapter's name (AdapterHash) when it
  // names one and `adapter_affinity`, else by the first `prefix_affinity_bytes` of its
  // input (PrefixHash), or kAnyWorker when that is 0.
  static Route ForGenerate(const v1::GenerateRequest& request, int prefix_affinity_bytes,
                           bool adapter_affinity = false);
  // An Embed: keyed as a Generate without a session whose input is its first input, so an
  // input embedded again finds its blocks in the same worker's prefix cache.
  static Route ForEmbed(const v1::EmbedRequest& request, int prefix_affinity_bytes,
                        bool adapter_affinity = false);
  // One input of an Embed under `adapter`: keyed as a Generate of that input alone
  // (EmbedScatter places each input so).
  static Route ForEmbedInput(const v1::EmbedInput& input, const std::string& adapter,
                             int prefix_affinity_bytes, bool adapter_affinity = false);
};

// The worker one attempt goes to, counted in flight against it while this lives.
struct Target {
  std::shared_ptr<const WorkerConn> conn;
  InFlight in_flight;
};

// Owner: one proxied call. Thread: the call's callbacks, one at a time (callers lock).
class RoutePlanner {
 public:
  static constexpr int kMaxOwnerProbes = 4;

  RoutePlanner(const Membership& membership, Route route, uint64_t random_bits)
      : membership_(membership), route_(route), random_bits_(random_bits) {}

  // The first attempt's worker; no conn when no worker is healthy.
  Target First();
  // Whether a failed attempt may be retried: nothing was relayed yet, and either it was
  // the first attempt and the worker was unreachable (UNAVAILABLE), or, for
  // kSessionOwner, the worker lacked the session (NOT_FOUND) and fewer than
  // kMaxOwnerProbes owners were asked: bounded loads may have spilled the session's
  // first turn past the next owner, so the walk follows the same clockwise order.
  bool MayRetry(const grpc::Status& status, bool relayed) const;
  // The next attempt's worker, never one already tried; no conn when there is none.
  Target Retry();

  int attempts() const { return attempts_; }
  const Route& route() const { return route_; }
  // Whether bounded loads sent the first attempt past its key's ring owner.
  bool first_spilled() const { return first_spilled_; }

 private:
  Target Choose(int attempt);

  const Membership& membership_;
  const Route route_;
  const uint64_t random_bits_;
  int attempts_ = 0;
  bool first_spilled_ = false;
  std::string failed_address_;      // the first attempt's worker
  std::vector<std::string> tried_;  // kSessionOwner: every worker asked so far
};

}  // namespace ringserve::router

#endif  // RINGSERVE_ROUTER_ROUTE_H_
