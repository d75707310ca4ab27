#include "worker/grammar/grammar_cache.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace ringserve::grammar {

GrammarCache::GrammarCache(size_t max_entries, size_t max_key_bytes)
    : max_entries_(max_entries), max_key_bytes_(max_key_bytes) {}

GrammarOr GrammarCache::Get(const std::string& key, absl::FunctionRef<GrammarOr()> compile) {
  {
    std::lock_guard lock(mu_);
    if (auto it = entries_.find(key); it != entries_.end()) {
      ++counts_.hits;
      it->second.last_use = ++clock_;
      return it->second.grammar;
    }
    ++counts_.misses;
  }
  GrammarOr grammar = compile();
  if (max_entries_ == 0 || key.size() > max_key_bytes_) return grammar;
  std::lock_guard lock(mu_);
  if (entries_.contains(key)) return grammar;  // another thread compiled it meanwhile
  EvictLocked(key.size());
  entries_.emplace(key, Entry{.grammar = grammar, .last_use = ++clock_});
  key_bytes_ += key.size();
  counts_.entries = static_cast<int64_t>(entries_.size());
  return grammar;
}

void GrammarCache::EvictLocked(size_t incoming_key_bytes) {
  // A linear scan for the oldest: the cache holds a few hundred entries at most, and only a
  // miss (which just paid for a compile) evicts.
  while (!entries_.empty() &&
         (entries_.size() >= max_entries_ || key_bytes_ + incoming_key_bytes > max_key_bytes_)) {
    auto oldest = entries_.begin();
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
      if (it->second.last_use < oldest->second.last_use) oldest = it;
    }
    key_bytes_ -= oldest->first.size();
    entries_.erase(oldest);
    ++counts_.evictions;
  }
}

GrammarCache::Counts GrammarCache::counts() const {
  std::lock_guard lock(mu_);
  return counts_;
}

GrammarOr CompileCached(GrammarCache* cache, const std::string& key,
                        absl::FunctionRef<GrammarOr()> compile) {
  return cache == nullptr ? compile() : cache->Get(key, compile);
}

GrammarKey& GrammarKey::Add(std::string_view part) {
  absl::StrAppend(&key_, part.size(), ":", std::string(part));
  return *this;
}

GrammarKey& GrammarKey::Add(int64_t part) { return Add(absl::StrCat(part)); }

}  // namespace ringserve::grammar
