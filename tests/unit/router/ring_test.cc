// Ring: balance, keys moved by membership changes, bounded loads, deterministic retries,
// power-of-two choices.
#include "router/ring.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "common/hash.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "router/session_key.h"

namespace ringserve::router {
namespace {

constexpr int kNumKeys = 100'000;

std::vector<std::shared_ptr<Endpoint>> MakeEndpoints(int n, int first = 0) {
  std::vector<std::shared_ptr<Endpoint>> endpoints;
  for (int i = first; i < first + n; ++i) {
    endpoints.push_back(
        std::make_shared<Endpoint>(absl::StrCat("10.0.", i / 200, ".", i % 200, ":50051")));
  }
  return endpoints;
}

std::shared_ptr<const Ring> MakeRing(std::vector<std::shared_ptr<Endpoint>> endpoints,
                                     const RingOptions& options = {}) {
  auto ring = Ring::Create(std::move(endpoints), options);
  EXPECT_TRUE(ring.ok()) << ring.status();
  return ring.ok() ? *ring : nullptr;
}

std::vector<uint64_t> KeyHashes(int n) {
  std::vector<uint64_t> hashes;
  hashes.reserve(n);
  for (int i = 0; i < n; ++i) hashes.push_back(SessionHash(absl::StrCat("session-", i)));
  return hashes;
}

// Owner address of every key.
std::vector<std::string> Owners(const Ring& ring, const std::vector<uint64_t>& keys) {
  std::vector<std::string> owners;
  owners.reserve(keys.size());
  for (uint64_t key : keys) owners.push_back(ring.Owner(key, 0)->address());
  return owners;
}

TEST(RingTest, MaxOverMeanLoadAtMost115For3To64Workers) {
  const std::vector<uint64_t> keys = KeyHashes(kNumKeys);
  double worst = 0;
  for (int n = 3; n <= 64; ++n) {
    auto ring = MakeRing(MakeEndpoints(n));
    absl::flat_hash_map<std::string, int> counts;
    for (const std::string& owner : Owners(*ring, keys)) ++counts[owner];
    ASSERT_EQ(counts.size(), static_cast<size_t>(n)) << "every worker owns some keys";
    int max_count = 0;
    for (const auto& [address, count] : counts) max_count = std::max(max_count, count);
    const double ratio = max_count / (static_cast<double>(kNumKeys) / n);
    worst = std::max(worst, ratio);
    EXPECT_LE(ratio, 1.15) << n << " workers";
  }
  RecordProperty("worst_max_over_mean", absl::StrCat(worst));
}

// Adding a worker moves only keys that now belong to it; removing one moves only its own
// keys; either way about 1/N of them.
TEST(RingTest, AddingOrRemovingOneWorkerMovesAboutOneNth) {
  const std::vector<uint64_t> keys = KeyHashes(kNumKeys);
  for (int n : {3, 4, 5, 8, 10, 16, 32, 64}) {
    SCOPED_TRACE(absl::StrCat(n, " workers"));
    std::vector<std::shared_ptr<Endpoint>> base = MakeEndpoints(n);
    const std::vector<std::string> before = Owners(*MakeRing(base), keys);

    std::vector<std::shared_ptr<Endpoint>> grown = base;
    grown.push_back(std::make_shared<Endpoint>("10.1.0.1:50051"));
    const std::vector<std::string> after_add = Owners(*MakeRing(grown), keys);

    std::vector<std::shared_ptr<Endpoint>> shrunk(base.begin() + 1, base.end());
    const std::string removed = base.front()->address();
    const std::vector<std::string> after_remove = Owners(*MakeRing(shrunk), keys);

    int moved_add = 0;
    int moved_remove = 0;
    for (size_t i = 0; i < keys.size(); ++i) {
      if (after_add[i] != before[i]) {
        ++moved_add;
        EXPECT_EQ(after_add[i], "10.1.0.1:50051");
      }
      if (after_remove[i] != before[i]) {
        ++moved_remove;
        EXPECT_EQ(before[i], removed);
      }
    }
    for (int moved : {moved_add, moved_remove}) {
      const double share = static_cast<double>(moved) / kNumKeys;
      EXPECT_GE(share, 0.5 / n);
      EXPECT_LE(share, 1.5 / n);
    }
  }
}

TEST(RingTest, OwnerIsTheSameWhateverOrderTheEndpointsCameIn) {
  std::vector<std::shared_ptr<Endpoint>> endpoints = MakeEndpoints(9);
  auto forward = MakeRing(endpoints);
  std::reverse(endpoints.begin(), endpoints.end());
  auto reversed = MakeRing(endpoints);
  for (uint64_t key : KeyHashes(1000)) {
    for (int attempt = 0; attempt < 9; ++attempt) {
      EXPECT_EQ(forward->Owner(key, attempt), reversed->Owner(key, attempt));
    }
  }
}

// Pins the placement itself: xxHash64 of "address#i" and of the routing key is the
// contract between router replicas (and versions), so a change here must be deliberate.
TEST(RingTest, PlacementIsPinned) {
  auto ring = MakeRing({std::make_shared<Endpoint>("worker-a:50051"),
                        std::make_shared<Endpoint>("worker-b:50051"),
                        std::make_shared<Endpoint>("worker-c:50051")});
  EXPECT_EQ(ring->Owner(SessionHash("alice"), 0)->address(), "worker-a:50051");
  EXPECT_EQ(ring->Owner(SessionHash("grace"), 0)->address(), "worker-c:50051");
  EXPECT_EQ(ring->Owner(SessionHash("mallory"), 0)->address(), "worker-b:50051");
  EXPECT_EQ(SessionHash("alice#fork-1"), SessionHash("alice"));
}

TEST(RingTest, PickIsDeterministicAndEachAttemptDistinct) {
  auto ring = MakeRing(MakeEndpoints(12));
  for (uint64_t key : KeyHashes(2000)) {
    std::set<std::string> seen;
    for (int attempt = 0; attempt < 12; ++attempt) {
      const auto pick = ring->Pick(key, attempt);
      ASSERT_NE(pick, nullptr);
      EXPECT_EQ(pick, ring->Pick(key, attempt)) << "same inputs, same pick";
      EXPECT_EQ(pick, ring->Owner(key, attempt)) << "no load: the attempt-th owner";
      EXPECT_TRUE(seen.insert(pick->address()).second) << "attempt " << attempt;
    }
    EXPECT_EQ(ring->Pick(key, 12), nullptr);
    EXPECT_EQ(ring->Pick(key, -1), nullptr);
  }
}

TEST(RingTest, RetryNeverReturnsAnEarlierOwnerEvenWhenTheRestAreFull) {
  std::vector<std::shared_ptr<Endpoint>> endpoints = MakeEndpoints(3);
  auto ring = MakeRing(endpoints);
  const uint64_t key = SessionHash("retry");
  const auto owner = ring->Owner(key, 0);
  const auto second = ring->Owner(key, 1);
  const auto third = ring->Owner(key, 2);
  // Load the later owners far past the bound; the owner stays idle.
  std::vector<InFlight> load;
  for (int i = 0; i < 50; ++i) {
    load.emplace_back(second);
    load.emplace_back(third);
  }
  EXPECT_EQ(ring->Pick(key, 0), owner);
  EXPECT_EQ(ring->Pick(key, 1), second) << "nothing after attempt 1 fits: its owner";
  EXPECT_EQ(ring->Pick(key, 2), third);
}

TEST(RingTest, BoundedLoadSpillKeepsEveryWorkerWithinCeilOfCTimesMean) {
  for (int n : {3, 5, 8, 16, 64}) {
    SCOPED_TRACE(absl::StrCat(n, " workers"));
    std::vector<std::shared_ptr<Endpoint>> endpoints = MakeEndpoints(n);
    auto ring = MakeRing(endpoints);
    std::mt19937_64 rng(n);
    // A skewed workload: most requests belong to a few hot sessions, so plain consistent
    // hashing would pile them onto one or two workers.
    std::vector<uint64_t> hot = KeyHashes(3);
    std::vector<InFlight> in_flight;
    int64_t total = 0;
    for (int step = 0; step < 20 * n; ++step) {
      if (!in_flight.empty() && rng() % 4 == 0) {
        // A request finishes.
        const size_t victim = rng() % in_flight.size();
        std::swap(in_flight[victim], in_flight.back());
        in_flight.pop_back();
        --total;
        continue;
      }
      const uint64_t key = rng() % 10 < 8 ? hot[rng() % hot.size()] : rng();
      auto pick = ring->Pick(key, 0);
      in_flight.emplace_back(pick);
      ++total;
      const int64_t bound = static_cast<int64_t>(std::ceil(1.25 * total / n - 1e-9));
      EXPECT_LE(pick->in_flight(), bound) << "the worker that just took a request";
    }
    // With only arrivals every worker stays within the bound at every step.
    in_flight.clear();
    total = 0;
    for (int step = 0; step < 20 * n; ++step) {
      in_flight.emplace_back(ring->Pick(hot[step % hot.size()], 0));
      ++total;
      const int64_t bound = static_cast<int64_t>(std::ceil(1.25 * total / n - 1e-9));
      for (const auto& endpoint : endpoints) ASSERT_LE(endpoint->in_flight(), bound);
    }
  }
}

TEST(RingTest, PowerOfTwoChoicesPicksTheLessLoaded) {
  std::vector<std::shared_ptr<Endpoint>> endpoints = MakeEndpoints(2);
  auto ring = MakeRing(endpoints);
  std::vector<InFlight> load;
  for (int i = 0; i < 3; ++i) load.emplace_back(ring->endpoints()[0]);
  std::mt19937_64 rng(7);
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(ring->PickLessLoaded(rng()), ring->endpoints()[1]);
  }
  // With the less loaded one excluded, the other is the only choice.
  EXPECT_EQ(ring->PickLessLoaded(rng(), ring->endpoints()[1].get()), ring->endpoints()[0]);
}

TEST(RingTest, PowerOfTwoChoicesSpreadsEvenly) {
  std::vector<std::shared_ptr<Endpoint>> endpoints = MakeEndpoints(8);
  auto ring = MakeRing(endpoints);
  std::mt19937_64 rng(11);
  std::vector<InFlight> load;
  for (int i = 0; i < 800; ++i) load.emplace_back(ring->PickLessLoaded(rng()));
  for (const auto& endpoint : endpoints) {
    // Two choices keep the gap to the mean at O(log log n); 800 / 8 = 100 each.
    EXPECT_NEAR(endpoint->in_flight(), 100, 3) << endpoint->address();
  }
}

TEST(RingTest, EmptyRingPicksNothing) {
  auto ring = MakeRing({});
  EXPECT_EQ(ring->Pick(1, 0), nullptr);
  EXPECT_EQ(ring->Owner(1, 0), nullptr);
  EXPECT_EQ(ring->PickLessLoaded(1), nullptr);
}

TEST(RingTest, SingleEndpointTakesEverything) {
  auto ring = MakeRing(MakeEndpoints(1), {.points_per_endpoint = 1, .probes_per_key = 1});
  EXPECT_EQ(ring->Pick(123, 0), ring->endpoints()[0]);
  EXPECT_EQ(ring->PickLessLoaded(5, ring->endpoints()[0].get()), nullptr);
}

TEST(RingTest, CreateRejectsBadInput) {
  EXPECT_FALSE(Ring::Create(MakeEndpoints(2), {.points_per_endpoint = 0}).ok());
  EXPECT_FALSE(Ring::Create(MakeEndpoints(2), {.probes_per_key = 0}).ok());
  EXPECT_FALSE(Ring::Create(MakeEndpoints(2), {.load_factor = 0.9}).ok());
  auto duplicate = MakeEndpoints(2);
  duplicate.push_back(std::make_shared<Endpoint>(duplicate[0]->address()));
  const auto status = Ring::Create(duplicate).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), testing::HasSubstr("duplicate"));
  EXPECT_FALSE(Ring::Create({nullptr}).ok());
  EXPECT_FALSE(Ring::Create({std::make_shared<Endpoint>("")}).ok());
}

}  // namespace
}  // namespace ringserve::router
