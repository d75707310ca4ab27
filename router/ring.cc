#include "router/ring.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>
#include <utility>

#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/check.h"
#include "common/hash.h"

namespace ringserve::router {
namespace {

constexpr int kMaxPointsPerEndpoint = 4096;
constexpr int kMaxProbesPerKey = 64;

// Probe p of a key: the key's hash itself for p = 0, else xxHash64 of its little-endian
// bytes seeded with p (explicit byte order keeps placement identical on every machine).
uint64_t Probe(uint64_t key_hash, int p) {
  if (p == 0) return key_hash;
  unsigned char bytes[8];
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<unsigned char>(key_hash >> (8 * i));
  return Hash64(bytes, sizeof(bytes), static_cast<uint64_t>(p));
}

// A bitset of visited endpoint indices; inline up to 256 endpoints, so a pick does not
// allocate on any realistic fleet.
class VisitedSet {
 public:
  explicit VisitedSet(size_t size) : words_((size + 63) / 64, 0) {}
  // Marks i; returns whether it was unmarked.
  bool Insert(uint32_t i) {
    const uint64_t bit = uint64_t{1} << (i % 64);
    uint64_t& word = words_[i / 64];
    const bool fresh = (word & bit) == 0;
    word |= bit;
    return fresh;
  }

 private:
  absl::InlinedVector<uint64_t, 4> words_;
};

}  // namespace

absl::StatusOr<std::shared_ptr<const Ring>> Ring::Create(
    std::vector<std::shared_ptr<Endpoint>> endpoints, const RingOptions& options) {
  if (options.points_per_endpoint < 1 || options.points_per_endpoint > kMaxPointsPerEndpoint) {
    return absl::InvalidArgumentError(absl::StrCat("points_per_endpoint must be in [1, ",
                                                   kMaxPointsPerEndpoint, "], got ",
                                                   options.points_per_endpoint));
  }
  if (options.probes_per_key < 1 || options.probes_per_key > kMaxProbesPerKey) {
    return absl::InvalidArgumentError(absl::StrCat(
        "probes_per_key must be in [1, ", kMaxProbesPerKey, "], got ", options.probes_per_key));
  }
  if (!(options.load_factor >= 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("load_factor must be >= 1, got ", options.load_factor));
  }
  for (const auto& endpoint : endpoints) {
    if (endpoint == nullptr || endpoint->address().empty()) {
      return absl::InvalidArgumentError("ring endpoints must be non-null with an address");
    }
  }
  std::sort(endpoints.begin(), endpoints.end(),
            [](const auto& a, const auto& b) { return a->address() < b->address(); });
  for (size_t i = 1; i < endpoints.size(); ++i) {
    if (endpoints[i]->address() == endpoints[i - 1]->address()) {
      return absl::InvalidArgumentError(
          absl::StrCat("duplicate ring endpoint ", endpoints[i]->address()));
    }
  }
  // The constructor is private; make_shared cannot reach it.
  return std::shared_ptr<const Ring>(new Ring(std::move(endpoints), options));
}

Ring::Ring(std::vector<std::shared_ptr<Endpoint>> endpoints, const RingOptions& options)
    : options_(options), endpoints_(std::move(endpoints)) {
  points_.reserve(endpoints_.size() * options_.points_per_endpoint);
  for (uint32_t e = 0; e < endpoints_.size(); ++e) {
    for (int i = 0; i < options_.points_per_endpoint; ++i) {
      points_.push_back({Hash64(absl::StrCat(endpoints_[e]->address(), "#", i)), e});
    }
  }
  // Ties (hash collisions) break by endpoint index, i.e. by address: still the same ring
  // in every replica.
  std::sort(points_.begin(), points_.end(), [](const Point& a, const Point& b) {
    return a.hash != b.hash ? a.hash < b.hash : a.endpoint < b.endpoint;
  });
}

size_t Ring::WinningPoint(uint64_t key_hash) const {
  size_t best_index = 0;
  uint64_t best_distance = 0;
  for (int p = 0; p < options_.probes_per_key; ++p) {
    const uint64_t probe = Probe(key_hash, p);
    const auto next =
        std::lower_bound(points_.begin(), points_.end(), probe,
                         [](const Point& point, uint64_t h) { return point.hash < h; });
    const size_t index = static_cast<size_t>(next - points_.begin()) % points_.size();
    const uint64_t distance = points_[index].hash - probe;  // modulo 2^64: wraps correctly
    // Strictly closer wins, so equal distances keep the lower probe: deterministic.
    if (p == 0 || distance < best_distance) {
      best_index = index;
      best_distance = distance;
    }
  }
  return best_index;
}

template <typename Visit>
void Ring::WalkDistinct(uint64_t key_hash, Visit visit) const {
  if (points_.empty()) return;
  size_t index = WinningPoint(key_hash);
  VisitedSet visited(endpoints_.size());
  size_t num_visited = 0;
  for (size_t step = 0; step < points_.size() && num_visited < endpoints_.size(); ++step) {
    const uint32_t endpoint = points_[index].endpoint;
    if (visited.Insert(endpoint)) {
      ++num_visited;
      if (visit(endpoint)) return;
    }
    index = index + 1 == points_.size() ? 0 : index + 1;
  }
}

int64_t Ring::Capacity() const {
  int64_t total = 0;
  for (const auto& endpoint : endpoints_) total += endpoint->in_flight();
  const double average = static_cast<double>(total + 1) / static_cast<double>(endpoints_.size());
  // The epsilon keeps an exact product (1.25 * 4 = 5) from rounding up to the next
  // integer through floating-point error.
  return static_cast<int64_t>(std::ceil(options_.load_factor * average - 1e-9));
}

std::shared_ptr<Endpoint> Ring::Owner(uint64_t key_hash, int attempt) const {
  if (attempt < 0 || attempt >= num_endpoints()) return nullptr;
  int seen = 0;
  uint32_t owner = 0;
  WalkDistinct(key_hash, [&](uint32_t endpoint) {
    owner = endpoint;
    return seen++ == attempt;
  });
  return endpoints_[owner];
}

std::shared_ptr<Endpoint> Ring::Pick(uint64_t key_hash, int attempt) const {
  if (attempt < 0 || attempt >= num_endpoints()) return nullptr;
  const int64_t capacity = Capacity();
  int seen = 0;
  std::optional<uint32_t> first;  // Owner(key_hash, attempt)
  std::optional<uint32_t> chosen;
  WalkDistinct(key_hash, [&](uint32_t endpoint) {
    if (seen++ < attempt) return false;
    if (!first.has_value()) first = endpoint;
    if (endpoints_[endpoint]->in_flight() + 1 <= capacity) chosen = endpoint;
    return chosen.has_value();
  });
  RS_CHECK(first.has_value());
  return endpoints_[chosen.value_or(*first)];
}

std::shared_ptr<Endpoint> Ring::PickLessLoaded(uint64_t random_bits,
                                               const Endpoint* exclude) const {
  // Candidates are the endpoints other than `exclude`, indexed 0..n-1 by skipping it.
  size_t skip = endpoints_.size();
  for (size_t i = 0; i < endpoints_.size(); ++i) {
    if (endpoints_[i].get() == exclude) skip = i;
  }
  const size_t n = endpoints_.size() - (skip < endpoints_.size() ? 1 : 0);
  if (n == 0) return nullptr;
  auto candidate = [&](size_t i) -> const std::shared_ptr<Endpoint>& {
    return endpoints_[i < skip ? i : i + 1];
  };
  const size_t a = (random_bits & 0xffffffffu) % n;
  if (n == 1) return candidate(a);
  // b is uniform over the n - 1 candidates other than a.
  const size_t b = (a + 1 + (random_bits >> 32) % (n - 1)) % n;
  const auto& first = candidate(a);
  const auto& second = candidate(b);
  return second->in_flight() < first->in_flight() ? second : first;
}

}  // namespace ringserve::router
