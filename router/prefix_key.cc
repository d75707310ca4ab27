#include "router/prefix_key.h"

#include <algorithm>

#include "common/hash.h"

namespace ringserve::router {
namespace {

// Appends up to what `max_bytes` leaves; false once the key is full.
bool AppendUpTo(std::string_view part, size_t max_bytes, std::string* key) {
  const size_t room = max_bytes - std::min(max_bytes, key->size());
  key->append(part.substr(0, room));
  return key->size() < max_bytes;
}

void AppendChat(const v1::Chat& chat, size_t max_bytes, std::string* key) {
  // Tools first: ChatML and Mistral write them before the first message's text, and
  // an agent sends the same tools every turn.
  for (const v1::Tool& tool : chat.tools()) {
    for (std::string_view part : {std::string_view(tool.name()), std::string_view("\0", 1),
                                  std::string_view(tool.description()), std::string_view("\0", 1),
                                  std::string_view(tool.parameters()), std::string_view("\0", 1)}) {
      if (!AppendUpTo(part, max_bytes, key)) return;
    }
  }
  // Up to the first user message: what every turn of a conversation starts with, so a
  // conversation resent whole each turn keeps its key.
  for (const v1::ChatMessage& message : chat.messages()) {
    for (std::string_view part : {std::string_view(message.role()), std::string_view("\0", 1),
                                  std::string_view(message.content()), std::string_view("\0", 1)}) {
      if (!AppendUpTo(part, max_bytes, key)) return;
    }
    if (message.role() == "user") return;
  }
}

}  // namespace

std::string PrefixKey(const v1::GenerateRequest& request, int max_bytes) {
  std::string key;
  if (max_bytes <= 0) return key;
  const auto limit = static_cast<size_t>(max_bytes) + 1;  // the tag, then max_bytes
  switch (request.input_case()) {
    case v1::GenerateRequest::kText:
      key.push_back('t');
      AppendUpTo(request.text(), limit, &key);
      break;
    case v1::GenerateRequest::kTokens:
      key.push_back('i');
      for (const int32_t id : request.tokens().ids()) {
        const auto bits = static_cast<uint32_t>(id);
        const char bytes[4] = {static_cast<char>(bits), static_cast<char>(bits >> 8),
                               static_cast<char>(bits >> 16), static_cast<char>(bits >> 24)};
        if (!AppendUpTo(std::string_view(bytes, 4), limit, &key)) break;
      }
      break;
    case v1::GenerateRequest::kChat:
      key.push_back('c');
      AppendChat(request.chat(), limit, &key);
      break;
    case v1::GenerateRequest::INPUT_NOT_SET:
      break;
  }
  return key;
}

std::optional<uint64_t> PrefixHash(const v1::GenerateRequest& request, int max_bytes) {
  const std::string key = PrefixKey(request, max_bytes);
  if (key.empty()) return std::nullopt;
  // No worker shares K/V between adapters, so the same prompt under another adapter may
  // land anywhere: it spreads an adapter-heavy load instead of piling it on one worker.
  if (!request.adapter().empty()) return Hash64(key, Hash64(request.adapter()));
  return Hash64(key);
}

uint64_t AdapterHash(std::string_view adapter) {
  // Seeded apart from session and prefix keys, which hash the same way.
  constexpr uint64_t kAdapterSeed = 0x4c6f5241'41646170;  // "LoRAAdap"
  return Hash64(adapter, kAdapterSeed);
}

}  // namespace ringserve::router
