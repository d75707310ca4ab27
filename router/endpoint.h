// Endpoint: one worker as the router sees it, and InFlight, the RAII count of one request
// forwarded to it.
#ifndef RINGSERVE_ROUTER_ENDPOINT_H_
#define RINGSERVE_ROUTER_ENDPOINT_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

namespace ringserve::router {

// A worker's ring identity (its "host:port" address, the same string in every router
// replica, so every replica builds the same ring) and this router's count of requests in
// flight to it. The count is the router's own: replicas share nothing (design.md).
//
// Owner: Membership creates one per known address and keeps it while the address is
// known, so the count survives ring rebuilds and health flaps; ring snapshots and
// in-flight requests share it through shared_ptr.
// Thread: any; the address never changes and the count is atomic.
class Endpoint {
 public:
  explicit Endpoint(std::string address) : address_(std::move(address)) {}
  Endpoint(const Endpoint&) = delete;
  Endpoint& operator=(const Endpoint&) = delete;

  const std::string& address() const { return address_; }
  int64_t in_flight() const { return in_flight_.load(std::memory_order_relaxed); }

 private:
  friend class InFlight;

  const std::string address_;
  std::atomic<int64_t> in_flight_{0};
};

// Counts one request against an endpoint from construction to destruction (or reset).
// Move-only; a moved-from or default-constructed InFlight counts nothing.
class InFlight {
 public:
  InFlight() = default;
  explicit InFlight(std::shared_ptr<Endpoint> endpoint) : endpoint_(std::move(endpoint)) {
    if (endpoint_ != nullptr) endpoint_->in_flight_.fetch_add(1, std::memory_order_relaxed);
  }
  ~InFlight() { Reset(); }
  InFlight(InFlight&& other) noexcept : endpoint_(std::move(other.endpoint_)) {}
  InFlight& operator=(InFlight&& other) noexcept {
    if (this != &other) {
      Reset();
      endpoint_ = std::move(other.endpoint_);
    }
    return *this;
  }
  InFlight(const InFlight&) = delete;
  InFlight& operator=(const InFlight&) = delete;

  const std::shared_ptr<Endpoint>& endpoint() const { return endpoint_; }

  void Reset() {
    if (endpoint_ != nullptr) {
      endpoint_->in_flight_.fetch_sub(1, std::memory_order_relaxed);
      endpoint_.reset();
    }
  }

 private:
  std::shared_ptr<Endpoint> endpoint_;
};

}  // namespace ringserve::router

#endif  // RINGSERVE_ROUTER_ENDPOINT_H_
