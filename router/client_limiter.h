// ClientLimiter: how many Generate streams each client has in flight at the router, and
// the RAII lease that counts one of them.
#ifndef RINGSERVE_ROUTER_CLIENT_LIMITER_H_
#define RINGSERVE_ROUTER_CLIENT_LIMITER_H_

#include <mutex>
#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"

namespace ringserve::router {

// Owner: CallPolicy (RouterServer); outlives every lease (the server stops first).
// Thread: any; one mutex guards the counts, held only to change a number.
// Invariant: counts_ holds exactly the clients with at least one lease alive, each with
// the number of its live leases (never above the limit).
class ClientLimiter {
 public:
  // One stream counted against its client until destroyed or reset. Move-only; a
  // default-constructed or moved-from lease counts nothing.
  class Lease {
   public:
    Lease() = default;
    ~Lease() { Reset(); }
    Lease(Lease&& other) noexcept;
    Lease& operator=(Lease&& other) noexcept;
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;

    void Reset();

   private:
    friend class ClientLimiter;
    Lease(ClientLimiter* limiter, std::string client)
        : limiter_(limiter), client_(std::move(client)) {}

    ClientLimiter* limiter_ = nullptr;
    std::string client_;
  };

  // max_per_client <= 0: no limit (leases count nothing and nothing is refused).
  explicit ClientLimiter(int max_per_client) : max_per_client_(max_per_client) {}
  ClientLimiter(const ClientLimiter&) = delete;
  ClientLimiter& operator=(const ClientLimiter&) = delete;

  int max_per_client() const { return max_per_client_; }

  // A lease for one more stream of `client`, or nullopt when it already has
  // max_per_client in flight (nothing changes then).
  std::optional<Lease> TryAcquire(const std::string& client);

  // Streams `client` has in flight now (for tests and logs).
  int in_flight(const std::string& client) const;
  // Clients with at least one stream in flight.
  int num_clients() const;

 private:
  void Release(const std::string& client);

  const int max_per_client_;
  mutable std::mutex mu_;
  absl::flat_hash_map<std::string, int> counts_;  // guarded by mu_
};

}  // namespace ringserve::router

#endif  // RINGSERVE_ROUTER_CLIENT_LIMITER_H_
