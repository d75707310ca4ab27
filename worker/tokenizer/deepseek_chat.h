// The chat format of DeepSeek's R1 distills (Qwen2.5 and Llama 3 checkpoints tuned on R1's
// replies) and of DeepSeek V3: <｜begin▁of▁sentence｜>, the system message as plain text,
// then <｜User｜>message and <｜Assistant｜>reply<｜end▁of▁sentence｜> turns. The markers may be
// control or user-defined tokens (R1 distills add them as the latter). Earlier replies are
// written back without their thought, as the template writes them.
#ifndef RINGSERVE_WORKER_TOKENIZER_DEEPSEEK_CHAT_H_
#define RINGSERVE_WORKER_TOKENIZER_DEEPSEEK_CHAT_H_

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/tokenizer/chat_format.h"
#include "worker/tokenizer/tokenizer.h"

namespace ringserve::tokenizer {

inline constexpr std::string_view kDeepSeekUser = "<｜User｜>";
inline constexpr std::string_view kDeepSeekAssistant = "<｜Assistant｜>";
inline constexpr std::string_view kDeepSeekEnd = "<｜end▁of▁sentence｜>";

// The first of the format's markers the vocabulary lacks as one token, if any (or "<BOS>"
// without a BOS token).
std::optional<std::string_view> MissingDeepSeekMarker(const Tokenizer& tokenizer);

// <｜end▁of▁sentence｜>, which ends a reply, if the vocabulary has it as one token.
std::optional<int32_t> DeepSeekEndOfTurnId(const Tokenizer& tokenizer);

// `messages` (roles system, user, assistant; a system message only first, where a conversation
// starts) ending with the assistant's marker and, per `thinking` and `think`, the thought's
// opening (EncodeChat documents both). INVALID_ARGUMENT naming the message otherwise.
absl::StatusOr<std::vector<int32_t>> EncodeDeepSeekChat(const Tokenizer& tokenizer,
                                                        std::span<const ChatMessage> messages,
                                                        bool start, std::string_view default_system,
                                                        Thinking thinking, bool think);

}  // namespace ringserve::tokenizer

#endif  // RINGSERVE_WORKER_TOKENIZER_DEEPSEEK_CHAT_H_
