// Pre-tokenisers for byte-level BPE: the regex splits that run before the merges, written
// by hand over code points because std::regex has no \p{..} classes. Each one but Tekken
// (see SplitTekken) reproduces llama.cpp's split for the same GGUF `tokenizer.ggml.pre`
// name (src/llama-vocab.cpp and src/unicode.cpp at
// c392e5094deaf2d1a7c18683214f007fad3fe42b), including its quirks:
// several regexes applied in turn, each to the chunks the previous one produced, with
// both the matches and the gaps between them kept as chunks.
#ifndef RINGSERVE_WORKER_TOKENIZER_PRETOKENIZER_H_
#define RINGSERVE_WORKER_TOKENIZER_PRETOKENIZER_H_

#include <cstdint>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace ringserve::tokenizer {

enum class PreTokenizer : uint8_t {
  kDefault,      // llama.cpp's fallback sequence (punctuation runs, GPT-2, digits)
  kGpt2,         // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)
  kLlama3,       // Llama 3: case-insensitive contractions, \p{N}{1,3}, newline handling
  kQwen2,        // Llama 3's pattern with single digits
  kDeepseekLlm,  // DeepSeek LLM: explicit letter / punctuation / CJK ranges, then \p{N}+
  kStarcoder,    // single digits, then GPT-2
  kTekken,       // Mistral's Tekken: words split before capitals, single digits
};

// Maps a GGUF tokenizer.ggml.pre name (and the aliases llama.cpp accepts for the same
// split) to a pre-tokeniser; INVALID_ARGUMENT for names whose split is not implemented.
absl::StatusOr<PreTokenizer> PreTokenizerFromName(std::string_view name);

// Splits `text` into words (views into `text`, in order, covering it exactly). Invalid
// UTF-8 bytes are kept, each classed as U+FFFD.
std::vector<std::string_view> PreTokenize(PreTokenizer kind, std::string_view text);

}  // namespace ringserve::tokenizer

#endif  // RINGSERVE_WORKER_TOKENIZER_PRETOKENIZER_H_
