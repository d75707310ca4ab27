#include "worker/grammar/token_constraint.h"

#include <algorithm>
#include <limits>
#include <string>
#include <string_view>
#include <utility>

namespace ringserve::grammar {

TokenConstraint::TokenConstraint(Matcher matcher, const TokenTrie* trie,
                                 std::vector<int32_t> end_ids)
    : matcher_(std::move(matcher)), trie_(trie), end_ids_(std::move(end_ids)) {
  std::erase_if(end_ids_, [&](int32_t id) { return id < 0 || id >= trie_->vocab_size(); });
}

TokenConstraint::TokenConstraint(Matcher matcher, const TokenTrie* trie,
                                 std::vector<int32_t> end_ids, Trigger trigger)
    : TokenConstraint(std::move(matcher), trie, std::move(end_ids)) {
  start_ = matcher_;
  trigger_ = std::move(trigger);
  active_ = false;
  watching_ = true;
  past_after_ = trigger_->after.empty();
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
  if (!active_) return;
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
  if (!active_) {
    if (trigger_->token.has_value()) {
      WatchToken(id);
    } else {
      Watch(trie_->Bytes(id));
    }
    return;
  }
  matcher_.Advance(trie_->Bytes(id));  // all or nothing: an end token has no bytes
  if (trigger_.has_value() && matcher_.IsFinished()) EndStretch();
}

// The bound stretch is over; the trigger's next appearance binds again (one that must open
// the reply cannot appear again, and one that binds once is done).
void TokenConstraint::EndStretch() {
  active_ = false;
  done_ = trigger_->once;
  watching_ = !trigger_->at_start && !done_;
  matcher_ = *start_;
}

void TokenConstraint::WatchToken(int32_t id) {
  if (!watching_) return;
  if (id != *trigger_->token) {
    watching_ = !trigger_->at_start;  // the reply opened with another token
    return;
  }
  active_ = true;
  watching_ = false;
  matcher_ = *start_;
}

void TokenConstraint::Watch(std::string_view bytes) {
  if (!watching_) return;
  const std::string& trigger = trigger_->text;
  seen_.append(bytes);
  if (!past_after_) {
    const std::string& after = trigger_->after;
    const size_t gate = seen_.find(after);
    if (gate == std::string::npos) {
      seen_.erase(0, seen_.size() - std::min(seen_.size(), after.size() - 1));
      return;
    }
    past_after_ = true;
    seen_.erase(0, gate + after.size());  // the reply, for the trigger, starts here
  }
  size_t at = std::string::npos;
  if (trigger_->at_start) {
    const size_t text = seen_.find_first_not_of(" \t\n\r");
    if (text == std::string::npos) return;
    const size_t n = std::min(trigger.size(), seen_.size() - text);
    if (seen_.compare(text, n, trigger, 0, n) != 0) {
      watching_ = false;  // the reply opened with something else
      seen_.clear();
      return;
    }
    if (n < trigger.size()) return;  // so far a prefix of it
    at = text;
  } else {
    at = seen_.find(trigger);
    if (at == std::string::npos) {
      // Only the last bytes may still start it.
      const size_t keep = std::min(seen_.size(), trigger.size() - 1);
      seen_.erase(0, seen_.size() - keep);
      return;
    }
  }
  // The stretch starts at the trigger: the matcher takes it and what followed it in the
  // token (up to a byte it refuses, which no mask could have kept out).
  active_ = true;
  watching_ = false;
  matcher_ = *start_;
  for (size_t i = at; i < seen_.size(); ++i) {
    if (!matcher_.Advance(static_cast<uint8_t>(seen_[i]))) break;
  }
  seen_.clear();
  if (matcher_.IsFinished()) EndStretch();
}

}  // namespace ringserve::grammar
