// HostBlockIndex: the bookkeeping of the KV cache's host tier. When the device pool evicts a
// cached block to reuse it, its K/V can be copied into a slot of host memory (much larger
// than a GPU's) instead of being lost; a later prompt with that prefix copies it back
// rather than computing it again. This class only says which block key each host slot holds
// and which slot goes next; the model runner owns the host memory the slots index.
#ifndef RINGSERVE_KVCACHE_HOST_BLOCK_INDEX_H_
#define RINGSERVE_KVCACHE_HOST_BLOCK_INDEX_H_

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "kvcache/block_hash.h"
#include "kvcache/id_list.h"
#include "kvcache/keyed_blocks.h"

namespace ringserve::kvcache {

using HostSlot = int32_t;

// Owner: KvCacheManager. Thread: the engine thread only.
// Invariants (checked by Validate()):
//  - a slot has a key iff the index maps that key to it;
//  - every unpinned slot is on the LRU list once, empty slots before keyed ones, keyed ones
//    from least to most recently stored or found; pinned slots are on no list.
class HostBlockIndex {
 public:
  // num_slots > 0, block_size_tokens > 0 (checked).
  HostBlockIndex(int32_t num_slots, int32_t block_size_tokens);
  HostBlockIndex(const HostBlockIndex&) = delete;
  HostBlockIndex& operator=(const HostBlockIndex&) = delete;

  int32_t num_slots() const { return static_cast<int32_t>(pins_.size()); }
  int32_t NumStoredBlocks() const { return keys_.num_keyed(); }
  int64_t num_stores() const { return num_stores_; }
  int64_t num_evictions() const { return num_evictions_; }

  // The slot holding key with this parent key and these tokens (compared: keys may collide),
  // or nullopt. Changes nothing.
  std::optional<HostSlot> Find(BlockKey key, BlockKey parent_key,
                               std::span<const int32_t> block_tokens) const;

  // A slot to copy a block into, now holding key as the most recently used entry: an empty
  // one first, else the least recently used one (its key is forgotten). nullopt, and nothing
  // to copy, when the key is already held (it becomes the most recently used) or every
  // slot is pinned.
  std::optional<HostSlot> Store(BlockKey key, BlockKey parent_key,
                                std::span<const int32_t> block_tokens);

  // A pinned slot is never handed out by Store() (its block is being copied back to the
  // device in this step). Pins nest. Unpin makes the slot the most recently used.
  void Pin(HostSlot slot);
  void Unpin(HostSlot slot);

  absl::Status Validate() const;

 private:
  void CheckSlot(HostSlot slot) const;

  std::vector<int32_t> pins_;  // per slot
  KeyedBlocks keys_;
  IdList lru_;  // unpinned slots: empty first, then keyed from least recently used
  int64_t num_stores_ = 0;
  int64_t num_evictions_ = 0;
};

}  // namespace ringserve::kvcache

#endif  // RINGSERVE_KVCACHE_HOST_BLOCK_INDEX_H_
