// KeyedBlocks: which content key each of the dense ids [0, size) holds (device blocks in the
// block pool, host slots in the host tier), with the parent key and token ids a lookup
// compares, since keys may collide.
#ifndef RINGSERVE_KVCACHE_KEYED_BLOCKS_H_
#define RINGSERVE_KVCACHE_KEYED_BLOCKS_H_

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "kvcache/block_hash.h"

namespace ringserve::kvcache {

// Thread: its owner's (the engine thread). Invariant (Validate): an id has a key iff the
// index maps that key to it.
class KeyedBlocks {
 public:
  // size > 0 and block_size_tokens > 0 (checked).
  KeyedBlocks(int32_t size, int32_t block_size_tokens);

  int32_t num_keyed() const { return static_cast<int32_t>(index_.size()); }
  bool HasKey(int32_t id) const { return entry(id).has_key; }
  // The id's key, parent key and tokens; meaningful while HasKey(id).
  BlockKey KeyOf(int32_t id) const { return entry(id).key; }
  BlockKey ParentOf(int32_t id) const { return entry(id).parent_key; }
  std::span<const int32_t> TokensOf(int32_t id) const;

  // The id holding key, whatever its content, or nullopt.
  std::optional<int32_t> IdOf(BlockKey key) const;
  // The id holding key with this parent key and these tokens, or nullopt.
  std::optional<int32_t> Find(BlockKey key, BlockKey parent_key,
                              std::span<const int32_t> block_tokens) const;
  // Gives id the key, its parent key and its tokens (block_size_tokens of them). False, and
  // nothing changed, when the id has a key or another id holds this one.
  bool Set(int32_t id, BlockKey key, BlockKey parent_key, std::span<const int32_t> block_tokens);
  // Forgets the id's key (it must have one).
  void Drop(int32_t id);

  absl::Status Validate() const;

 private:
  struct Entry {
    bool has_key = false;
    BlockKey key = 0;
    BlockKey parent_key = 0;
  };
  const Entry& entry(int32_t id) const;

  int32_t block_size_tokens_;
  std::vector<Entry> entries_;
  std::vector<int32_t> tokens_;  // size * block_size_tokens; an id's are valid while keyed
  absl::flat_hash_map<BlockKey, int32_t> index_;
};

}  // namespace ringserve::kvcache

#endif  // RINGSERVE_KVCACHE_KEYED_BLOCKS_H_
