// ClientLimiter: per-client counts, refusals that change nothing, leases that give their
// slot back however they end, and the bound under concurrent use.
#include "router/client_limiter.h"

#include <atomic>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace ringserve::router {
namespace {

TEST(ClientLimiterTest, EachClientGetsItsOwnLimit) {
  ClientLimiter limiter(2);
  auto a1 = limiter.TryAcquire("a");
  auto a2 = limiter.TryAcquire("a");
  ASSERT_TRUE(a1.has_value() && a2.has_value());
  EXPECT_FALSE(limiter.TryAcquire("a").has_value());
  EXPECT_EQ(limiter.in_flight("a"), 2);  // the refusal took nothing
  auto b1 = limiter.TryAcquire("b");
  EXPECT_TRUE(b1.has_value());
  EXPECT_EQ(limiter.in_flight("b"), 1);
  EXPECT_EQ(limiter.num_clients(), 2);
}

TEST(ClientLimiterTest, ALeaseGivesItsSlotBackWhenDroppedResetOrMovedOver) {
  ClientLimiter limiter(1);
  {
    auto lease = limiter.TryAcquire("a");
    ASSERT_TRUE(lease.has_value());
    EXPECT_FALSE(limiter.TryAcquire("a").has_value());
  }
  EXPECT_EQ(limiter.in_flight("a"), 0);
  EXPECT_EQ(limiter.num_clients(), 0) << "a client at zero is forgotten";

  auto lease = limiter.TryAcquire("a");
  ASSERT_TRUE(lease.has_value());
  ClientLimiter::Lease moved = *std::move(lease);
  lease.reset();  // the moved-from lease counts nothing
  EXPECT_EQ(limiter.in_flight("a"), 1);
  moved.Reset();
  EXPECT_EQ(limiter.in_flight("a"), 0);
  moved.Reset();  // twice is harmless
  EXPECT_EQ(limiter.in_flight("a"), 0);

  auto first = limiter.TryAcquire("a");
  auto other = limiter.TryAcquire("b");
  ASSERT_TRUE(first.has_value() && other.has_value());
  *first = *std::move(other);  // releases a's slot, takes over b's
  EXPECT_EQ(limiter.in_flight("a"), 0);
  EXPECT_EQ(limiter.in_flight("b"), 1);
}

TEST(ClientLimiterTest, ZeroMeansNoLimitAndNoBookkeeping) {
  ClientLimiter limiter(0);
  std::vector<ClientLimiter::Lease> leases;
  for (int i = 0; i < 100; ++i) {
    auto lease = limiter.TryAcquire("a");
    ASSERT_TRUE(lease.has_value());
    leases.push_back(*std::move(lease));
  }
  EXPECT_EQ(limiter.num_clients(), 0);
}

TEST(ClientLimiterTest, ConcurrentClientsNeverExceedTheLimit) {
  constexpr int kLimit = 3;
  ClientLimiter limiter(kLimit);
  std::atomic<int> held{0};
  std::atomic<int> most{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 2000; ++i) {
        std::optional<ClientLimiter::Lease> lease = limiter.TryAcquire("shared");
        if (!lease.has_value()) continue;
        const int now = held.fetch_add(1) + 1;
        int seen = most.load();
        while (now > seen && !most.compare_exchange_weak(seen, now)) {
        }
        held.fetch_sub(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_LE(most.load(), kLimit);
  EXPECT_EQ(limiter.in_flight("shared"), 0);
  EXPECT_EQ(limiter.num_clients(), 0);
}

}  // namespace
}  // namespace ringserve::router
