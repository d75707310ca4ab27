#include "worker/grammar/token_constraint.h"

#include <algorithm>
#include <limits>
#include <utility>

namespace ringserve::grammar {

TokenConstraint::TokenConstraint(Matcher matcher, const TokenTrie* trie,
                                 std::vector<int32_t> end_ids)
    : matcher_(std::move(matcher)), trie_(trie), end_ids_(std::move(end_ids)) {
  std::erase_if(end_ids_, [&](int32_t id) { return id < 0 || id >= trie_->vocab_size(); });
}

const TokenConstraint::CachedMask& TokenConstraint::MaskOfState() {
  const int64_t now = num_walks_ + num_cache_hits_ + 1;
  // One token moves the text at most max_token_bytes(), so states whose keys for that far
  // are equal allow the same tokens.
  Matcher key = matcher_.MaskKey(trie_->max_token_bytes());
  for (CachedMask& entry : cache_) {
    if (entry.state.has_value() && *entry.state == key) {
      ++num_cache_hits_;
      entry.last_used = now;
      return entry;
    }
  }
  ++num_walks_;
  CachedMask& entry = *std::min_element(
      cache_.begin(), cache_.end(),
      [](const CachedMask& a, const CachedMask& b) { return a.last_used < b.last_used; });
  entry.state = std::move(key);
  entry.last_used = now;
  entry.num_allowed = trie_->Allowed(matcher_, scratch_, &entry.allowed);
  if (matcher_.IsComplete() || entry.num_allowed == 0) {  // the end tokens may come now
    for (const int32_t id : end_ids_) {
      if (HasToken(entry.allowed, id)) continue;
      entry.allowed[static_cast<size_t>(id) >> 6] |= uint64_t{1} << (id & 63);
      ++entry.num_allowed;
    }
  }
  return entry;
}

void TokenConstraint::Mask(std::span<float> logits) {
  const CachedMask& mask = MaskOfState();
  if (mask.num_allowed == 0) return;
  constexpr float kRefused = -std::numeric_limits<float>::infinity();
  const size_t n = std::min(logits.size(), static_cast<size_t>(trie_->vocab_size()));
  for (size_t word = 0; word * 64 < n; ++word) {
    const uint64_t bits = mask.allowed[word];
    if (bits == ~uint64_t{0}) continue;
    const size_t end = std::min(n, word * 64 + 64);
    for (size_t id = word * 64; id < end; ++id) {
      if (((bits >> (id & 63)) & 1U) == 0) logits[id] = kRefused;
    }
  }
  std::fill(logits.begin() + static_cast<std::ptrdiff_t>(n), logits.end(), kRefused);  // padding
}

void TokenConstraint::Accept(int32_t id) {
  if (id < 0 || id >= trie_->vocab_size()) return;
  matcher_.Advance(trie_->Bytes(id));  // all or nothing: an end token has no bytes
}

}  // namespace ringserve::grammar
