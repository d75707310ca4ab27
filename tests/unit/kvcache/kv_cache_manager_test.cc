// KvCacheManager: prefix caching, fork + copy-on-write and refusals, pinned to exact block ids
// (block size 4 so that the arithmetic stays readable).
#include "kvcache/kv_cache_manager.h"

#include <numeric>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kvcache/sizing.h"

namespace ringserve::kvcache {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr int32_t kBlockSize = 4;

std::vector<int32_t> Iota(int32_t num_tokens, int32_t first) {
  std::vector<int32_t> tokens(static_cast<size_t>(num_tokens));
  std::iota(tokens.begin(), tokens.end(), first);
  return tokens;
}

std::vector<int32_t> Concat(std::vector<int32_t> a, const std::vector<int32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

std::unique_ptr<KvCacheManager> MakeManager(int32_t num_blocks,
                                            BlockHasher hasher = &ChainedBlockKey,
                                            int32_t num_host_blocks = 0) {
  auto manager = KvCacheManager::Create({.num_blocks = num_blocks,
                                         .block_size_tokens = kBlockSize,
                                         .num_host_blocks = num_host_blocks,
                                         .block_hasher = hasher});
  EXPECT_TRUE(manager.ok());
  return *std::move(manager);
}

std::vector<BlockId> Table(const KvCacheManager& m, SeqId seq) {
  const std::span<const BlockId> table = m.BlockTable(seq);
  return {table.begin(), table.end()};
}

// Admits the whole prompt and commits it, as one full prefill step would.
void Prefill(KvCacheManager& m, SeqId seq, const std::vector<int32_t>& tokens) {
  const std::optional<Admission> admission =
      m.Admit(seq, tokens, static_cast<int32_t>(tokens.size()));
  ASSERT_TRUE(admission.has_value());
  m.Commit(seq, admission->num_new_tokens);
}

TEST(KvCacheManagerTest, CreateRejectsBadOptions) {
  EXPECT_FALSE(KvCacheManager::Create({.num_blocks = 0}).ok());
  EXPECT_FALSE(KvCacheManager::Create({.num_blocks = 4, .block_size_tokens = 0}).ok());
  EXPECT_FALSE(KvCacheManager::Create({.num_blocks = 4, .block_hasher = nullptr}).ok());
  EXPECT_FALSE(KvCacheManager::Create({.num_blocks = 4, .num_host_blocks = -1}).ok());
}

TEST(KvCacheManagerTest, PrefixHitSharesFullBlocksNeverThePartialOne) {
  auto m = MakeManager(10);
  const std::vector<int32_t> prompt = Iota(10, 100);  // 2 full blocks + 2 tokens
  Prefill(*m, 1, prompt);
  EXPECT_THAT(Table(*m, 1), ElementsAre(0, 1, 2));

  const std::optional<Admission> admission = m->Admit(2, prompt, 100);
  ASSERT_TRUE(admission.has_value());
  EXPECT_EQ(admission->num_cached_tokens, 8);
  EXPECT_EQ(admission->num_new_tokens, 2);
  EXPECT_THAT(Table(*m, 2), ElementsAre(0, 1, 3));  // partial block 2 is not shared
  EXPECT_EQ(m->NumComputedTokens(2), 8);
  EXPECT_EQ(m->SlotOf(2, 9), 3 * kBlockSize + 1);

  const KvCacheStats stats = m->Stats();
  EXPECT_EQ(stats.num_used_blocks, 4);
  EXPECT_EQ(stats.num_prefix_lookups, 2);
  EXPECT_EQ(stats.num_prefix_lookup_tokens, 20);
  EXPECT_EQ(stats.num_hit_blocks, 2);
  EXPECT_EQ(stats.num_hit_tokens, 8);
  EXPECT_TRUE(m->Validate().ok());
}

// Blocks a LoRA adapter computed chain from its own root key: the same tokens under another
// adapter (or none) never hit them, and a fork keeps its parent's root.
TEST(KvCacheManagerTest, RootKeysKeepAdaptersApart) {
  auto m = MakeManager(16);
  const std::vector<int32_t> prompt = Iota(10, 100);
  const std::optional<Admission> first = m->Admit(1, prompt, 10, INT32_MAX, RootKeyFor(1));
  ASSERT_TRUE(first.has_value());
  m->Commit(1, first->num_new_tokens);
  EXPECT_EQ(m->Match(prompt, RootKeyFor(1)).num_cached_tokens, 8);
  EXPECT_EQ(m->Match(prompt, RootKeyFor(2)).num_cached_tokens, 0);
  EXPECT_EQ(m->Match(prompt).num_cached_tokens, 0);
  EXPECT_NE(RootKeyFor(1), kRootBlockKey);
  EXPECT_EQ(RootKeyFor(0), kRootBlockKey);

  const std::optional<Admission> other = m->Admit(2, prompt, 10, INT32_MAX, RootKeyFor(2));
  ASSERT_TRUE(other.has_value());
  EXPECT_EQ(other->num_cached_tokens, 0);
  m->Commit(2, other->num_new_tokens);
  m->Fork(1, 3);
  m->AppendTokens(3, Iota(6, 7));  // fills block 2 and one more: keyed under the fork's root
  ASSERT_TRUE(m->Reserve(3, 6));
  m->Commit(3, 6);
  EXPECT_EQ(m->Match(Concat(prompt, Iota(7, 7)), RootKeyFor(1)).num_cached_tokens, 16);
  EXPECT_EQ(m->Match(Concat(prompt, Iota(7, 7)), RootKeyFor(2)).num_cached_tokens, 8);
  EXPECT_TRUE(m->Validate().ok());
}

TEST(KvCacheManagerTest, MatchLeavesAtLeastOneTokenToCompute) {
  auto m = MakeManager(10);
  const std::vector<int32_t> prompt = Iota(9, 0);
  Prefill(*m, 1, prompt);  // blocks 0 and 1 full and keyed
  EXPECT_EQ(m->Match(prompt).num_cached_tokens, 8);
  EXPECT_EQ(m->Match(Iota(8, 0)).num_cached_tokens, 4);  // a whole-block prompt keeps one back
  EXPECT_EQ(m->Match(Iota(8, 0)).num_cached_blocks, 1);
  EXPECT_EQ(m->Match(Iota(4, 0)).num_cached_tokens, 0);
  EXPECT_EQ(m->Match(Iota(1, 0)).num_cached_tokens, 0);
  EXPECT_EQ(m->Match({}).num_cached_tokens, 0);
  EXPECT_EQ(m->Stats().num_prefix_lookups, 1);  // Match counts nothing
}

TEST(KvCacheManagerTest, KeysAreChainedOverThePrefix) {
  const std::vector<int32_t> block = Iota(4, 50);
  EXPECT_NE(ChainedBlockKey(kRootBlockKey, block),
            ChainedBlockKey(ChainedBlockKey(kRootBlockKey, Iota(4, 0)), block));
  auto m = MakeManager(10);
  Prefill(*m, 1, Concat(Iota(4, 0), Iota(5, 50)));  // [x][y][t]
  // The same content as block 1, but at the start of a prompt: no hit.
  EXPECT_EQ(m->Match(Iota(5, 50)).num_cached_tokens, 0);
  // The same second block after a different first block: no hit either.
  EXPECT_EQ(m->Match(Concat(Iota(4, 10), Iota(5, 50))).num_cached_tokens, 0);
  EXPECT_EQ(m->Match(Concat(Iota(4, 0), Iota(5, 50))).num_cached_tokens, 8);
}

BlockKey CollidingHasher(BlockKey /*parent_key*/, std::span<const int32_t> /*block_tokens*/) {
  return 42;
}

TEST(KvCacheManagerTest, KeyCollisionsNeverProduceAFalseHit) {
  auto m = MakeManager(10, &CollidingHasher);
  const std::vector<int32_t> a = Iota(9, 0);
  Prefill(*m, 1, a);  // block 0 takes key 42; block 1 collides and stays unkeyed
  EXPECT_EQ(m->Match(Iota(9, 100)).num_cached_tokens, 0);  // same key, other tokens
  EXPECT_EQ(m->Match(Concat(Iota(4, 0), Iota(5, 100))).num_cached_tokens, 4);
  // Block 1's tokens under key 42 would match block 0 only with the root as parent.
  EXPECT_EQ(m->Match(Concat(Iota(4, 0), Iota(5, 0))).num_cached_tokens, 4);
  EXPECT_EQ(m->Match(a).num_cached_tokens, 4);  // degraded, never wrong
  const std::optional<Admission> b = m->Admit(2, Iota(9, 100), 9);
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->num_cached_tokens, 0);
  EXPECT_THAT(Table(*m, 2), ElementsAre(3, 4, 5));
  EXPECT_TRUE(m->Validate().ok());
}

TEST(KvCacheManagerTest, ReleaseKeepsFullBlocksCachedAndEvictsThePrefixTailFirst) {
  auto m = MakeManager(4);
  const std::vector<int32_t> a = Iota(12, 0);
  Prefill(*m, 1, a);  // three full keyed blocks 0, 1, 2
  m->Release(1);
  KvCacheStats stats = m->Stats();
  EXPECT_EQ(stats.num_used_blocks, 0);
  EXPECT_EQ(stats.num_cached_blocks, 3);
  EXPECT_EQ(stats.num_free_blocks, 4);
  // Eviction order: the unkeyed block 3, then the prefix from its tail: 2, 1, 0.
  ASSERT_TRUE(m->Admit(2, Iota(8, 500), 8).has_value());
  EXPECT_THAT(Table(*m, 2), ElementsAre(3, 2));
  EXPECT_EQ(m->Stats().num_evictions, 1);
  EXPECT_EQ(m->Match(a).num_cached_tokens, 8);  // blocks 0 and 1 survive
  EXPECT_TRUE(m->Validate().ok());
}

TEST(KvCacheManagerTest, OldestReleasedSequenceIsEvictedFirst) {
  auto m = MakeManager(4);
  Prefill(*m, 1, Iota(4, 0));    // block 0 (full, keyed)
  Prefill(*m, 2, Iota(4, 100));  // block 1
  m->Release(2);
  m->Release(1);  // block 1 is now older in the LRU order than block 0
  ASSERT_TRUE(m->Admit(3, Iota(12, 900), 12).has_value());
  EXPECT_THAT(Table(*m, 3), ElementsAre(2, 3, 1));
  EXPECT_EQ(m->Match(Iota(5, 0)).num_cached_tokens, 4);
  EXPECT_EQ(m->Match(Iota(5, 100)).num_cached_tokens, 0);
}

TEST(KvCacheManagerTest, HitOnACachedBlockRevivesIt) {
  auto m = MakeManager(4);
  Prefill(*m, 1, Iota(9, 0));
  m->Release(1);
  EXPECT_EQ(m->Stats().num_cached_blocks, 2);
  ASSERT_TRUE(m->Admit(2, Iota(9, 0), 9).has_value());
  EXPECT_THAT(Table(*m, 2), ElementsAre(0, 1, 2));
  const KvCacheStats stats = m->Stats();
  EXPECT_EQ(stats.num_cached_blocks, 0);
  EXPECT_EQ(stats.num_used_blocks, 3);
  EXPECT_EQ(stats.num_evictions, 0);
  EXPECT_TRUE(m->Validate().ok());
}

TEST(KvCacheManagerTest, ForkSharesBlocksAndCopiesThePartialBlockOnFirstWrite) {
  auto m = MakeManager(8);
  Prefill(*m, 1, Iota(6, 0));  // block 0 full, block 1 holds 2 tokens
  m->Fork(1, 2);
  EXPECT_THAT(Table(*m, 2), ElementsAre(0, 1));
  EXPECT_EQ(m->NumComputedTokens(2), 6);
  EXPECT_EQ(m->Stats().num_used_blocks, 2);

  m->AppendTokens(2, std::vector<int32_t>{77});
  ASSERT_TRUE(m->Reserve(2, 1));  // the writer gets a private copy of block 1
  EXPECT_THAT(Table(*m, 2), ElementsAre(0, 2));
  EXPECT_THAT(Table(*m, 1), ElementsAre(0, 1));
  m->AppendTokens(1, std::vector<int32_t>{66});
  ASSERT_TRUE(m->Reserve(1, 1));  // block 1 is private again: no copy
  EXPECT_THAT(Table(*m, 1), ElementsAre(0, 1));
  EXPECT_THAT(m->TakePendingCopies(), ElementsAre(BlockCopy{.src_block = 1, .dst_block = 2}));
  EXPECT_THAT(m->TakePendingCopies(), IsEmpty());
  m->Commit(1, 1);
  m->Commit(2, 1);
  EXPECT_EQ(m->Stats().num_cow_copies, 1);
  EXPECT_TRUE(m->Validate().ok());
}

TEST(KvCacheManagerTest, ForkAtABlockBoundaryNeedsNoCopy) {
  auto m = MakeManager(8);
  Prefill(*m, 1, Iota(8, 0));
  m->Fork(1, 2);
  m->AppendTokens(2, std::vector<int32_t>{9});
  ASSERT_TRUE(m->Reserve(2, 1));
  EXPECT_THAT(Table(*m, 2), ElementsAre(0, 1, 2));
  EXPECT_THAT(m->TakePendingCopies(), IsEmpty());
  // Releasing a copy's writer before the copy is taken drops the copy.
  Prefill(*m, 3, Iota(6, 40));
  m->Fork(3, 4);
  m->AppendTokens(4, std::vector<int32_t>{1});
  ASSERT_TRUE(m->Reserve(4, 1));
  m->Release(4);
  EXPECT_THAT(m->TakePendingCopies(), IsEmpty());
  EXPECT_TRUE(m->Validate().ok());
}

TEST(KvCacheManagerTest, RefusalsLeaveAllStateUntouched) {
  auto m = MakeManager(4);
  Prefill(*m, 1, Iota(6, 0));  // blocks 0 (keyed), 1 (partial)
  m->Fork(1, 2);
  Prefill(*m, 3, Iota(8, 100));  // blocks 2, 3: the pool is full
  m->Release(3);                 // 2 and 3 cached, free again
  const KvCacheStats before = m->Stats();

  EXPECT_FALSE(m->Admit(4, Iota(13, 500), 13).has_value());  // needs 4 fresh blocks
  m->AppendTokens(1, Iota(12, 900));
  EXPECT_FALSE(m->Reserve(1, 11));  // copy-on-write + 3 more blocks > 2 free
  EXPECT_EQ(m->Stats().num_cached_blocks, before.num_cached_blocks);
  EXPECT_EQ(m->Stats().num_evictions, 0);
  EXPECT_EQ(m->Stats().num_prefix_lookups, before.num_prefix_lookups);
  EXPECT_FALSE(m->Contains(4));
  EXPECT_THAT(Table(*m, 1), ElementsAre(0, 1));
  EXPECT_EQ(m->NumComputedTokens(1), 6);
  EXPECT_THAT(m->TakePendingCopies(), IsEmpty());
  EXPECT_EQ(m->Match(Iota(9, 100)).num_cached_tokens, 8);  // cached blocks still findable
  // A hit on cached blocks counts against free blocks: 2 revived + 1 fresh > 2 free.
  EXPECT_FALSE(m->Admit(5, Iota(12, 100), 12).has_value());
  EXPECT_EQ(m->Stats().num_cached_blocks, 2);
  ASSERT_TRUE(m->Admit(5, Iota(9, 100), 0).has_value());  // 2 revived, the 9th token later
  EXPECT_THAT(Table(*m, 5), ElementsAre(2, 3));
  EXPECT_TRUE(m->Validate().ok());
}

TEST(KvCacheManagerTest, ChunkedPrefillReservesChunkByChunk) {
  auto m = MakeManager(8);
  const std::optional<Admission> admission = m->Admit(1, Iota(10, 0), 4);
  ASSERT_TRUE(admission.has_value());
  EXPECT_EQ(admission->num_new_tokens, 4);
  EXPECT_THAT(Table(*m, 1), ElementsAre(0));
  m->Commit(1, 4);
  ASSERT_TRUE(m->Reserve(1, 5));
  EXPECT_THAT(Table(*m, 1), ElementsAre(0, 1, 2));
  m->Commit(1, 5);
  ASSERT_TRUE(m->Reserve(1, 1));  // capacity already there
  EXPECT_THAT(Table(*m, 1), ElementsAre(0, 1, 2));
  m->Commit(1, 1);
  EXPECT_EQ(m->NumComputedTokens(1), 10);
  EXPECT_EQ(m->Match(Iota(10, 0)).num_cached_tokens, 8);
  EXPECT_TRUE(m->Validate().ok());
}

TEST(KvCacheManagerTest, CanEverFitAndSizing) {
  auto m = MakeManager(4);
  EXPECT_TRUE(m->CanEverFit(16));
  EXPECT_FALSE(m->CanEverFit(17));
  EXPECT_EQ(m->NumFreeBlocksForAdmission(), 4);
  EXPECT_EQ(NumBlocksForMemory(1000, 64), 15u);
  // Llama-3-8B, bf16, 16-token blocks: 2 * 32 layers * 8 heads * 128 dims * 16 * 2 bytes.
  EXPECT_EQ(KvBytesPerBlock(32, 8, 128, 16, 2), 2u * 1024 * 1024);
  EXPECT_EQ(NumBlocksForTokens(17, 16), 2);
}

TEST(KvCacheManagerTest, LeaseReleasesOnceAndIgnoresAReadmission) {
  auto m = MakeManager(4);
  {
    Prefill(*m, 1, Iota(6, 0));
    SequenceLease lease(m.get(), 1);
    SequenceLease moved = std::move(lease);
    EXPECT_FALSE(lease.active());  // NOLINT: checking the moved-from state
    EXPECT_TRUE(moved.active());
  }
  EXPECT_FALSE(m->Contains(1));
  EXPECT_EQ(m->Stats().num_used_blocks, 0);

  Prefill(*m, 1, Iota(6, 0));
  SequenceLease stale(m.get(), 1);
  m->Release(1);
  Prefill(*m, 1, Iota(6, 0));  // same id, new admission
  stale.Reset();
  EXPECT_TRUE(m->Contains(1));
  EXPECT_TRUE(m->Validate().ok());
}

// A speculative step: a sequence reserves room for its last token and three drafts, computes
// them, keeps one draft and drops the rest; only kept tokens' blocks are ever keyed.
TEST(KvCacheManagerTest, DroppedDraftTokensLeaveTheirBlocksReservedAndUnkeyed) {
  auto m = MakeManager(8);
  Prefill(*m, 1, Iota(6, 100));         // positions 0..5 computed
  m->AppendTokens(1, {{7, 8, 9, 10}});  // the sampled token, then three drafts
  ASSERT_TRUE(m->Reserve(1, 4));        // positions 6..9: block 2 joins the table
  EXPECT_EQ(Table(*m, 1).size(), 3U);
  m->DropTokens(1, 3);  // the pass computed all four; the drafts leave first
  m->Commit(1, 1);      // the sampled token at position 6
  EXPECT_EQ(m->NumTokens(1), 7);
  m->AppendTokens(1, {{8}});  // the first draft was accepted: its K/V at 7 is computed
  m->Commit(1, 1);
  EXPECT_EQ(m->NumComputedTokens(1), 8);
  EXPECT_EQ(Table(*m, 1).size(), 3U);  // the rejected drafts' block stays for later tokens
  EXPECT_TRUE(m->Validate().ok()) << m->Validate();
  // Blocks 0 and 1 (tokens 100..105, 7, 8) are full and findable; the dropped drafts never
  // made a key.
  EXPECT_EQ(m->Match(Concat(Iota(6, 100), {7, 8, 1})).num_cached_tokens, 8);
  EXPECT_EQ(m->Match(Concat(Iota(6, 100), {7, 8, 9, 10, 1})).num_cached_tokens, 8);
  m->AppendTokens(1, {{20, 21}});
  EXPECT_TRUE(m->Reserve(1, 2));  // positions 8, 9: already in the table
  EXPECT_EQ(Table(*m, 1).size(), 3U);
  EXPECT_EQ(m->Stats().num_used_blocks, 3);

  // Drafts all rejected: the block reserved only for them goes back free and unkeyed.
  Prefill(*m, 2, Iota(4, 200));
  m->AppendTokens(2, {{1, 2, 3, 4, 5}});
  ASSERT_TRUE(m->Reserve(2, 5));  // positions 4..8: blocks 1 and 2 of its table
  m->DropTokens(2, 4);
  m->Commit(2, 1);
  EXPECT_EQ(Table(*m, 2).size(), 3U);
  const int32_t used = m->Stats().num_used_blocks;
  m->ReleaseBlocksPastTokens(2);
  EXPECT_EQ(Table(*m, 2).size(), 2U);
  EXPECT_EQ(m->Stats().num_used_blocks, used - 1);
  EXPECT_EQ(m->Stats().num_cached_blocks, 0);
  m->ReleaseBlocksPastTokens(1);  // nothing past its tokens
  EXPECT_EQ(Table(*m, 1).size(), 3U);
  EXPECT_TRUE(m->Validate().ok()) << m->Validate();
}

// ---- the host tier ----

BlockCopy ToHost(BlockId block, HostSlot slot) {
  return {.src_block = block, .dst_block = slot, .kind = CopyKind::kToHost};
}
BlockCopy FromHost(HostSlot slot, BlockId block) {
  return {.src_block = slot, .dst_block = block, .kind = CopyKind::kFromHost};
}

TEST(KvCacheManagerTest, EvictedBlocksGoToHostMemoryAndComeBack) {
  auto m = MakeManager(4, &ChainedBlockKey, /*num_host_blocks=*/8);
  const std::vector<int32_t> a = Iota(12, 0);
  Prefill(*m, 1, a);  // blocks 0, 1, 2 keyed
  m->Release(1);
  EXPECT_THAT(m->TakePendingCopies(), IsEmpty());
  // Another prompt takes the whole pool: the three cached blocks are copied out as they go.
  Prefill(*m, 2, Iota(16, 500));
  EXPECT_THAT(Table(*m, 2), ElementsAre(3, 2, 1, 0));
  EXPECT_THAT(m->TakePendingCopies(), ElementsAre(ToHost(2, 0), ToHost(1, 1), ToHost(0, 2)));
  EXPECT_EQ(m->Match(a).num_cached_tokens, 8);  // the last token is left to compute
  EXPECT_EQ(m->Match(a).num_host_blocks, 2);
  m->Release(2);

  // The prompt again, with one more token: its first two blocks come back from host memory
  // into the blocks the allocation frees, after that allocation's own copies out.
  const std::vector<int32_t> a_longer = Iota(13, 0);
  const std::optional<Admission> admission = m->Admit(3, a_longer, 13);
  ASSERT_TRUE(admission.has_value());
  EXPECT_EQ(admission->num_cached_tokens, 12);
  EXPECT_EQ(admission->num_new_tokens, 1);
  const std::vector<BlockCopy> copies = m->TakePendingCopies();
  ASSERT_EQ(copies.size(), 7u);  // 4 of the second prompt's blocks out, 3 of a's back
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(copies[i].kind, CopyKind::kToHost) << i;
  const std::vector<BlockId> table = Table(*m, 3);
  ASSERT_EQ(table.size(), 4u);
  EXPECT_EQ(copies[4], FromHost(2, table[0]));
  EXPECT_EQ(copies[5], FromHost(1, table[1]));
  EXPECT_EQ(copies[6], FromHost(0, table[2]));
  const KvCacheStats stats = m->Stats();
  EXPECT_EQ(stats.num_host_hit_blocks, 3);
  EXPECT_EQ(stats.num_host_hit_tokens, 12);
  EXPECT_EQ(stats.num_hit_tokens, 12);
  EXPECT_EQ(stats.num_offloaded_blocks, 7);
  EXPECT_EQ(stats.num_host_blocks, 8);
  EXPECT_EQ(stats.num_host_stored_blocks, 7);
  // Restored blocks are indexed on the device: once released they stay cached there.
  m->Release(3);
  ASSERT_TRUE(m->Admit(4, a_longer, 13).has_value());
  EXPECT_THAT(Table(*m, 4), ElementsAre(table[0], table[1], table[2], ::testing::_));
  EXPECT_EQ(m->Stats().num_host_hit_blocks, 3);
  EXPECT_TRUE(m->Validate().ok()) << m->Validate();
}

TEST(KvCacheManagerTest, TheHostTierForgetsLeastRecentlyStoredBlocksFirst) {
  auto m = MakeManager(2, &ChainedBlockKey, /*num_host_blocks=*/2);
  for (SeqId seq = 1; seq <= 4; ++seq) {
    Prefill(*m, seq, Iota(5, static_cast<int32_t>(seq) * 100));  // one full keyed block each
    m->Release(seq);
  }
  // Each prompt evicted the one before it from the device; the host tier keeps two of them.
  EXPECT_EQ(m->Match(Iota(5, 100)).num_cached_tokens, 0);
  EXPECT_EQ(m->Match(Iota(5, 200)).num_host_blocks, 1);
  EXPECT_EQ(m->Match(Iota(5, 300)).num_host_blocks, 1);
  EXPECT_EQ(m->Match(Iota(5, 400)).num_host_blocks, 0);  // still on the device
  EXPECT_EQ(m->Match(Iota(5, 400)).num_cached_tokens, 4);
  EXPECT_EQ(m->Stats().num_host_evictions, 1);
  EXPECT_TRUE(m->Validate().ok()) << m->Validate();
}

TEST(KvCacheManagerTest, BlocksFoundInHostMemoryKeepTheirSlotsWhileAdmitted) {
  // The admission's own evictions would reuse the found slots (least recently used) if they
  // were not pinned: the copies back would then read other blocks' K/V.
  auto m = MakeManager(3, &ChainedBlockKey, /*num_host_blocks=*/2);
  const std::vector<int32_t> a = Iota(9, 0);
  Prefill(*m, 1, a);  // blocks 0, 1 keyed, 2 partial
  m->Release(1);
  // Evicts a's two blocks, tail first (the release order), into host slots 0 and 1.
  Prefill(*m, 2, Iota(9, 500));
  m->Release(2);
  m->TakePendingCopies();
  ASSERT_EQ(m->Match(a).num_host_blocks, 2);
  // Admitting a needs all three device blocks: two of them hold the second prompt's keyed
  // blocks, which have no free slot to go to.
  ASSERT_TRUE(m->Admit(3, a, 9).has_value());
  const std::vector<BlockCopy> copies = m->TakePendingCopies();
  const std::vector<BlockId> table = Table(*m, 3);
  EXPECT_THAT(copies, ElementsAre(FromHost(1, table[0]), FromHost(0, table[1])));
  EXPECT_EQ(m->Stats().num_offloaded_blocks, 2);
  EXPECT_TRUE(m->Validate().ok()) << m->Validate();
}

TEST(KvCacheManagerTest, WithoutAHostTierEvictedBlocksAreGone) {
  auto m = MakeManager(2);
  Prefill(*m, 1, Iota(5, 0));
  m->Release(1);
  Prefill(*m, 2, Iota(8, 100));
  EXPECT_THAT(m->TakePendingCopies(), IsEmpty());
  EXPECT_EQ(m->Match(Iota(5, 0)).num_cached_tokens, 0);
  EXPECT_EQ(m->Stats().num_host_blocks, 0);
}

}  // namespace
}  // namespace ringserve::kvcache
