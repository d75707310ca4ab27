#include "kvcache/block_pool.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/check.h"

namespace ringserve::kvcache {

BlockPool::BlockPool(int32_t num_blocks, int32_t block_size_tokens)
    : block_size_tokens_(block_size_tokens), free_list_(num_blocks) {
  RS_CHECK(num_blocks > 0);
  RS_CHECK(block_size_tokens > 0);
  blocks_.resize(static_cast<size_t>(num_blocks));
  block_tokens_.resize(static_cast<size_t>(num_blocks) * static_cast<size_t>(block_size_tokens));
  for (BlockId id = 0; id < num_blocks; ++id) free_list_.PushBack(id);
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
  if (num_blocks > free_list_.size()) return false;
  out->reserve(out->size() + static_cast<size_t>(num_blocks));
  for (int32_t i = 0; i < num_blocks; ++i) {
    const BlockId block = free_list_.front();
    free_list_.Remove(block);
    if (const Block& b = blocks_[block]; b.has_key) {
      --num_cached_blocks_;
      if (on_evict_) on_evict_(block, b.key, b.parent_key, TokensOf(block));
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
    free_list_.Remove(block);
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

std::vector<BlockId> BlockPool::FreeBlocksInEvictionOrder() const { return free_list_.ToVector(); }

// Walks the free list: each entry once, free, correctly linked, unkeyed before cached.
absl::Status BlockPool::ValidateFreeList(std::vector<bool>* on_list) const {
  if (absl::Status status = free_list_.Validate(); !status.ok()) return status;
  const std::vector<BlockId> order = FreeBlocksInEvictionOrder();
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
