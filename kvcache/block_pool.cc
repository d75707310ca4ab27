#include "kvcache/block_pool.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/check.h"

namespace ringserve::kvcache {

BlockPool::BlockPool(int32_t num_blocks, int32_t block_size_tokens)
    : block_size_tokens_(block_size_tokens) {
  RS_CHECK(num_blocks > 0);
  RS_CHECK(block_size_tokens > 0);
  blocks_.resize(static_cast<size_t>(num_blocks));
  block_tokens_.resize(static_cast<size_t>(num_blocks) * static_cast<size_t>(block_size_tokens));
  for (BlockId id = 0; id < num_blocks; ++id) PushBack(id);
}

void BlockPool::CheckId(BlockId block) const { RS_CHECK(block >= 0 && block < num_blocks()); }

int32_t BlockPool::RefCount(BlockId block) const {
  CheckId(block);
  return blocks_[block].ref_count;
}

bool BlockPool::HasKey(BlockId block) const {
  CheckId(block);
  return blocks_[block].has_key;
}

std::span<const int32_t> BlockPool::TokensOf(BlockId block) const {
  return std::span<const int32_t>(block_tokens_)
      .subspan(static_cast<size_t>(block) * block_size_tokens_, block_size_tokens_);
}

bool BlockPool::Allocate(int32_t num_blocks, std::vector<BlockId>* out) {
  RS_CHECK(num_blocks >= 0);
  if (num_blocks > num_free_blocks_) return false;
  out->reserve(out->size() + static_cast<size_t>(num_blocks));
  for (int32_t i = 0; i < num_blocks; ++i) {
    const BlockId block = free_head_;
    Unlink(block);
    if (blocks_[block].has_key) {
      --num_cached_blocks_;
      DropKey(block);
      ++num_evictions_;
    }
    blocks_[block].ref_count = 1;
    out->push_back(block);
  }
  return true;
}

std::optional<BlockId> BlockPool::Find(BlockKey key, BlockKey parent_key,
                                       std::span<const int32_t> block_tokens) const {
  const auto it = index_.find(key);
  if (it == index_.end()) return std::nullopt;
  const BlockId block = it->second;
  if (blocks_[block].parent_key != parent_key) return std::nullopt;
  const std::span<const int32_t> stored = TokensOf(block);
  if (!std::equal(stored.begin(), stored.end(), block_tokens.begin(), block_tokens.end())) {
    return std::nullopt;
  }
  return block;
}

void BlockPool::Acquire(BlockId block) {
  CheckId(block);
  Block& b = blocks_[block];
  if (b.ref_count == 0) {
    Unlink(block);
    if (b.has_key) --num_cached_blocks_;
  }
  ++b.ref_count;
}

void BlockPool::Release(BlockId block) {
  CheckId(block);
  Block& b = blocks_[block];
  RS_CHECK(b.ref_count > 0);
  if (--b.ref_count > 0) return;
  if (b.has_key) {
    PushBack(block);
    ++num_cached_blocks_;
  } else {
    PushFront(block);
  }
}

bool BlockPool::Register(BlockId block, BlockKey key, BlockKey parent_key,
                         std::span<const int32_t> block_tokens) {
  CheckId(block);
  RS_CHECK(static_cast<int32_t>(block_tokens.size()) == block_size_tokens_);
  Block& b = blocks_[block];
  RS_CHECK(b.ref_count > 0);
  if (b.has_key) return false;
  const auto [it, inserted] = index_.try_emplace(key, block);
  if (!inserted) return false;
  b.has_key = true;
  b.key = key;
  b.parent_key = parent_key;
  std::copy(block_tokens.begin(), block_tokens.end(),
            block_tokens_.begin() + static_cast<ptrdiff_t>(block) * block_size_tokens_);
  return true;
}

void BlockPool::DropKey(BlockId block) {
  Block& b = blocks_[block];
  index_.erase(b.key);
  b.has_key = false;
  b.key = 0;
  b.parent_key = 0;
}

void BlockPool::PushFront(BlockId block) {
  Block& b = blocks_[block];
  b.prev_free = kNoBlock;
  b.next_free = free_head_;
  if (free_head_ != kNoBlock) blocks_[free_head_].prev_free = block;
  free_head_ = block;
  if (free_tail_ == kNoBlock) free_tail_ = block;
  ++num_free_blocks_;
}

void BlockPool::PushBack(BlockId block) {
  Block& b = blocks_[block];
  b.next_free = kNoBlock;
  b.prev_free = free_tail_;
  if (free_tail_ != kNoBlock) blocks_[free_tail_].next_free = block;
  free_tail_ = block;
  if (free_head_ == kNoBlock) free_head_ = block;
  ++num_free_blocks_;
}

void BlockPool::Unlink(BlockId block) {
  Block& b = blocks_[block];
  if (b.prev_free != kNoBlock) {
    blocks_[b.prev_free].next_free = b.next_free;
  } else {
    free_head_ = b.next_free;
  }
  if (b.next_free != kNoBlock) {
    blocks_[b.next_free].prev_free = b.prev_free;
  } else {
    free_tail_ = b.prev_free;
  }
  b.prev_free = kNoBlock;
  b.next_free = kNoBlock;
  --num_free_blocks_;
}

std::vector<BlockId> BlockPool::FreeBlocksInEvictionOrder() const {
  std::vector<BlockId> order;
  for (BlockId b = free_head_; b != kNoBlock && order.size() <= blocks_.size();
       b = blocks_[b].next_free) {
    order.push_back(b);
  }
  return order;
}

// Walks the free list: each entry once, free, correctly linked, unkeyed before cached.
absl::Status BlockPool::ValidateFreeList(std::vector<bool>* on_list) const {
  const std::vector<BlockId> order = FreeBlocksInEvictionOrder();
  if (static_cast<int32_t>(order.size()) != num_free_blocks_) {
    return absl::InternalError(absl::StrCat("free list has ", order.size(), " entries, count is ",
                                            num_free_blocks_, " (or the list has a cycle)"));
  }
  on_list->assign(blocks_.size(), false);
  bool seen_cached = false;
  int32_t num_cached = 0;
  for (size_t i = 0; i < order.size(); ++i) {
    const BlockId id = order[i];
    const Block& b = blocks_[id];
    if ((*on_list)[id]) return absl::InternalError(absl::StrCat("block ", id, " listed twice"));
    (*on_list)[id] = true;
    if (b.ref_count != 0) {
      return absl::InternalError(absl::StrCat("free block ", id, " has refcount ", b.ref_count));
    }
    if (b.prev_free != (i == 0 ? kNoBlock : order[i - 1])) {
      return absl::InternalError(absl::StrCat("block ", id, " has a bad prev link"));
    }
    if (b.has_key) {
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
  if (free_tail_ != (order.empty() ? kNoBlock : order.back())) {
    return absl::InternalError("free list tail is wrong");
  }
  return absl::OkStatus();
}

absl::Status BlockPool::Validate() const {
  std::vector<bool> on_list;
  if (absl::Status status = ValidateFreeList(&on_list); !status.ok()) return status;
  size_t num_keyed = 0;
  for (BlockId id = 0; id < num_blocks(); ++id) {
    const Block& b = blocks_[id];
    if (b.ref_count < 0) return absl::InternalError(absl::StrCat("block ", id, " refcount < 0"));
    if (b.ref_count == 0 && !on_list[id]) {
      return absl::InternalError(absl::StrCat("free block ", id, " is not on the free list"));
    }
    if (!b.has_key) continue;
    ++num_keyed;
    const auto it = index_.find(b.key);
    if (it == index_.end() || it->second != id) {
      return absl::InternalError(absl::StrCat("keyed block ", id, " is not indexed"));
    }
  }
  if (num_keyed != index_.size()) {
    return absl::InternalError(
        absl::StrCat("index has ", index_.size(), " entries, ", num_keyed, " keyed blocks"));
  }
  return absl::OkStatus();
}

}  // namespace ringserve::kvcache
