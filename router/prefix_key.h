// Prefix affinity: where a request without a session goes, by the start of its input, so
// that requests sharing a prompt's beginning (a system prompt, a conversation a stateless
// client resends whole every turn) meet the KV blocks their predecessors left in one
// worker's prefix cache.
#ifndef RINGSERVE_ROUTER_PREFIX_KEY_H_
#define RINGSERVE_ROUTER_PREFIX_KEY_H_

#include <cstdint>
#include <optional>
#include <string>

#include "ringserve/v1/inference.pb.h"

namespace ringserve::router {

// The first `max_bytes` bytes of what the worker reads first: the text's bytes, the token
// ids' (4 bytes each, little-endian), or a chat's tools and then each message's role and
// content up to the first user message's, in the order the chat formats render them (the
// part every turn of a conversation starts with). Each kind of input is tagged, so a text
// never shares a key with ids. Empty when the request has no input.
std::string PrefixKey(const v1::GenerateRequest& request, int max_bytes);

// The ring position of PrefixKey (xxHash64, the same in every router), seeded by the
// request's LoRA adapter when it names one; nullopt when `max_bytes` <= 0 or the request has
// no input.
std::optional<uint64_t> PrefixHash(const v1::GenerateRequest& request, int max_bytes);

// The ring key of a LoRA adapter's name (RouterOptions::adapter_affinity).
uint64_t AdapterHash(std::string_view adapter);

}  // namespace ringserve::router

#endif  // RINGSERVE_ROUTER_PREFIX_KEY_H_
