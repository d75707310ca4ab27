// Sessions: conversations the worker remembers between requests. A session keeps its
// token history and, while memory allows, a pinned KV sequence holding that history's
// blocks, so the next turn only computes its new tokens. Pins of idle sessions are the
// first KV given back under memory pressure (least recently used first); the history
// stays, and a later turn finds its full blocks through the prefix cache if they were not
// evicted meanwhile.
#ifndef RINGSERVE_WORKER_ENGINE_SESSION_TABLE_H_
#define RINGSERVE_WORKER_ENGINE_SESSION_TABLE_H_

#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "kvcache/kv_cache_manager.h"

namespace ringserve::engine {

// The longest session id a worker takes (inference.proto documents the limit).
inline constexpr size_t kMaxSessionIdBytes = 256;
// A fork's id is its parent's routing key (the id up to its first '#'), "#f" and a 64-bit
// decimal counter: at most this many bytes longer than the key.
inline constexpr size_t kForkSuffixBytes = 22;

struct Session {
  std::string id;
  std::vector<int32_t> tokens;  // the history: every context and completion so far
  // The load of the LoRA adapter that computed the pinned K/V (SchedSeq::adapter_key; 0 for
  // none): only a job with the same one continues the pin; another computes the history
  // again under its own.
  uint64_t adapter_key = 0;
  bool busy = false;  // a job is running on it
  absl::Time last_use;
  std::list<Session*>::iterator lru_position;

  // When active, holds the K/V of `tokens`. Changed only through SessionTable, which
  // keeps the count of pinned sessions that stats read after every engine step.
  const kvcache::SequenceLease& pin() const { return pin_; }

 private:
  friend class SessionTable;
  kvcache::SequenceLease pin_;
};

struct SessionCounters {
  int64_t created = 0;
  int64_t closed = 0;
  int64_t expired = 0;        // idle past the TTL
  int64_t evicted = 0;        // closed to make room under the session cap
  int64_t pins_released = 0;  // pins given back under memory pressure
};

// Thread: the engine thread only.
class SessionTable {
 public:
  SessionTable(int32_t max_sessions, absl::Duration ttl) : max_sessions_(max_sessions), ttl_(ttl) {}
  SessionTable(const SessionTable&) = delete;
  SessionTable& operator=(const SessionTable&) = delete;

  Session* Find(std::string_view id);
  // A new, empty session. At the cap, the least recently used idle session is closed
  // first; RESOURCE_EXHAUSTED when every session is busy. The id must be new.
  absl::StatusOr<Session*> Create(std::string_view id, absl::Time now);
  // Marks use (LRU order and TTL).
  void Touch(Session* session, absl::Time now);
  // Forgets an idle session (its pin released).
  void Close(Session* session);
  // Gives `session` the pin `lease` (which may be inactive), releasing any it held.
  void SetPin(Session* session, kvcache::SequenceLease lease);
  // Takes the session's pin (inactive if it held none), e.g. to hand it to a job.
  kvcache::SequenceLease TakePin(Session* session);
  // Releases the pin of the least recently used idle session holding one; false if none.
  bool ReleaseOneIdlePin();
  // Closes idle sessions unused for longer than the TTL.
  void ExpireIdle(absl::Time now);
  // When the next session may expire (InfiniteFuture with none idle).
  absl::Time NextExpiry() const;

  int32_t size() const { return static_cast<int32_t>(sessions_.size()); }
  int32_t num_pinned() const { return num_pinned_; }
  const SessionCounters& counters() const { return counters_; }

 private:
  void Erase(Session* session);

  const int32_t max_sessions_;
  const absl::Duration ttl_;
  absl::flat_hash_map<std::string, std::unique_ptr<Session>> sessions_;
  std::list<Session*> lru_;  // least recently used first
  SessionCounters counters_;
  int32_t num_pinned_ = 0;
};

}  // namespace ringserve::engine

#endif  // RINGSERVE_WORKER_ENGINE_SESSION_TABLE_H_
