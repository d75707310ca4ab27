// Compiled grammars kept by what they were compiled from. Applications and agents send the
// same JSON Schema, or the same tools, with request after request; compiling one costs from
// a fraction of a millisecond (a small schema) to many (three tools' call grammar is about
// 0.5 ms, a regular expression's automaton can be more), on the gRPC thread that converts the
// request. A hit costs a hash of the key.
//
// Compile errors are kept too: a client that retries a refused schema gets the same error
// without a second compile.
//
// Ownership and threads: owned by the worker (one per process), used from any thread; the
// grammars it hands out are shared and immutable, and outlive their eviction for as long as
// a job holds them.
#ifndef RINGSERVE_WORKER_GRAMMAR_GRAMMAR_CACHE_H_
#define RINGSERVE_WORKER_GRAMMAR_GRAMMAR_CACHE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "worker/grammar/matcher.h"

namespace ringserve::grammar {

using GrammarOr = absl::StatusOr<std::shared_ptr<const Grammar>>;

class GrammarCache {
 public:
  // At most `max_entries` grammars, whose keys take at most `max_key_bytes` in all (a key is
  // the whole text compiled, up to the API's 64 KiB); the least recently used go first.
  GrammarCache(size_t max_entries, size_t max_key_bytes);
  GrammarCache(const GrammarCache&) = delete;
  GrammarCache& operator=(const GrammarCache&) = delete;

  // The grammar `key` names (KeyOf), from the cache or from `compile`, which runs outside
  // the cache's lock (two threads missing the same key at once may both compile it).
  GrammarOr Get(const std::string& key, absl::FunctionRef<GrammarOr()> compile);

  struct Counts {
    int64_t hits = 0;
    int64_t misses = 0;
    int64_t evictions = 0;
    int64_t entries = 0;
  };
  Counts counts() const;

 private:
  struct Entry {
    GrammarOr grammar;
    uint64_t last_use = 0;
  };
  void EvictLocked(size_t incoming_key_bytes);

  const size_t max_entries_;
  const size_t max_key_bytes_;
  mutable std::mutex mu_;
  absl::flat_hash_map<std::string, Entry> entries_;  // guarded by mu_
  size_t key_bytes_ = 0;                             // guarded by mu_
  uint64_t clock_ = 0;                               // guarded by mu_
  Counts counts_;                                    // guarded by mu_
};

// cache->Get(key, compile), or compile() when there is no cache.
GrammarOr CompileCached(GrammarCache* cache, const std::string& key,
                        absl::FunctionRef<GrammarOr()> compile);

// A cache key from the parts a grammar is compiled from: each part with its length, so no
// two lists of parts share a key.
class GrammarKey {
 public:
  explicit GrammarKey(std::string_view kind) { Add(kind); }
  GrammarKey& Add(std::string_view part);
  GrammarKey& Add(int64_t part);
  const std::string& key() const { return key_; }

 private:
  std::string key_;
};

}  // namespace ringserve::grammar

#endif  // RINGSERVE_WORKER_GRAMMAR_GRAMMAR_CACHE_H_
