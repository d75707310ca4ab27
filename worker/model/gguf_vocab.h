// The tokenizer.ggml.* metadata of a GGUF file as a Vocabulary. Works on vocabulary-only
// files (no tensors), e.g. llama.cpp's models/ggml-vocab-*.gguf.
#ifndef RINGSERVE_WORKER_MODEL_GGUF_VOCAB_H_
#define RINGSERVE_WORKER_MODEL_GGUF_VOCAB_H_

#include "absl/status/statusor.h"
#include "worker/model/gguf_reader.h"
#include "worker/tokenizer/vocabulary.h"

namespace ringserve::model {

// tokenizer.ggml.model "llama" -> SentencePiece (defaults: add_bos, add_space_prefix),
// "gpt2" -> byte-level BPE (defaults: neither); others are INVALID_ARGUMENT. Array lengths
// and special ids are checked against the token count.
absl::StatusOr<tokenizer::Vocabulary> VocabularyFromGguf(const GgufFile& file);

}  // namespace ringserve::model

#endif  // RINGSERVE_WORKER_MODEL_GGUF_VOCAB_H_
