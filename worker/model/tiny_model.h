// The built-in default model: a small Llama with deterministic random weights and a small
// SentencePiece vocabulary (byte fallback, so any UTF-8 text tokenises). It lets the
// server, tests and benchmarks run with no downloaded checkpoint. Its output is noise.
#ifndef RINGSERVE_WORKER_MODEL_TINY_MODEL_H_
#define RINGSERVE_WORKER_MODEL_TINY_MODEL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "worker/model/model_config.h"
#include "worker/tokenizer/vocabulary.h"

namespace ringserve::model {

// dim 64, hidden 172, 4 layers, 8 heads, 4 KV heads, max_seq_len 2048, tied embeddings.
ModelConfig TinyModelConfig();
// <unk>, <s>, </s>, 256 byte tokens, printable ASCII, then common English pieces.
tokenizer::Vocabulary TinyVocabulary();
// The GGUF v3 image (F32 weights, seed fixed: the bytes never change between builds).
std::vector<uint8_t> TinyModelImage();
absl::Status WriteTinyModel(const std::string& path);

}  // namespace ringserve::model

#endif  // RINGSERVE_WORKER_MODEL_TINY_MODEL_H_
