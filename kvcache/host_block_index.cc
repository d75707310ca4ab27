#include "kvcache/host_block_index.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/check.h"

namespace ringserve::kvcache {

HostBlockIndex::HostBlockIndex(int32_t num_slots, int32_t block_size_tokens)
    : block_size_tokens_(block_size_tokens), lru_(num_slots) {
  RS_CHECK(num_slots > 0);
  RS_CHECK(block_size_tokens > 0);
  slots_.resize(static_cast<size_t>(num_slots));
  slot_tokens_.resize(static_cast<size_t>(num_slots) * static_cast<size_t>(block_size_tokens));
  for (HostSlot slot = 0; slot < num_slots; ++slot) lru_.PushBack(slot);
}

void HostBlockIndex::CheckSlot(HostSlot slot) const { RS_CHECK(slot >= 0 && slot < num_slots()); }

std::span<const int32_t> HostBlockIndex::TokensOf(HostSlot slot) const {
  return std::span<const int32_t>(slot_tokens_)
      .subspan(static_cast<size_t>(slot) * static_cast<size_t>(block_size_tokens_),
               static_cast<size_t>(block_size_tokens_));
}

std::optional<HostSlot> HostBlockIndex::Find(BlockKey key, BlockKey parent_key,
                                             std::span<const int32_t> block_tokens) const {
  const auto it = index_.find(key);
  if (it == index_.end()) return std::nullopt;
  const HostSlot slot = it->second;
  if (slots_[static_cast<size_t>(slot)].parent_key != parent_key) return std::nullopt;
  const std::span<const int32_t> stored = TokensOf(slot);
  if (!std::equal(stored.begin(), stored.end(), block_tokens.begin(), block_tokens.end())) {
    return std::nullopt;
  }
  return slot;
}

std::optional<HostSlot> HostBlockIndex::Store(BlockKey key, BlockKey parent_key,
                                              std::span<const int32_t> block_tokens) {
  RS_CHECK(static_cast<int32_t>(block_tokens.size()) == block_size_tokens_);
  if (const auto it = index_.find(key); it != index_.end()) {
    // Held already (the same K/V, or a colliding key whose entry stays): refresh its age.
    if (lru_.Contains(it->second)) {
      lru_.Remove(it->second);
      lru_.PushBack(it->second);
    }
    return std::nullopt;
  }
  if (lru_.empty()) return std::nullopt;
  const HostSlot slot = lru_.front();
  lru_.Remove(slot);
  Slot& s = slots_[static_cast<size_t>(slot)];
  if (s.has_key) {
    index_.erase(s.key);
    ++num_evictions_;
  }
  s.has_key = true;
  s.key = key;
  s.parent_key = parent_key;
  std::copy(block_tokens.begin(), block_tokens.end(),
            slot_tokens_.begin() + static_cast<ptrdiff_t>(slot) * block_size_tokens_);
  index_.emplace(key, slot);
  lru_.PushBack(slot);
  ++num_stores_;
  return slot;
}

void HostBlockIndex::Pin(HostSlot slot) {
  CheckSlot(slot);
  Slot& s = slots_[static_cast<size_t>(slot)];
  if (s.pins++ == 0) lru_.Remove(slot);
}

void HostBlockIndex::Unpin(HostSlot slot) {
  CheckSlot(slot);
  Slot& s = slots_[static_cast<size_t>(slot)];
  RS_CHECK(s.pins > 0);
  if (--s.pins == 0) lru_.PushBack(slot);
}

absl::Status HostBlockIndex::Validate() const {
  if (absl::Status status = lru_.Validate(); !status.ok()) return status;
  bool seen_keyed = false;
  for (const HostSlot slot : lru_.ToVector()) {
    const Slot& s = slots_[static_cast<size_t>(slot)];
    if (s.pins != 0) return absl::InternalError(absl::StrCat("pinned slot ", slot, " is listed"));
    if (s.has_key) {
      seen_keyed = true;
    } else if (seen_keyed) {
      return absl::InternalError(absl::StrCat("empty slot ", slot, " after a keyed one"));
    }
  }
  size_t num_keyed = 0;
  for (HostSlot slot = 0; slot < num_slots(); ++slot) {
    const Slot& s = slots_[static_cast<size_t>(slot)];
    if ((s.pins == 0) != lru_.Contains(slot)) {
      return absl::InternalError(absl::StrCat("slot ", slot, " with ", s.pins, " pins is ",
                                              lru_.Contains(slot) ? "" : "not ", "listed"));
    }
    if (!s.has_key) continue;
    ++num_keyed;
    const auto it = index_.find(s.key);
    if (it == index_.end() || it->second != slot) {
      return absl::InternalError(absl::StrCat("keyed slot ", slot, " is not indexed"));
    }
  }
  if (num_keyed != index_.size()) {
    return absl::InternalError(
        absl::StrCat("index has ", index_.size(), " entries, ", num_keyed, " keyed slots"));
  }
  return absl::OkStatus();
}

}  // namespace ringserve::kvcache
