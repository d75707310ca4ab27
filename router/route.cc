#include "router/route.h"

#include <algorithm>

#include "router/prefix_key.h"
#include "router/session_key.h"

namespace ringserve::router {

Route Route::ForSession(const std::string& session_id, Placement session_placement) {
  if (session_id.empty()) return Route{};
  return Route{session_placement, SessionHash(session_id), "session"};
}

Route Route::ForGenerate(const v1::GenerateRequest& request, int prefix_affinity_bytes,
                         bool adapter_affinity) {
  if (!request.session_id().empty()) {
    return ForSession(request.session_id(),
                      request.append() ? Placement::kSessionOwner : Placement::kSessionBounded);
  }
  if (adapter_affinity && !request.adapter().empty()) {
    return Route{Placement::kSessionBounded, AdapterHash(request.adapter()), "adapter"};
  }
  const std::optional<uint64_t> prefix = PrefixHash(request, prefix_affinity_bytes);
  if (!prefix.has_value()) return Route{};
  return Route{Placement::kSessionBounded, *prefix, "prefix"};
}

Route Route::ForEmbed(const v1::EmbedRequest& request, int prefix_affinity_bytes,
                      bool adapter_affinity) {
  if (request.inputs_size() == 0) return Route{};
  return ForEmbedInput(request.inputs(0), request.adapter(), prefix_affinity_bytes,
                       adapter_affinity);
}

Route Route::ForEmbedInput(const v1::EmbedInput& input, const std::string& adapter,
                           int prefix_affinity_bytes, bool adapter_affinity) {
  v1::GenerateRequest generate;
  if (input.has_tokens()) {
    *generate.mutable_tokens() = input.tokens();
  } else {
    generate.set_text(input.text());
  }
  generate.set_adapter(adapter);
  return ForGenerate(generate, prefix_affinity_bytes, adapter_affinity);
}

Target RoutePlanner::First() {
  Target target = Choose(0);
  if (target.conn != nullptr) {
    failed_address_ = target.conn->endpoint->address();
    tried_.push_back(failed_address_);
  }
  attempts_ = 1;
  return target;
}

bool RoutePlanner::MayRetry(const grpc::Status& status, bool relayed) const {
  if (relayed) return false;
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE) return attempts_ == 1;
  return route_.placement == Placement::kSessionOwner &&
         status.error_code() == grpc::StatusCode::NOT_FOUND && attempts_ < kMaxOwnerProbes;
}

Target RoutePlanner::Retry() {
  Target target = Choose(attempts_);
  ++attempts_;
  if (target.conn != nullptr) tried_.push_back(target.conn->endpoint->address());
  return target;
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
    case Placement::kSessionOwner:
      // The first owner clockwise not asked yet.
      for (int a = 0; a < ring.num_endpoints() && chosen == nullptr; ++a) {
        chosen = ring.Owner(route_.key_hash, a);
        if (std::find(tried_.begin(), tried_.end(), chosen->address()) != tried_.end()) {
          chosen = nullptr;
        }
      }
      break;
    case Placement::kSessionBounded:
      // The first choice that is not the worker that failed: that is the next owner
      // whether the ring still holds the failed worker or has already dropped it.
      for (int a = 0; a < ring.num_endpoints(); ++a) {
        chosen = ring.Pick(route_.key_hash, a);
        if (attempt == 0 || chosen->address() != failed_address_) break;
        chosen = nullptr;
      }
      if (attempt == 0 && chosen != nullptr) {
        first_spilled_ = chosen != ring.Owner(route_.key_hash, 0);
      }
      break;
  }
  if (chosen == nullptr) return Target{};
  return Target{snapshot->workers.at(chosen.get()), InFlight(chosen)};
}

}  // namespace ringserve::router
