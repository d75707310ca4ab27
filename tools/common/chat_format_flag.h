// --chat-format, shared by ringserve-worker and ringserve-run: which chat format a
// conversation is rendered in.
#ifndef RINGSERVE_TOOLS_COMMON_CHAT_FORMAT_FLAG_H_
#define RINGSERVE_TOOLS_COMMON_CHAT_FORMAT_FLAG_H_

#include <string>

#include "absl/status/statusor.h"
#include "worker/tokenizer/chat_format.h"
#include "worker/tokenizer/tokenizer.h"

namespace ringserve::tools {

// The chat format --chat-format names, or with "auto" the one the checkpoint's chat template
// writes (none without a tokenizer). INVALID_ARGUMENT for an unknown name;
// FAILED_PRECONDITION when a named format's markers are not in the vocabulary.
absl::StatusOr<tokenizer::ChatFormat> ChatFormatFor(const std::string& flag,
                                                    const tokenizer::Tokenizer* tokenizer);

}  // namespace ringserve::tools

#endif  // RINGSERVE_TOOLS_COMMON_CHAT_FORMAT_FLAG_H_
