#include "kvcache/host_block_index.h"

#include "absl/strings/str_cat.h"
#include "common/check.h"

namespace ringserve::kvcache {

HostBlockIndex::HostBlockIndex(int32_t num_slots, int32_t block_size_tokens)
    : keys_(num_slots, block_size_tokens), lru_(num_slots) {
  pins_.resize(static_cast<size_t>(num_slots));
  for (HostSlot slot = 0; slot < num_slots; ++slot) lru_.PushBack(slot);
}

void HostBlockIndex::CheckSlot(HostSlot slot) const { RS_CHECK(slot >= 0 && slot < num_slots()); }

std::optional<HostSlot> HostBlockIndex::Find(BlockKey key, BlockKey parent_key,
                                             std::span<const int32_t> block_tokens) const {
  return keys_.Find(key, parent_key, block_tokens);
}

std::optional<HostSlot> HostBlockIndex::Store(BlockKey key, BlockKey parent_key,
                                              std::span<const int32_t> block_tokens) {
  if (const std::optional<HostSlot> held = keys_.IdOf(key)) {
    // Held already (the same K/V, or a colliding key whose entry stays): refresh its age.
    if (lru_.Contains(*held)) {
      lru_.Remove(*held);
      lru_.PushBack(*held);
    }
    return std::nullopt;
  }
  if (lru_.empty()) return std::nullopt;
  const HostSlot slot = lru_.front();
  lru_.Remove(slot);
  if (keys_.HasKey(slot)) {
    keys_.Drop(slot);
    ++num_evictions_;
  }
  RS_CHECK(keys_.Set(slot, key, parent_key, block_tokens));
  lru_.PushBack(slot);
  ++num_stores_;
  return slot;
}

void HostBlockIndex::Pin(HostSlot slot) {
  CheckSlot(slot);
  if (pins_[static_cast<size_t>(slot)]++ == 0) lru_.Remove(slot);
}

void HostBlockIndex::Unpin(HostSlot slot) {
  CheckSlot(slot);
  int32_t& pins = pins_[static_cast<size_t>(slot)];
  RS_CHECK(pins > 0);
  if (--pins == 0) lru_.PushBack(slot);
}

absl::Status HostBlockIndex::Validate() const {
  if (absl::Status status = lru_.Validate(); !status.ok()) return status;
  bool seen_keyed = false;
  for (const HostSlot slot : lru_.ToVector()) {
    if (keys_.HasKey(slot)) {
      seen_keyed = true;
    } else if (seen_keyed) {
      return absl::InternalError(absl::StrCat("empty slot ", slot, " after a keyed one"));
    }
  }
  for (HostSlot slot = 0; slot < num_slots(); ++slot) {
    const int32_t pins = pins_[static_cast<size_t>(slot)];
    if ((pins == 0) != lru_.Contains(slot)) {
      return absl::InternalError(absl::StrCat("slot ", slot, " with ", pins, " pins is ",
                                              lru_.Contains(slot) ? "" : "not ", "listed"));
    }
  }
  return keys_.Validate();
}

}  // namespace ringserve::kvcache
