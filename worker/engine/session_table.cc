#include "worker/engine/session_table.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/check.h"

namespace ringserve::engine {

Session* SessionTable::Find(std::string_view id) {
  auto it = sessions_.find(absl::string_view(id.data(), id.size()));
  return it == sessions_.end() ? nullptr : it->second.get();
}

absl::StatusOr<Session*> SessionTable::Create(std::string_view id, absl::Time now) {
  RS_CHECK(Find(id) == nullptr);
  if (size() >= max_sessions_) {
    Session* victim = nullptr;
    for (Session* s : lru_) {
      if (!s->busy) {
        victim = s;
        break;
      }
    }
    if (victim == nullptr) {
      return absl::ResourceExhaustedError(
          absl::StrCat("all ", max_sessions_, " sessions are busy (--max-sessions)"));
    }
    Erase(victim);
    ++counters_.evicted;
  }
  auto session = std::make_unique<Session>();
  Session* raw = session.get();
  raw->id = std::string(id);
  raw->last_use = now;
  raw->lru_position = lru_.insert(lru_.end(), raw);
  sessions_.emplace(raw->id, std::move(session));
  ++counters_.created;
  return raw;
}

void SessionTable::Touch(Session* session, absl::Time now) {
  session->last_use = now;
  lru_.splice(lru_.end(), lru_, session->lru_position);
}

void SessionTable::Close(Session* session) {
  RS_CHECK(!session->busy);
  Erase(session);
  ++counters_.closed;
}

void SessionTable::Erase(Session* session) {
  TakePin(session);
  lru_.erase(session->lru_position);
  auto it = sessions_.find(session->id);
  sessions_.erase(it);
}

bool SessionTable::ReleaseOneIdlePin() {
  for (Session* s : lru_) {
    if (!s->busy && s->pin().active()) {
      TakePin(s);
      ++counters_.pins_released;
      return true;
    }
  }
  return false;
}

void SessionTable::ExpireIdle(absl::Time now) {
  for (auto it = lru_.begin(); it != lru_.end();) {
    Session* s = *it++;
    if (s->last_use + ttl_ > now) break;  // the rest were used more recently
    if (s->busy) continue;
    Erase(s);
    ++counters_.expired;
  }
}

absl::Time SessionTable::NextExpiry() const {
  for (const Session* s : lru_) {
    if (!s->busy) return s->last_use + ttl_;
  }
  return absl::InfiniteFuture();
}

void SessionTable::SetPin(Session* session, kvcache::SequenceLease lease) {
  TakePin(session);
  if (lease.active()) ++num_pinned_;
  session->pin_ = std::move(lease);
}

kvcache::SequenceLease SessionTable::TakePin(Session* session) {
  if (session->pin_.active()) --num_pinned_;
  return std::move(session->pin_);
}

}  // namespace ringserve::engine
