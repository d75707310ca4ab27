#include "worker/engine/session_table.h"

#include <vector>

#include "gtest/gtest.h"

namespace ringserve::engine {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1000000);

TEST(SessionTableTest, CreateFindClose) {
  SessionTable table(4, absl::Minutes(1));
  absl::StatusOr<Session*> s = table.Create("a", kT0);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(table.Find("a"), *s);
  EXPECT_EQ(table.Find("b"), nullptr);
  table.Close(*s);
  EXPECT_EQ(table.Find("a"), nullptr);
  EXPECT_EQ(table.counters().closed, 1);
}

TEST(SessionTableTest, AtTheCapTheLeastRecentlyUsedIdleSessionCloses) {
  SessionTable table(3, absl::Hours(1));
  Session* a = *table.Create("a", kT0);
  Session* b = *table.Create("b", kT0 + absl::Seconds(1));
  Session* c = *table.Create("c", kT0 + absl::Seconds(2));
  table.Touch(a, kT0 + absl::Seconds(3));  // order now: b, c, a
  b->busy = true;                          // busy sessions are never closed
  ASSERT_TRUE(table.Create("d", kT0 + absl::Seconds(4)).ok());
  EXPECT_NE(table.Find("b"), nullptr);
  EXPECT_EQ(table.Find("c"), nullptr);  // least recently used idle
  EXPECT_NE(table.Find("a"), nullptr);
  EXPECT_EQ(table.counters().evicted, 1);
  (void)c;

  a->busy = true;
  table.Find("d")->busy = true;
  absl::StatusOr<Session*> e = table.Create("e", kT0 + absl::Seconds(5));
  EXPECT_TRUE(absl::IsResourceExhausted(e.status())) << e.status();
}

TEST(SessionTableTest, IdleSessionsExpireAfterTheTtl) {
  SessionTable table(10, absl::Seconds(30));
  Session* a = *table.Create("a", kT0);
  Session* b = *table.Create("b", kT0 + absl::Seconds(10));
  Session* busy = *table.Create("busy", kT0);
  busy->busy = true;
  EXPECT_EQ(table.NextExpiry(), kT0 + absl::Seconds(30));
  table.ExpireIdle(kT0 + absl::Seconds(29));
  EXPECT_EQ(table.size(), 3);
  table.ExpireIdle(kT0 + absl::Seconds(31));
  EXPECT_EQ(table.Find("a"), nullptr);
  EXPECT_EQ(table.Find("b"), b);
  EXPECT_EQ(table.Find("busy"), busy);  // a running request keeps its session
  EXPECT_EQ(table.counters().expired, 1);
  (void)a;
  table.ExpireIdle(kT0 + absl::Seconds(41));
  EXPECT_EQ(table.Find("b"), nullptr);
  EXPECT_EQ(table.size(), 1);
}

TEST(SessionTableTest, PinsAreReleasedLeastRecentlyUsedFirst) {
  kvcache::KvCacheManager kv({.num_blocks = 16, .block_size_tokens = 4});
  SessionTable table(10, absl::Hours(1));
  std::vector<Session*> sessions;
  for (int i = 0; i < 3; ++i) {
    Session* s = *table.Create(std::string(1, static_cast<char>('a' + i)), kT0 + absl::Seconds(i));
    const std::vector<int32_t> tokens = {i, i + 1, i + 2};
    ASSERT_TRUE(kv.Admit(static_cast<kvcache::SeqId>(i + 1), tokens, 3).has_value());
    table.SetPin(s, kvcache::SequenceLease(&kv, static_cast<kvcache::SeqId>(i + 1)));
    sessions.push_back(s);
  }
  table.Touch(sessions[0], kT0 + absl::Seconds(10));  // order: b, c, a
  sessions[1]->busy = true;
  EXPECT_EQ(table.num_pinned(), 3);
  ASSERT_TRUE(table.ReleaseOneIdlePin());
  EXPECT_FALSE(sessions[2]->pin().active());  // c: b is busy
  ASSERT_TRUE(table.ReleaseOneIdlePin());
  EXPECT_FALSE(sessions[0]->pin().active());
  EXPECT_FALSE(table.ReleaseOneIdlePin());  // only the busy one holds a pin
  EXPECT_TRUE(sessions[1]->pin().active());
  EXPECT_EQ(table.counters().pins_released, 2);
  EXPECT_EQ(table.num_pinned(), 1);
  sessions[1]->busy = false;
  table.Close(sessions[1]);
  EXPECT_EQ(table.num_pinned(), 0);
  EXPECT_EQ(kv.Stats().num_used_blocks, 0);
}

TEST(SessionTableTest, PinCountFollowsHandOffAndReplacement) {
  kvcache::KvCacheManager kv({.num_blocks = 16, .block_size_tokens = 4});
  SessionTable table(10, absl::Hours(1));
  Session* s = *table.Create("a", kT0);
  const std::vector<int32_t> tokens = {1, 2, 3};
  ASSERT_TRUE(kv.Admit(1, tokens, 3).has_value());
  ASSERT_TRUE(kv.Admit(2, tokens, 3).has_value());
  table.SetPin(s, kvcache::SequenceLease(&kv, 1));
  EXPECT_EQ(table.num_pinned(), 1);
  table.SetPin(s, kvcache::SequenceLease(&kv, 2));  // replaces (and releases) the first
  EXPECT_EQ(table.num_pinned(), 1);
  kvcache::SequenceLease taken = table.TakePin(s);  // a job holds it now
  EXPECT_TRUE(taken.active());
  EXPECT_FALSE(s->pin().active());
  EXPECT_EQ(table.num_pinned(), 0);
  table.SetPin(s, kvcache::SequenceLease());  // the job ended without a pin to return
  EXPECT_EQ(table.num_pinned(), 0);
  table.SetPin(s, std::move(taken));
  EXPECT_EQ(table.num_pinned(), 1);
  table.ExpireIdle(kT0 + absl::Hours(2));
  EXPECT_EQ(table.num_pinned(), 0);
  EXPECT_EQ(kv.Stats().num_used_blocks, 0);
}

}  // namespace
}  // namespace ringserve::engine
