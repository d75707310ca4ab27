#include "worker/tokenizer/zephyr_chat.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace ringserve::tokenizer {

bool IsZephyrTemplate(std::string_view chat_template) {
  const auto has = [&](std::string_view marker) {
    return chat_template.find(marker) != std::string_view::npos;
  };
  return has("<|user|>") && has("<|assistant|>") && !has("<|end|>");
}

std::vector<int32_t> EncodeZephyrChat(const Tokenizer& tokenizer,
                                      std::span<const ChatMessage> messages, bool start,
                                      std::string_view default_system) {
  std::vector<int32_t> out;
  const auto piece = [&](std::string_view text) {
    AppendChatText(tokenizer, text, /*continues=*/false, &out);
  };
  // The first stretch of a conversation has no newline before it: nothing ended before it.
  bool first = start;
  const auto turn = [&](std::string_view role, std::string_view content, bool closed) {
    piece(absl::StrCat(first ? "" : "\n", "<|", std::string(role), "|>\n", std::string(content)));
    if (closed) out.push_back(tokenizer.vocab().eos_id);
    first = false;
  };
  if (start) out.push_back(tokenizer.vocab().bos_id);
  if (start && !default_system.empty() && messages.front().role != "system") {
    turn("system", default_system, true);
  }
  for (const ChatMessage& message : messages) turn(message.role, message.content, true);
  turn("assistant", "", false);
  return out;
}

}  // namespace ringserve::tokenizer
