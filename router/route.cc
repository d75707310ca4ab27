#include "router/route.h"

#include "router/session_key.h"

namespace ringserve::router {

Route Route::ForSession(const std::string& session_id, Placement session_placement) {
  if (session_id.empty()) return Route{Placement::kAnyWorker, 0};
  return Route{session_placement, SessionHash(session_id)};
}

Target RoutePlanner::First() {
  Target target = Choose(0);
  if (target.conn != nullptr) failed_address_ = target.conn->endpoint->address();
  attempts_ = 1;
  return target;
}

bool RoutePlanner::MayRetry(const grpc::Status& status, bool relayed) const {
  if (relayed || attempts_ != 1) return false;
  return status.error_code() == grpc::StatusCode::UNAVAILABLE ||
         (route_.placement == Placement::kSessionOwner &&
          status.error_code() == grpc::StatusCode::NOT_FOUND);
}

Target RoutePlanner::Retry() {
  attempts_ = 2;
  return Choose(1);
}

Target RoutePlanner::Choose(int attempt) {
  // A fresh snapshot per attempt: a retry sees health changes made since the first.
  const std::shared_ptr<const MembershipSnapshot> snapshot = membership_.snapshot();
  const Ring& ring = *snapshot->ring;
  const Endpoint* failed = nullptr;
  if (attempt > 0) {
    for (const auto& endpoint : ring.endpoints()) {
      if (endpoint->address() == failed_address_) failed = endpoint.get();
    }
  }
  std::shared_ptr<Endpoint> chosen;
  switch (route_.placement) {
    case Placement::kAnyWorker:
      chosen = ring.PickLessLoaded(random_bits_, failed);
      break;
    case Placement::kSessionBounded:
    case Placement::kSessionOwner:
      // The first choice that is not the worker that failed: that is the next owner
      // whether the ring still holds the failed worker or has already dropped it.
      for (int a = 0; a < ring.num_endpoints(); ++a) {
        chosen = route_.placement == Placement::kSessionBounded ? ring.Pick(route_.key_hash, a)
                                                                : ring.Owner(route_.key_hash, a);
        if (attempt == 0 || chosen->address() != failed_address_) break;
        chosen = nullptr;
      }
      break;
  }
  if (chosen == nullptr) return Target{};
  return Target{snapshot->workers.at(chosen.get()), InFlight(chosen)};
}

}  // namespace ringserve::router
