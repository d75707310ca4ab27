// Ring: an immutable consistent-hash ring over the live workers, with bounded loads and
// power-of-two choices (docs/design.md, "The router").
//
// Consistent hashing with virtual nodes (Karger et al. 1997): each endpoint sits at
// `points_per_endpoint` points Hash64(address + "#" + i) on a 64-bit ring. Adding or
// removing one of N endpoints moves about 1/N of the keys, and only keys of that endpoint.
//
// Multi-probe lookup (Appleton and O'Reilly, "Multi-Probe Consistent Hashing", 2015): a
// key is hashed to `probes_per_key` positions and belongs to the point that follows one of
// them most closely. With one probe, 160 points leave an endpoint's share of the keys with
// a spread of about 1/sqrt(160) = 8%: over 100k keys and 3..64 workers the busiest gets up
// to 1.26x the mean. Three probes bring the worst case to 1.10x (router_ring_test's
// fleets) for two more binary searches. A key still moves only when the endpoint that
// owned its winning point leaves, or when a new endpoint's point beats it, so the
// consistency property is unchanged.
//
// Bounded loads (Mirrokni, Thorup, Zadimoghaddam, "Consistent Hashing with Bounded
// Loads", 2016): an endpoint whose in-flight count would exceed ceil(c * average) passes
// the request to the next distinct endpoint clockwise.
#ifndef RINGSERVE_ROUTER_RING_H_
#define RINGSERVE_ROUTER_RING_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "router/endpoint.h"

namespace ringserve::router {

struct RingOptions {
  // Virtual points per endpoint, in [1, 4096].
  int points_per_endpoint = 160;
  // Positions probed per key, in [1, 64]; 1 is classic single-hash ring lookup.
  int probes_per_key = 3;
  // c of bounded loads: an endpoint takes a new request only while its in-flight count
  // stays <= ceil(c * (total in flight + 1) / endpoints). >= 1 (below 1 no endpoint may
  // fit); large values disable the bound.
  double load_factor = 1.25;
};

// One snapshot of the ring. Built once from the live endpoints, never changed: a
// membership change builds a new Ring and swaps the shared_ptr<const Ring> atomically,
// so a lookup never sees a half-built ring (Envoy's ring_hash does the same).
//
// Owner: Membership builds it; requests hold a shared_ptr while they pick.
// Thread: any; every method is const. The only mutable state it reads is the endpoints'
// atomic in-flight counts, so a bounded-load decision races with concurrent picks (two
// picks may both see room in the same endpoint and overshoot by one each); the bound is
// a balancing aid, not an admission limit.
// Invariants: endpoints_ sorted by address with no duplicates; points_ sorted by (hash,
// endpoint index), exactly points_per_endpoint per endpoint. Both depend only on the
// addresses, so every router replica builds the same ring.
class Ring {
 public:
  // INVALID_ARGUMENT for options out of range, a null or empty-address endpoint, or two
  // endpoints with one address. No endpoints is valid: every pick returns nullptr.
  static absl::StatusOr<std::shared_ptr<const Ring>> Create(
      std::vector<std::shared_ptr<Endpoint>> endpoints, const RingOptions& options = {});

  // The endpoints, sorted by address.
  const std::vector<std::shared_ptr<Endpoint>>& endpoints() const { return endpoints_; }
  int num_endpoints() const { return static_cast<int>(endpoints_.size()); }
  const RingOptions& options() const { return options_; }

  // The attempt-th distinct endpoint clockwise from the key's winning point, loads
  // ignored: attempt 0 is the key's owner, attempt k the next endpoint clockwise after
  // those of attempts 0..k-1. Where a
  // key's state may live (its owner, or wherever bounded loads spilled it). nullptr when
  // attempt is outside [0, num_endpoints()).
  std::shared_ptr<Endpoint> Owner(uint64_t key_hash, int attempt) const;

  // The endpoint for a request placed by key_hash. Walks the distinct endpoints clockwise
  // starting at Owner(key_hash, attempt) and returns the first whose in-flight count + 1
  // stays within the bound (see RingOptions::load_factor); when none after it fits (only
  // possible for attempt > 0), Owner(key_hash, attempt) itself. A retry asks for
  // attempt + 1 and so never lands on an owner of an earlier attempt. Deterministic for
  // given loads; nullptr when attempt is outside [0, num_endpoints()).
  std::shared_ptr<Endpoint> Pick(uint64_t key_hash, int attempt) const;

  // Power of two choices (Mitzenmacher 2001) for requests without a key: of two distinct
  // endpoints drawn from random_bits (excluding `exclude`, e.g. the endpoint a retry
  // failed on), the one with fewer requests in flight; the first on a tie. The only
  // endpoint when one is eligible; nullptr when none is.
  std::shared_ptr<Endpoint> PickLessLoaded(uint64_t random_bits,
                                           const Endpoint* exclude = nullptr) const;

 private:
  struct Point {
    uint64_t hash;
    uint32_t endpoint;  // index into endpoints_
  };

  Ring(std::vector<std::shared_ptr<Endpoint>> endpoints, const RingOptions& options);

  // The index in points_ of the key's winning point: of the points that follow each of
  // the key's probes, the closest one. points_ must not be empty.
  size_t WinningPoint(uint64_t key_hash) const;

  // Calls visit(endpoint index) for each distinct endpoint clockwise from the key's
  // winning point, starting with the owner, until visit returns true or every endpoint
  // was visited.
  template <typename Visit>
  void WalkDistinct(uint64_t key_hash, Visit visit) const;

  // The most requests one endpoint may have in flight after taking one more, given the
  // current in-flight counts.
  int64_t Capacity() const;

  RingOptions options_;
  std::vector<std::shared_ptr<Endpoint>> endpoints_;
  std::vector<Point> points_;
};

}  // namespace ringserve::router

#endif  // RINGSERVE_ROUTER_RING_H_
