#include "worker/tokenizer/chat_format.h"

#include <array>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace ringserve::tokenizer {
namespace {

constexpr std::array<std::string_view, 4> kRoles = {"system", "user", "assistant", "tool"};

// What each format wraps a message in.
struct Markers {
  std::string_view start;  // once, at the start of a conversation (may be empty)
  std::string_view open;   // before the role
  std::string_view after_role;
  std::string_view close;        // after the content
  std::string_view end_of_turn;  // the control token that ends a turn
  bool trim_content;
};

Markers MarkersOf(ChatFormat format) {
  if (format == ChatFormat::kLlama3) {
    return {"<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>\n\n",
            "<|eot_id|>",        "<|eot_id|>",          true};
  }
  return {"", "<|im_start|>", "\n", "<|im_end|>\n", "<|im_end|>", false};
}

// The id of control token `marker`, if the vocabulary has it as one token.
std::optional<int32_t> ControlId(const Tokenizer& tokenizer, std::string_view marker) {
  const std::vector<int32_t> ids =
      tokenizer.Encode(marker, {.add_bos = false, .add_eos = false, .parse_special = true});
  if (ids.size() != 1 || !tokenizer.IsSpecial(ids[0])) return std::nullopt;
  return ids[0];
}

// Without leading and trailing ASCII whitespace (Jinja's trim).
std::string_view Trimmed(std::string_view s) {
  const size_t begin = s.find_first_not_of(" \t\n\r\f\v");
  if (begin == std::string_view::npos) return {};
  return s.substr(begin, s.find_last_not_of(" \t\n\r\f\v") - begin + 1);
}

void Append(const Tokenizer& tokenizer, std::string_view text, bool markers,
            std::vector<int32_t>* out) {
  const std::vector<int32_t> ids =
      tokenizer.Encode(text, {.add_bos = false, .add_eos = false, .parse_special = markers});
  out->insert(out->end(), ids.begin(), ids.end());
}

}  // namespace

std::string_view ChatFormatName(ChatFormat format) {
  switch (format) {
    case ChatFormat::kChatMl:
      return "chatml";
    case ChatFormat::kLlama3:
      return "llama3";
    default:
      return "none";
  }
}

std::optional<ChatFormat> ChatFormatNamed(std::string_view name) {
  for (const ChatFormat f : {ChatFormat::kNone, ChatFormat::kChatMl, ChatFormat::kLlama3}) {
    if (ChatFormatName(f) == name) return f;
  }
  return std::nullopt;
}

ChatFormat DetectChatFormat(std::string_view chat_template) {
  const auto has = [&](std::string_view marker) {
    return chat_template.find(marker) != std::string_view::npos;
  };
  if (has("<|start_header_id|>")) return ChatFormat::kLlama3;
  if (has("<|im_start|>")) return ChatFormat::kChatMl;
  return ChatFormat::kNone;
}

std::optional<int32_t> EndOfTurnId(const Tokenizer& tokenizer, ChatFormat format) {
  if (format == ChatFormat::kNone) return std::nullopt;
  return ControlId(tokenizer, MarkersOf(format).end_of_turn);
}

absl::StatusOr<std::vector<int32_t>> EncodeChat(const Tokenizer& tokenizer, ChatFormat format,
                                                std::span<const ChatMessage> messages, bool start) {
  if (format == ChatFormat::kNone) {
    return absl::FailedPreconditionError(
        "this model has no chat format (its checkpoint names none that ringserve renders; "
        "the worker's --chat-format sets one); send text or token ids");
  }
  if (messages.empty()) return absl::InvalidArgumentError("chat.messages: empty");
  const Markers m = MarkersOf(format);
  for (const std::string_view marker : {m.start, m.open, m.end_of_turn}) {
    if (!marker.empty() && !ControlId(tokenizer, marker).has_value()) {
      return absl::FailedPreconditionError(
          absl::StrCat("the model's vocabulary has no ", std::string(marker), " token, which the ",
                       std::string(ChatFormatName(format)), " chat format needs"));
    }
  }
  std::vector<int32_t> out;
  if (start) Append(tokenizer, m.start, true, &out);
  for (size_t i = 0; i < messages.size(); ++i) {
    const ChatMessage& message = messages[i];
    bool known = false;
    for (const std::string_view role : kRoles) known = known || role == message.role;
    if (!known) {
      return absl::InvalidArgumentError(absl::StrCat("chat.messages[", i, "].role: '", message.role,
                                                     "' is not system, user, assistant or tool"));
    }
    Append(tokenizer, absl::StrCat(std::string(m.open), message.role, std::string(m.after_role)),
           true, &out);
    Append(tokenizer, m.trim_content ? Trimmed(message.content) : message.content, false, &out);
    Append(tokenizer, m.close, true, &out);
  }
  Append(tokenizer, absl::StrCat(std::string(m.open), "assistant", std::string(m.after_role)), true,
         &out);
  return out;
}

}  // namespace ringserve::tokenizer
