// IdList (the LRU orders' list) and HostBlockIndex (the host tier's bookkeeping).
#include "kvcache/host_block_index.h"

#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kvcache/id_list.h"

namespace ringserve::kvcache {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Optional;

TEST(IdListTest, PushesAtBothEndsAndRemovesAnyMember) {
  IdList list(5);
  EXPECT_TRUE(list.empty());
  EXPECT_EQ(list.front(), IdList::kNone);
  list.PushBack(2);
  list.PushBack(4);
  list.PushFront(0);
  EXPECT_THAT(list.ToVector(), ElementsAre(0, 2, 4));
  EXPECT_TRUE(list.Contains(2));
  EXPECT_FALSE(list.Contains(1));
  list.Remove(2);
  EXPECT_THAT(list.ToVector(), ElementsAre(0, 4));
  list.Remove(0);
  EXPECT_EQ(list.front(), 4);
  EXPECT_EQ(list.back(), 4);
  list.Remove(4);
  EXPECT_THAT(list.ToVector(), IsEmpty());
  EXPECT_EQ(list.back(), IdList::kNone);
  list.PushFront(3);
  EXPECT_EQ(list.size(), 1);
  EXPECT_TRUE(list.Validate().ok()) << list.Validate();
}

constexpr int32_t kBlockSize = 2;

std::vector<int32_t> Tokens(int32_t first) { return {first, first + 1}; }

TEST(HostBlockIndexTest, StoresIntoEmptySlotsThenTheLeastRecentlyUsed) {
  HostBlockIndex index(2, kBlockSize);
  EXPECT_THAT(index.Store(10, 1, Tokens(0)), Optional(0));
  EXPECT_THAT(index.Store(20, 1, Tokens(2)), Optional(1));
  EXPECT_EQ(index.NumStoredBlocks(), 2);
  EXPECT_THAT(index.Store(30, 1, Tokens(4)), Optional(0));  // key 10 is forgotten
  EXPECT_EQ(index.Find(10, 1, Tokens(0)), std::nullopt);
  EXPECT_THAT(index.Find(20, 1, Tokens(2)), Optional(1));
  EXPECT_THAT(index.Find(30, 1, Tokens(4)), Optional(0));
  EXPECT_EQ(index.num_stores(), 3);
  EXPECT_EQ(index.num_evictions(), 1);
  EXPECT_TRUE(index.Validate().ok()) << index.Validate();
}

TEST(HostBlockIndexTest, StoringAHeldKeyCopiesNothingAndRefreshesIt) {
  HostBlockIndex index(2, kBlockSize);
  ASSERT_TRUE(index.Store(10, 1, Tokens(0)).has_value());
  ASSERT_TRUE(index.Store(20, 1, Tokens(2)).has_value());
  EXPECT_EQ(index.Store(10, 1, Tokens(0)), std::nullopt);   // now the most recently used
  EXPECT_THAT(index.Store(30, 1, Tokens(4)), Optional(1));  // so key 20 goes
  EXPECT_TRUE(index.Find(10, 1, Tokens(0)).has_value());
  EXPECT_TRUE(index.Validate().ok()) << index.Validate();
}

TEST(HostBlockIndexTest, FindComparesTheParentKeyAndTokens) {
  HostBlockIndex index(2, kBlockSize);
  ASSERT_TRUE(index.Store(10, 1, Tokens(0)).has_value());
  EXPECT_EQ(index.Find(10, 2, Tokens(0)), std::nullopt);
  EXPECT_EQ(index.Find(10, 1, Tokens(7)), std::nullopt);
  EXPECT_EQ(index.Find(11, 1, Tokens(0)), std::nullopt);
}

TEST(HostBlockIndexTest, PinnedSlotsAreNeverReused) {
  HostBlockIndex index(2, kBlockSize);
  ASSERT_TRUE(index.Store(10, 1, Tokens(0)).has_value());
  ASSERT_TRUE(index.Store(20, 1, Tokens(2)).has_value());
  index.Pin(0);
  index.Pin(0);
  EXPECT_TRUE(index.Validate().ok()) << index.Validate();
  EXPECT_THAT(index.Store(30, 1, Tokens(4)), Optional(1));
  index.Pin(1);
  EXPECT_EQ(index.Store(40, 1, Tokens(6)), std::nullopt);  // every slot pinned
  index.Unpin(0);
  EXPECT_EQ(index.Store(40, 1, Tokens(6)), std::nullopt);  // still pinned once
  index.Unpin(0);
  EXPECT_THAT(index.Store(40, 1, Tokens(6)), Optional(0));
  EXPECT_TRUE(index.Find(30, 1, Tokens(4)).has_value());
  index.Unpin(1);
  EXPECT_TRUE(index.Validate().ok()) << index.Validate();
}

}  // namespace
}  // namespace ringserve::kvcache
