// BlockPool: the KV blocks of one worker as bookkeeping (ids, refcounts, prefix index).
// The K/V tensors themselves belong to the model runner and are indexed by block id.
#ifndef RINGSERVE_KVCACHE_BLOCK_POOL_H_
#define RINGSERVE_KVCACHE_BLOCK_POOL_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "kvcache/block_hash.h"
#include "kvcache/id_list.h"
#include "kvcache/keyed_blocks.h"

namespace ringserve::kvcache {

using BlockId = int32_t;
inline constexpr BlockId kNoBlock = -1;

// Every block is created up front (vLLM v1 block_pool.py). A block is "used" while its
// refcount is > 0 and "free" otherwise; a free block that still has a key is "cached": it can
// be found by Find() and revived by Acquire() until it is handed out again.
//
// Owner: KvCacheManager (one per worker); the scheduler never sees this class.
// Thread: the engine thread only. Single-threaded by design: no locks, no atomics.
// Invariants (checked by Validate()):
//  - a block is on the free list iff its refcount is 0, and appears there once;
//  - the free list is in eviction order: Allocate() takes from the head. Free blocks without
//    a key come first (they hold nothing worth keeping, so a just-freed one is reused first),
//    then cached blocks from least to most recently freed (LRU);
//  - a block has a key iff the prefix index maps that key to it; the key and the block's
//    tokens stay after the block is freed and are dropped only when Allocate() hands the block
//    out again (eviction on reuse);
//  - NumUsedBlocks() + NumFreeBlocks() == num_blocks().
class BlockPool {
 public:
  // num_blocks > 0, block_size_tokens > 0 (checked).
  BlockPool(int32_t num_blocks, int32_t block_size_tokens);
  BlockPool(const BlockPool&) = delete;
  BlockPool& operator=(const BlockPool&) = delete;

  int32_t num_blocks() const { return static_cast<int32_t>(ref_counts_.size()); }
  int32_t block_size_tokens() const { return block_size_tokens_; }
  int32_t NumFreeBlocks() const { return free_list_.size(); }
  int32_t NumUsedBlocks() const { return num_blocks() - free_list_.size(); }
  int32_t NumCachedBlocks() const { return num_cached_blocks_; }
  int64_t num_evictions() const { return num_evictions_; }

  int32_t RefCount(BlockId block) const;
  bool HasKey(BlockId block) const;

  // Called with a cached block's key, parent key and tokens as Allocate() evicts it, while the
  // block still holds that K/V: the host tier copies it out (KvCacheManager).
  using EvictionListener = std::function<void(BlockId block, BlockKey key, BlockKey parent_key,
                                              std::span<const int32_t> block_tokens)>;
  void SetEvictionListener(EvictionListener listener) { on_evict_ = std::move(listener); }

  // Appends num_blocks blocks (refcount 1, no key) from the head of the free list to *out,
  // evicting the keys of cached blocks it hands out. All-or-nothing: when fewer than
  // num_blocks are free, returns false and changes nothing.
  [[nodiscard]] bool Allocate(int32_t num_blocks, std::vector<BlockId>* out);

  // The block indexed under key whose stored parent key and tokens equal the arguments, or
  // nullopt. Comparing the content defends against key collisions. Does not change state.
  std::optional<BlockId> Find(BlockKey key, BlockKey parent_key,
                              std::span<const int32_t> block_tokens) const;

  // Refcount + 1. A free (cached) block leaves the free list: a prefix hit revives it.
  void Acquire(BlockId block);

  // Refcount - 1. At 0 the block joins the free list: at the tail when it has a key (cached,
  // most recently used), at the head otherwise.
  void Release(BlockId block);

  // Indexes a full, used block under key, storing its parent key and block_size_tokens token
  // ids. Returns false and changes nothing when the block already has a key or another block
  // holds this key (a duplicate computed by a sequence that started before the first one was
  // committed; the first keeps the entry).
  bool Register(BlockId block, BlockKey key, BlockKey parent_key,
                std::span<const int32_t> block_tokens);

  // Free blocks from head (next handed out) to tail. For tests and debugging: O(free blocks).
  std::vector<BlockId> FreeBlocksInEvictionOrder() const;

  // Checks every invariant above; O(num_blocks). For tests and debug builds.
  absl::Status Validate() const;

 private:
  void CheckId(BlockId block) const;
  absl::Status ValidateFreeList(std::vector<bool>* on_list) const;

  int32_t block_size_tokens_;
  std::vector<int32_t> ref_counts_;
  KeyedBlocks keys_;  // the prefix index: full blocks' keys, parent keys and tokens
  IdList free_list_;  // refcount-0 blocks in eviction order
  EvictionListener on_evict_;
  int32_t num_cached_blocks_ = 0;  // free blocks with a key
  int64_t num_evictions_ = 0;
};

}  // namespace ringserve::kvcache

#endif  // RINGSERVE_KVCACHE_BLOCK_POOL_H_
