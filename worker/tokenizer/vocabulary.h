// A tokenizer's data, as read from a file: pieces, scores, token types, merges and the
// special ids. Plain data; tokenizer/ builds an encoder from it.
#ifndef RINGSERVE_WORKER_TOKENIZER_VOCABULARY_H_
#define RINGSERVE_WORKER_TOKENIZER_VOCABULARY_H_

#include <cstdint>
#include <string>
#include <vector>

namespace ringserve::tokenizer {

enum class TokenizerModel : uint8_t {
  kSentencePiece,  // score-driven BPE over UTF-8 with byte fallback (Llama 1/2, llama2.c)
  kByteLevelBpe,   // GPT-2 style byte-level BPE with ranked merges (Llama 3, Qwen2, ...)
};

// Token types as GGUF numbers them (tokenizer.ggml.token_type).
enum class TokenType : int32_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

struct Vocabulary {
  TokenizerModel model = TokenizerModel::kSentencePiece;
  // Pieces exactly as the file stores them: SentencePiece pieces use U+2581 for a space
  // (llama2.c files are normalised to that on load); byte-level pieces use GPT-2's
  // byte-to-unicode mapping.
  std::vector<std::string> tokens;
  std::vector<float> scores;        // SentencePiece merge priority (higher merges first)
  std::vector<TokenType> types;     // empty = all normal
  std::vector<std::string> merges;  // byte-level BPE: "left right", rank = index
  // Pre-tokeniser name for byte-level BPE (GGUF tokenizer.ggml.pre: "gpt2", "llama-bpe",
  // "deepseek-llm", "starcoder", "qwen2", ...).
  std::string pre_tokenizer = "default";
  int32_t bos_id = -1;
  int32_t eos_id = -1;
  int32_t unk_id = -1;
  int32_t pad_id = -1;
  std::vector<int32_t> eot_ids;  // extra end-of-turn ids that also stop generation
  bool add_bos = true;
  bool add_eos = false;
  bool add_space_prefix = true;  // SentencePiece dummy prefix
  // The checkpoint's Jinja chat template (GGUF tokenizer.chat_template, Hugging Face
  // tokenizer_config.json); empty when it has none. chat_format.h reads which format it is.
  std::string chat_template;
};

}  // namespace ringserve::tokenizer

#endif  // RINGSERVE_WORKER_TOKENIZER_VOCABULARY_H_
