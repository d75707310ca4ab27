#include "kvcache/keyed_blocks.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/check.h"

namespace ringserve::kvcache {

KeyedBlocks::KeyedBlocks(int32_t size, int32_t block_size_tokens)
    : block_size_tokens_(block_size_tokens) {
  RS_CHECK(size > 0);
  RS_CHECK(block_size_tokens > 0);
  entries_.resize(static_cast<size_t>(size));
  tokens_.resize(static_cast<size_t>(size) * static_cast<size_t>(block_size_tokens));
}

const KeyedBlocks::Entry& KeyedBlocks::entry(int32_t id) const {
  RS_CHECK(id >= 0 && static_cast<size_t>(id) < entries_.size());
  return entries_[static_cast<size_t>(id)];
}

std::span<const int32_t> KeyedBlocks::TokensOf(int32_t id) const {
  static_cast<void>(entry(id));  // checks the id
  return std::span<const int32_t>(tokens_).subspan(
      static_cast<size_t>(id) * static_cast<size_t>(block_size_tokens_),
      static_cast<size_t>(block_size_tokens_));
}

std::optional<int32_t> KeyedBlocks::IdOf(BlockKey key) const {
  const auto it = index_.find(key);
  if (it == index_.end()) return std::nullopt;
  return it->second;
}

std::optional<int32_t> KeyedBlocks::Find(BlockKey key, BlockKey parent_key,
                                         std::span<const int32_t> block_tokens) const {
  const std::optional<int32_t> id = IdOf(key);
  if (!id.has_value() || entry(*id).parent_key != parent_key) return std::nullopt;
  const std::span<const int32_t> stored = TokensOf(*id);
  if (!std::equal(stored.begin(), stored.end(), block_tokens.begin(), block_tokens.end())) {
    return std::nullopt;
  }
  return id;
}

bool KeyedBlocks::Set(int32_t id, BlockKey key, BlockKey parent_key,
                      std::span<const int32_t> block_tokens) {
  RS_CHECK(static_cast<int32_t>(block_tokens.size()) == block_size_tokens_);
  if (entry(id).has_key) return false;
  if (!index_.try_emplace(key, id).second) return false;
  entries_[static_cast<size_t>(id)] = Entry{.has_key = true, .key = key, .parent_key = parent_key};
  std::copy(block_tokens.begin(), block_tokens.end(),
            tokens_.begin() + static_cast<ptrdiff_t>(id) * block_size_tokens_);
  return true;
}

void KeyedBlocks::Drop(int32_t id) {
  RS_CHECK(entry(id).has_key);
  index_.erase(entries_[static_cast<size_t>(id)].key);
  entries_[static_cast<size_t>(id)] = Entry{};
}

absl::Status KeyedBlocks::Validate() const {
  size_t num_keyed = 0;
  for (size_t id = 0; id < entries_.size(); ++id) {
    const Entry& e = entries_[id];
    if (!e.has_key) continue;
    ++num_keyed;
    const auto it = index_.find(e.key);
    if (it == index_.end() || it->second != static_cast<int32_t>(id)) {
      return absl::InternalError(absl::StrCat("keyed id ", id, " is not indexed"));
    }
  }
  if (num_keyed != index_.size()) {
    return absl::InternalError(
        absl::StrCat("index has ", index_.size(), " entries, ", num_keyed, " keyed ids"));
  }
  return absl::OkStatus();
}

}  // namespace ringserve::kvcache
