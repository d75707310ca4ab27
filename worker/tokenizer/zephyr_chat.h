// The chat format of Zephyr's template (HuggingFaceH4's zephyr-7b-beta, TinyLlama's
// TinyLlama-1.1B-Chat and their fine-tunes): each message is "<|role|>\n" and its content,
// ended by the vocabulary's EOS and a newline, and the generation prompt is
// "<|assistant|>\n". The role markers are plain text, not tokens.
#ifndef RINGSERVE_WORKER_TOKENIZER_ZEPHYR_CHAT_H_
#define RINGSERVE_WORKER_TOKENIZER_ZEPHYR_CHAT_H_

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "worker/tokenizer/chat_format.h"
#include "worker/tokenizer/tokenizer.h"

namespace ringserve::tokenizer {

// Whether a Jinja chat template writes Zephyr's format: its role markers, and not Phi-3's
// <|end|>, which ends the same markers' turns there.
bool IsZephyrTemplate(std::string_view chat_template);

// `messages` (roles system, user, assistant, in any order: the template loops over them)
// ending with the generation prompt. Where a conversation starts (`start`) it opens with BOS,
// as the checkpoints' model cards and llama.cpp tokenise the rendered text; an appended turn
// follows the EOS the session's last reply ended on. Each stretch of text between EOS tokens
// is a piece of its own (SentencePiece's dummy prefix applies), as Hugging Face's and
// llama.cpp's tokenisers encode text after a special token.
std::vector<int32_t> EncodeZephyrChat(const Tokenizer& tokenizer,
                                      std::span<const ChatMessage> messages, bool start,
                                      std::string_view default_system);

}  // namespace ringserve::tokenizer

#endif  // RINGSERVE_WORKER_TOKENIZER_ZEPHYR_CHAT_H_
