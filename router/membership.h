// Membership: which workers exist (static list or DNS), which of them are healthy
// (grpc.health.v1), and the ring over the healthy ones, published as an immutable
// snapshot that request threads read without waiting for a health round.
#ifndef RINGSERVE_ROUTER_MEMBERSHIP_H_
#define RINGSERVE_ROUTER_MEMBERSHIP_H_

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/channel.h"
#include "grpcpp/security/credentials.h"
#include "ringserve/v1/admin.grpc.pb.h"
#include "ringserve/v1/inference.grpc.pb.h"
#include "router/endpoint.h"
#include "router/ring.h"
#include "router/worker_source.h"

namespace ringserve::router {

class RouterMetrics;

// One worker's connection: its ring endpoint (address + this router's in-flight count)
// and the stubs on one channel. Created when the address first appears, kept while it is
// known, so the channel's connection and the in-flight count survive health flaps.
struct WorkerConn {
  std::shared_ptr<Endpoint> endpoint;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<ringserve::v1::Inference::Stub> inference;
  std::unique_ptr<ringserve::v1::Admin::Stub> admin;
  std::unique_ptr<grpc::health::v1::Health::Stub> health;
};

// What a request sees: the ring over the healthy workers and their connections. Immutable.
struct MembershipSnapshot {
  std::shared_ptr<const Ring> ring;
  absl::flat_hash_map<const Endpoint*, std::shared_ptr<const WorkerConn>> workers;

  // The connection of an endpoint the ring returned (never null for those).
  const WorkerConn& Conn(const Endpoint& endpoint) const { return *workers.at(&endpoint); }
};

struct MembershipOptions {
  WorkerSource source;
  RingOptions ring;
  // Health-check period and the deadline of each Check call.
  absl::Duration health_interval = absl::Seconds(1);
  absl::Duration health_timeout = absl::Milliseconds(500);
  // false: every known worker is in the ring (tests of the proxy's own failover).
  bool check_health = true;
  // How often a dns: source is re-resolved.
  absl::Duration dns_interval = absl::Seconds(5);
  // Resolves a dns: source; empty: the system resolver (WorkerSource::Resolve). It runs on
  // a thread of its own, so a resolver that hangs holds back new addresses, never the
  // health checks that take dead workers out of the ring (tests hang one here).
  std::function<absl::StatusOr<std::vector<std::string>>()> resolve;
  // Called with the number of workers in the ring after each new snapshot is published:
  // on the Membership thread, or in Create for the first round. Must not block.
  std::function<void(int)> on_publish;
  // How the router connects to workers, for calls and health checks alike (TLS, with a
  // client certificate for workers that require one); null: plaintext.
  std::shared_ptr<grpc::ChannelCredentials> worker_credentials;
  // The name a worker's certificate must carry when it is not the address dialled
  // (workers are dialled by IP, certificates usually name a DNS name); empty: the address.
  std::string worker_server_name;
};

// Owner: RouterServer. Threads: one of its own health-checks and rebuilds the snapshot,
// and for a dns: source another re-resolves; snapshot() is safe from any thread and never
// waits for either.
// Invariant: the published ring holds exactly the known workers whose last health check
// passed (all known workers without health checks), each once.
class Membership {
 public:
  // Resolves the source and runs the first health round before returning, so the ring is
  // populated from the start. INVALID_ARGUMENT for bad ring options or a period or deadline
  // that is not positive; a DNS name that does
  // not resolve yet is not an error (the ring starts empty and fills on re-resolution).
  static absl::StatusOr<std::unique_ptr<Membership>> Create(MembershipOptions options,
                                                            RouterMetrics* metrics);
  ~Membership();
  Membership(const Membership&) = delete;
  Membership& operator=(const Membership&) = delete;

  std::shared_ptr<const MembershipSnapshot> snapshot() const;

  // Every known worker (healthy or not), sorted by address; for GetStats and metrics.
  std::vector<std::shared_ptr<const WorkerConn>> known() const;

 private:
  struct Known {
    std::shared_ptr<const WorkerConn> conn;
    bool healthy = false;
  };

  Membership(MembershipOptions options, RouterMetrics* metrics);

  // Runs `round` every `period` until destruction: the health thread's loop (Tick), and
  // for dns: sources the resolver thread's (Resolve).
  void Every(absl::Duration period, const std::function<void()>& round);
  // Resolves the source once and takes its addresses (a failure keeps the last list).
  void Resolve();
  // One health round: check every known worker, republish if the healthy set changed.
  void Tick();
  void UpdateAddresses(const std::vector<std::string>& addresses);
  // Health of each worker in `workers`, checked in parallel with one deadline.
  std::vector<bool> CheckHealth(const std::vector<std::shared_ptr<const WorkerConn>>& workers);
  void Publish(const std::vector<std::shared_ptr<const WorkerConn>>& healthy);

  const MembershipOptions options_;
  RouterMetrics* const metrics_;  // may be null
  // The published snapshot, swapped whole under its own mutex, held only to copy or
  // replace the pointer. Not std::atomic<std::shared_ptr>: libstdc++ 12's load() releases
  // its internal lock with a relaxed store, so a reader's read of the pointer is not
  // ordered before the next store's write (ThreadSanitizer reports it; a real reordering
  // on weakly ordered CPUs).
  mutable std::mutex snapshot_mu_;
  std::shared_ptr<const MembershipSnapshot> snapshot_;  // guarded by snapshot_mu_

  // std::mutex, not Abseil's: ThreadSanitizer sees pthread locks, and Debian's Abseil is
  // not built with it (see tests/tsan.supp).
  mutable std::mutex mu_;
  std::condition_variable stop_cv_;                // signalled when stop_ is set
  absl::flat_hash_map<std::string, Known> known_;  // guarded by mu_
  bool stop_ = false;                              // guarded by mu_

  // Touched by the health thread only (and Create, before the thread starts).
  std::vector<std::string> published_addresses_;

  std::thread thread_;
  std::thread resolver_;
};

}  // namespace ringserve::router

#endif  // RINGSERVE_ROUTER_MEMBERSHIP_H_
