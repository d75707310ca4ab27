// Reader for llama2.c's tokenizer.bin (karpathy/llama2.c tokenizer.py export(), read by
// run.c build_tokenizer()): little-endian int32 max_token_length, then per token a
// float32 score, an int32 byte length and the bytes. The file has no token count; tokens
// run to the end of the file.
#ifndef RINGSERVE_WORKER_TOKENIZER_LLAMA2C_VOCAB_H_
#define RINGSERVE_WORKER_TOKENIZER_LLAMA2C_VOCAB_H_

#include <cstdint>
#include <span>
#include <string>

#include "absl/status/statusor.h"
#include "worker/tokenizer/vocabulary.h"

namespace ringserve::tokenizer {

// Reads `path` into a SentencePiece vocabulary normalised to the GGUF conventions: spaces
// in pieces become U+2581, BOS/EOS ("\n<s>\n", "\n</s>\n") become "<s>"/"</s>" typed
// control, id 0 is unknown, "<0xXX>" pieces are byte tokens; bos 1, eos 2, unk 0, BOS and
// the dummy-prefix space added. A truncated or malformed file is an error naming it.
absl::StatusOr<Vocabulary> ReadLlama2cTokenizer(const std::string& path);

// The same from bytes in memory; `name` is used in errors.
absl::StatusOr<Vocabulary> ParseLlama2cTokenizer(std::span<const uint8_t> bytes,
                                                 const std::string& name);

}  // namespace ringserve::tokenizer

#endif  // RINGSERVE_WORKER_TOKENIZER_LLAMA2C_VOCAB_H_
