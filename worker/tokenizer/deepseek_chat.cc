#include "worker/tokenizer/deepseek_chat.h"

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace ringserve::tokenizer {
namespace {

// A message's content as the template writes it: plain text continuing the marker before it.
void AppendContent(const Tokenizer& tokenizer, std::string_view text, std::vector<int32_t>* out) {
  AppendChatText(tokenizer, text, /*continues=*/true, out);
}

constexpr std::string_view kThoughtClose = "</think>";

// An earlier reply without its thought: the text after the last "</think>", as the
// template's split writes it.
std::string_view AnswerAfterThought(std::string_view reply) {
  const size_t end = reply.rfind(kThoughtClose);
  return end == std::string_view::npos ? reply : reply.substr(end + kThoughtClose.size());
}

}  // namespace

std::optional<std::string_view> MissingDeepSeekMarker(const Tokenizer& tokenizer) {
  if (tokenizer.vocab().bos_id < 0) return "<BOS>";
  for (const std::string_view marker : {kDeepSeekUser, kDeepSeekAssistant, kDeepSeekEnd}) {
    if (!MarkerId(tokenizer, marker).has_value()) return marker;
  }
  return std::nullopt;
}

std::optional<int32_t> DeepSeekEndOfTurnId(const Tokenizer& tokenizer) {
  return MarkerId(tokenizer, kDeepSeekEnd);
}

absl::StatusOr<std::vector<int32_t>> EncodeDeepSeekChat(const Tokenizer& tokenizer,
                                                        std::span<const ChatMessage> messages,
                                                        bool start, std::string_view default_system,
                                                        Thinking thinking, bool think) {
  const int32_t user = *MarkerId(tokenizer, kDeepSeekUser);
  const int32_t assistant = *MarkerId(tokenizer, kDeepSeekAssistant);
  const int32_t end = *MarkerId(tokenizer, kDeepSeekEnd);
  const bool brings_system = messages[0].role == "system";
  if (brings_system && !start) {
    return absl::InvalidArgumentError(
        "chat.messages[0]: the deepseek chat format writes a system message only where a "
        "conversation starts");
  }
  std::vector<int32_t> out;
  if (start) {
    out.push_back(tokenizer.vocab().bos_id);
    AppendContent(tokenizer, brings_system ? std::string_view(messages[0].content) : default_system,
                  &out);
  }
  for (size_t i = brings_system ? 1 : 0; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    if (m.role == "user") {
      out.push_back(user);
      AppendContent(tokenizer, m.content, &out);
    } else if (m.role == "assistant") {
      out.push_back(assistant);
      AppendContent(tokenizer, AnswerAfterThought(m.content), &out);
      out.push_back(end);
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("chat.messages[", i, "]: the deepseek chat format takes a system message ",
                       "first, then user and assistant messages"));
    }
  }
  out.push_back(assistant);
  if (thinking == Thinking::kAlways || (thinking == Thinking::kOptional && !think)) {
    AppendContent(tokenizer, think ? "<think>\n" : "<think>\n\n</think>\n\n", &out);
  }
  return out;
}

}  // namespace ringserve::tokenizer
