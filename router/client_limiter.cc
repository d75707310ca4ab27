#include "router/client_limiter.h"

#include <utility>

namespace ringserve::router {

ClientLimiter::Lease::Lease(Lease&& other) noexcept
    : limiter_(std::exchange(other.limiter_, nullptr)), client_(std::move(other.client_)) {}

ClientLimiter::Lease& ClientLimiter::Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    Reset();
    limiter_ = std::exchange(other.limiter_, nullptr);
    client_ = std::move(other.client_);
  }
  return *this;
}

void ClientLimiter::Lease::Reset() {
  if (limiter_ != nullptr) std::exchange(limiter_, nullptr)->Release(client_);
}

std::optional<ClientLimiter::Lease> ClientLimiter::TryAcquire(const std::string& client) {
  if (max_per_client_ <= 0) return Lease();
  std::lock_guard lock(mu_);
  int& count = counts_[client];
  if (count >= max_per_client_) return std::nullopt;  // count > 0 here: the entry stays valid
  ++count;
  return Lease(this, client);
}

void ClientLimiter::Release(const std::string& client) {
  std::lock_guard lock(mu_);
  auto it = counts_.find(client);
  // Dropping a client at zero keeps the map as small as the set of active clients.
  if (--it->second == 0) counts_.erase(it);
}

int ClientLimiter::in_flight(const std::string& client) const {
  std::lock_guard lock(mu_);
  auto it = counts_.find(client);
  return it == counts_.end() ? 0 : it->second;
}

int ClientLimiter::num_clients() const {
  std::lock_guard lock(mu_);
  return static_cast<int>(counts_.size());
}

}  // namespace ringserve::router
