// How a session id maps to a ring position.
#ifndef RINGSERVE_ROUTER_SESSION_KEY_H_
#define RINGSERVE_ROUTER_SESSION_KEY_H_

#include <cstdint>
#include <string_view>

#include "common/hash.h"

namespace ringserve::router {

// The part of a session id that places it on the ring: everything before the first '#',
// or the whole id. Fork names its sessions "<parent's routing key>#<suffix>", so a fork
// lands on the worker that holds the blocks it shares with its parent (inference.proto).
inline std::string_view RoutingKey(std::string_view session_id) {
  return session_id.substr(0, session_id.find('#'));
}

// The ring position of a session: xxHash64 of its routing key, the same in every process.
inline uint64_t SessionHash(std::string_view session_id) { return Hash64(RoutingKey(session_id)); }

}  // namespace ringserve::router

#endif  // RINGSERVE_ROUTER_SESSION_KEY_H_
