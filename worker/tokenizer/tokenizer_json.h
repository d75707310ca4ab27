// Reader for Hugging Face tokenizers' tokenizer.json (the `tokenizers` library's
// serialisation: model, added_tokens, normalizer, pre_tokenizer, post_processor, decoder).
// Supported: model.type "BPE" either byte-level (a ByteLevel pre-tokeniser or decoder:
// GPT-2, Llama 3, Qwen2, DeepSeek, StarCoder) or SentencePiece-style (byte_fallback with
// the U+2581 Metaspace / Replace normaliser: Llama 2, Mistral).
#ifndef RINGSERVE_WORKER_TOKENIZER_TOKENIZER_JSON_H_
#define RINGSERVE_WORKER_TOKENIZER_TOKENIZER_JSON_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "worker/tokenizer/vocabulary.h"

namespace ringserve::tokenizer {

// Errors (INVALID_ARGUMENT, naming the file and the field) for malformed JSON, missing
// or mistyped fields, unsupported models, and Split patterns that no implemented
// pre-tokeniser reproduces. Never throws.
absl::StatusOr<Vocabulary> ReadTokenizerJson(const std::string& path);

// The same from the JSON text; `name` is used in errors.
absl::StatusOr<Vocabulary> ParseTokenizerJson(std::string_view json_text, const std::string& name);

}  // namespace ringserve::tokenizer

#endif  // RINGSERVE_WORKER_TOKENIZER_TOKENIZER_JSON_H_
