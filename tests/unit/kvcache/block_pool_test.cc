// BlockPool: exact block ids for allocation order, free-list order and LRU eviction.
#include "kvcache/block_pool.h"

#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ringserve::kvcache {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr int32_t kBlockSize = 4;

std::vector<int32_t> Tokens(int32_t first) { return {first, first + 1, first + 2, first + 3}; }

// Registers block under a key derived from `first`, as a full block after the root.
void RegisterBlock(BlockPool& pool, BlockId block, int32_t first) {
  const std::vector<int32_t> tokens = Tokens(first);
  ASSERT_TRUE(pool.Register(block, ChainedBlockKey(kRootBlockKey, tokens), kRootBlockKey, tokens));
}

std::optional<BlockId> FindBlock(const BlockPool& pool, int32_t first) {
  const std::vector<int32_t> tokens = Tokens(first);
  return pool.Find(ChainedBlockKey(kRootBlockKey, tokens), kRootBlockKey, tokens);
}

TEST(BlockPoolTest, AllocatesFromTheHeadInIdOrder) {
  BlockPool pool(8, kBlockSize);
  std::vector<BlockId> a;
  ASSERT_TRUE(pool.Allocate(3, &a));
  EXPECT_THAT(a, ElementsAre(0, 1, 2));
  ASSERT_TRUE(pool.Allocate(2, &a));  // appends
  EXPECT_THAT(a, ElementsAre(0, 1, 2, 3, 4));
  EXPECT_THAT(pool.FreeBlocksInEvictionOrder(), ElementsAre(5, 6, 7));
  EXPECT_EQ(pool.NumUsedBlocks(), 5);
  EXPECT_EQ(pool.NumFreeBlocks(), 3);
  EXPECT_EQ(pool.RefCount(4), 1);
  EXPECT_TRUE(pool.Validate().ok());
}

TEST(BlockPoolTest, UnkeyedFreedBlocksAreReusedFirst) {
  BlockPool pool(6, kBlockSize);
  std::vector<BlockId> a;
  ASSERT_TRUE(pool.Allocate(4, &a));
  pool.Release(1);
  pool.Release(3);
  EXPECT_THAT(pool.FreeBlocksInEvictionOrder(), ElementsAre(3, 1, 4, 5));
  std::vector<BlockId> b;
  ASSERT_TRUE(pool.Allocate(3, &b));
  EXPECT_THAT(b, ElementsAre(3, 1, 4));
  EXPECT_EQ(pool.num_evictions(), 0);
  EXPECT_TRUE(pool.Validate().ok());
}

TEST(BlockPoolTest, CachedBlocksAreEvictedLeastRecentlyFreedFirst) {
  BlockPool pool(4, kBlockSize);
  std::vector<BlockId> a;
  ASSERT_TRUE(pool.Allocate(4, &a));
  RegisterBlock(pool, 0, 100);
  RegisterBlock(pool, 1, 200);
  RegisterBlock(pool, 2, 300);
  pool.Release(2);
  pool.Release(0);
  pool.Release(3);  // unkeyed: goes before every cached block
  pool.Release(1);
  EXPECT_THAT(pool.FreeBlocksInEvictionOrder(), ElementsAre(3, 2, 0, 1));
  EXPECT_EQ(pool.NumCachedBlocks(), 3);
  EXPECT_EQ(FindBlock(pool, 200), 1);  // freed blocks stay findable

  std::vector<BlockId> b;
  ASSERT_TRUE(pool.Allocate(2, &b));
  EXPECT_THAT(b, ElementsAre(3, 2));  // the unkeyed one, then the oldest cached one
  EXPECT_EQ(pool.num_evictions(), 1);
  EXPECT_FALSE(pool.HasKey(2));
  EXPECT_EQ(FindBlock(pool, 300), std::nullopt);  // evicted on reuse
  EXPECT_EQ(FindBlock(pool, 100), 0);
  EXPECT_EQ(pool.NumCachedBlocks(), 2);
  EXPECT_TRUE(pool.Validate().ok());
}

TEST(BlockPoolTest, HitRemovesACachedBlockFromTheFreeList) {
  BlockPool pool(3, kBlockSize);
  std::vector<BlockId> a;
  ASSERT_TRUE(pool.Allocate(3, &a));
  RegisterBlock(pool, 0, 100);
  RegisterBlock(pool, 1, 200);
  pool.Release(0);
  pool.Release(1);
  pool.Release(2);
  EXPECT_THAT(pool.FreeBlocksInEvictionOrder(), ElementsAre(2, 0, 1));
  pool.Acquire(0);  // prefix hit
  EXPECT_EQ(pool.RefCount(0), 1);
  EXPECT_EQ(pool.NumCachedBlocks(), 1);
  EXPECT_THAT(pool.FreeBlocksInEvictionOrder(), ElementsAre(2, 1));
  pool.Release(0);  // now the most recently used cached block
  EXPECT_THAT(pool.FreeBlocksInEvictionOrder(), ElementsAre(2, 1, 0));
  EXPECT_TRUE(pool.Validate().ok());
}

TEST(BlockPoolTest, RefusedAllocationChangesNothing) {
  BlockPool pool(4, kBlockSize);
  std::vector<BlockId> a;
  ASSERT_TRUE(pool.Allocate(2, &a));
  RegisterBlock(pool, 0, 100);
  pool.Release(0);
  const std::vector<BlockId> free_before = pool.FreeBlocksInEvictionOrder();
  std::vector<BlockId> b = {42};
  EXPECT_FALSE(pool.Allocate(4, &b));
  EXPECT_THAT(b, ElementsAre(42));
  EXPECT_EQ(pool.FreeBlocksInEvictionOrder(), free_before);
  EXPECT_EQ(FindBlock(pool, 100), 0);
  EXPECT_EQ(pool.num_evictions(), 0);
  EXPECT_TRUE(pool.Allocate(0, &b));
  EXPECT_TRUE(pool.Validate().ok());
}

TEST(BlockPoolTest, FindComparesParentKeyAndTokens) {
  BlockPool pool(2, kBlockSize);
  std::vector<BlockId> a;
  ASSERT_TRUE(pool.Allocate(2, &a));
  const std::vector<int32_t> tokens = Tokens(7);
  constexpr BlockKey kKey = 1234;
  ASSERT_TRUE(pool.Register(0, kKey, kRootBlockKey, tokens));
  EXPECT_EQ(pool.Find(kKey, kRootBlockKey, tokens), 0);
  EXPECT_EQ(pool.Find(kKey, kRootBlockKey, Tokens(8)), std::nullopt);   // same key, other tokens
  EXPECT_EQ(pool.Find(kKey, kRootBlockKey + 1, tokens), std::nullopt);  // other prefix
  EXPECT_EQ(pool.Find(kKey + 1, kRootBlockKey, tokens), std::nullopt);
  // A second block under a taken key stays unkeyed; the first keeps the entry.
  EXPECT_FALSE(pool.Register(1, kKey, kRootBlockKey, Tokens(8)));
  EXPECT_FALSE(pool.HasKey(1));
  EXPECT_FALSE(pool.Register(0, kKey + 1, kRootBlockKey, tokens));  // already keyed
  EXPECT_TRUE(pool.Validate().ok());
}

TEST(BlockPoolTest, EmptyAllocationListIsFine) {
  BlockPool pool(1, kBlockSize);
  std::vector<BlockId> a;
  ASSERT_TRUE(pool.Allocate(1, &a));
  EXPECT_THAT(pool.FreeBlocksInEvictionOrder(), IsEmpty());
  EXPECT_FALSE(pool.Allocate(1, &a));
  pool.Release(0);
  EXPECT_THAT(pool.FreeBlocksInEvictionOrder(), ElementsAre(0));
  EXPECT_TRUE(pool.Validate().ok());
}

}  // namespace
}  // namespace ringserve::kvcache
