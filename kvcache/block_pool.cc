#include "kvcache/block_pool.h"

#include "absl/strings/str_cat.h"
#include "common/check.h"

namespace ringserve::kvcache {

BlockPool::BlockPool(int32_t num_blocks, int32_t block_size_tokens)
    : block_size_tokens_(block_size_tokens),
      keys_(num_blocks, block_size_tokens),
      free_list_(num_blocks) {
  ref_counts_.resize(static_cast<size_t>(num_blocks));
  for (BlockId id = 0; id < num_blocks; ++id) free_list_.PushBack(id);
}

void BlockPool::CheckId(BlockId block) const { RS_CHECK(block >= 0 && block < num_blocks()); }

int32_t BlockPool::RefCount(BlockId block) const {
  CheckId(block);
  return ref_counts_[block];
}

bool BlockPool::HasKey(BlockId block) const { return keys_.HasKey(block); }

bool BlockPool::Allocate(int32_t num_blocks, std::vector<BlockId>* out) {
  RS_CHECK(num_blocks >= 0);
  if (num_blocks > free_list_.size()) return false;
  out->reserve(out->size() + static_cast<size_t>(num_blocks));
  for (int32_t i = 0; i < num_blocks; ++i) {
    const BlockId block = free_list_.front();
    free_list_.Remove(block);
    if (keys_.HasKey(block)) {
      --num_cached_blocks_;
      if (on_evict_) {
        on_evict_(block, keys_.KeyOf(block), keys_.ParentOf(block), keys_.TokensOf(block));
      }
      keys_.Drop(block);
      ++num_evictions_;
    }
    ref_counts_[block] = 1;
    out->push_back(block);
  }
  return true;
}

std::optional<BlockId> BlockPool::Find(BlockKey key, BlockKey parent_key,
                                       std::span<const int32_t> block_tokens) const {
  return keys_.Find(key, parent_key, block_tokens);
}

void BlockPool::Acquire(BlockId block) {
  CheckId(block);
  if (ref_counts_[block] == 0) {
    free_list_.Remove(block);
    if (keys_.HasKey(block)) --num_cached_blocks_;
  }
  ++ref_counts_[block];
}

void BlockPool::Release(BlockId block) {
  CheckId(block);
  RS_CHECK(ref_counts_[block] > 0);
  if (--ref_counts_[block] > 0) return;
  if (keys_.HasKey(block)) {
    free_list_.PushBack(block);
    ++num_cached_blocks_;
  } else {
    free_list_.PushFront(block);
  }
}

bool BlockPool::Register(BlockId block, BlockKey key, BlockKey parent_key,
                         std::span<const int32_t> block_tokens) {
  CheckId(block);
  RS_CHECK(static_cast<int32_t>(block_tokens.size()) == block_size_tokens_);
  RS_CHECK(ref_counts_[block] > 0);
  return keys_.Set(block, key, parent_key, block_tokens);
}

std::vector<BlockId> BlockPool::FreeBlocksInEvictionOrder() const { return free_list_.ToVector(); }

// Walks the free list: each entry once, free, correctly linked, unkeyed before cached.
absl::Status BlockPool::ValidateFreeList(std::vector<bool>* on_list) const {
  if (absl::Status status = free_list_.Validate(); !status.ok()) return status;
  const std::vector<BlockId> order = FreeBlocksInEvictionOrder();
  on_list->assign(ref_counts_.size(), false);
  bool seen_cached = false;
  int32_t num_cached = 0;
  for (size_t i = 0; i < order.size(); ++i) {
    const BlockId id = order[i];
    if ((*on_list)[id]) return absl::InternalError(absl::StrCat("block ", id, " listed twice"));
    (*on_list)[id] = true;
    if (ref_counts_[id] != 0) {
      return absl::InternalError(
          absl::StrCat("free block ", id, " has refcount ", ref_counts_[id]));
    }
    if (keys_.HasKey(id)) {
      seen_cached = true;
      ++num_cached;
    } else if (seen_cached) {
      return absl::InternalError(absl::StrCat("unkeyed block ", id, " after a cached one"));
    }
  }
  if (num_cached != num_cached_blocks_) {
    return absl::InternalError(
        absl::StrCat("cached count ", num_cached_blocks_, " != ", num_cached));
  }
  return absl::OkStatus();
}

absl::Status BlockPool::Validate() const {
  std::vector<bool> on_list;
  if (absl::Status status = ValidateFreeList(&on_list); !status.ok()) return status;
  for (BlockId id = 0; id < num_blocks(); ++id) {
    if (ref_counts_[id] < 0)
      return absl::InternalError(absl::StrCat("block ", id, " refcount < 0"));
    if (ref_counts_[id] == 0 && !on_list[id]) {
      return absl::InternalError(absl::StrCat("free block ", id, " is not on the free list"));
    }
  }
  return keys_.Validate();
}

}  // namespace ringserve::kvcache
