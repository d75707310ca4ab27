#include "tools/common/chat_format_flag.h"

#include <optional>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace ringserve::tools {

absl::StatusOr<tokenizer::ChatFormat> ChatFormatFor(const std::string& flag,
                                                    const tokenizer::Tokenizer* tokenizer) {
  if (flag == "auto") {
    return tokenizer != nullptr ? tokenizer::AutoChatFormat(*tokenizer)
                                : tokenizer::ChatFormat::kNone;
  }
  const std::optional<tokenizer::ChatFormat> named = tokenizer::ChatFormatNamed(flag);
  if (!named.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--chat-format: '", flag,
                     "' is not auto, chatml, llama3, llama3.1, llama3.2, llama2, mistral, "
                     "deepseek, zephyr or none"));
  }
  if (*named != tokenizer::ChatFormat::kNone &&
      (tokenizer == nullptr || !tokenizer::CanRender(*tokenizer, *named))) {
    return absl::FailedPreconditionError(absl::StrCat(
        "--chat-format ", flag, ": the model's vocabulary lacks the format's control tokens"));
  }
  return *named;
}

}  // namespace ringserve::tools
