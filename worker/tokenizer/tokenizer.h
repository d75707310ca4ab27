// Text <-> token ids for one model's vocabulary: SentencePiece-style BPE (Llama 1/2,
// llama2.c) or byte-level BPE (GPT-2, Llama 3, Qwen2, DeepSeek, StarCoder). Encoding
// matches llama.cpp's tokenizer for the same vocabulary (llama_tokenize with
// add_special = add_bos and parse_special as given).
//
// Ownership and threads: built once by Create(), immutable afterwards; every method is
// const and may run on any number of threads at once. StreamDecoder (stream_decoder.h)
// holds per-stream state and must not be shared between threads.
#ifndef RINGSERVE_WORKER_TOKENIZER_TOKENIZER_H_
#define RINGSERVE_WORKER_TOKENIZER_TOKENIZER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/tokenizer/piece_index.h"
#include "worker/tokenizer/pretokenizer.h"
#include "worker/tokenizer/vocabulary.h"

namespace ringserve::tokenizer {

struct EncodeOptions {
  // Prepend BOS; unset = the vocabulary's add_bos.
  std::optional<bool> add_bos;
  // Append EOS; unset = the vocabulary's add_eos.
  std::optional<bool> add_eos;
  // true: text spelling a control token (e.g. "<|eot_id|>") encodes to that token.
  // false: it is plain text. User-defined tokens (added tokens that are not special) are
  // matched either way, as in llama.cpp and Hugging Face tokenizers.
  bool parse_special = false;
  // true: the text continues raw text encoded before it (a chat message after its header),
  // so a SentencePiece dummy-prefix space does not go before its first fragment.
  bool continues_text = false;
};

class Tokenizer {
 public:
  // INVALID_ARGUMENT when the vocabulary is inconsistent or its pre-tokeniser unknown.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> Create(Vocabulary vocab);

  // Never fails: invalid UTF-8 bytes are encoded with byte tokens (or unk).
  std::vector<int32_t> Encode(std::string_view text, const EncodeOptions& opts = {}) const;

  // Text of `ids` as valid UTF-8: control tokens decode to nothing, byte tokens to raw
  // bytes, ill-formed byte sequences to U+FFFD. For SentencePiece vocabularies with a
  // dummy prefix, the leading space of a piece that directly follows BOS is dropped
  // (llama2.c run.c decode(), sentencepiece's DecodeIds), so Decode(Encode(s)) == s.
  // With `control_as_text`, control tokens are written as their pieces ("<s>",
  // "<|im_start|>") instead, as Hugging Face's decode writes them.
  std::string Decode(std::span<const int32_t> ids, bool control_as_text = false) const;

  // Appends the raw bytes token `id` decodes to when it follows `previous` (-1: none).
  // Out-of-range ids decode to nothing.
  void AppendTokenBytes(int32_t id, int32_t previous, std::string* out) const;

  // Every token's bytes as it follows other text (AppendTokenBytes with no previous token),
  // empty for control and unknown tokens: the text each token would add to a reply, indexed
  // by id (structured output's vocabulary trie).
  std::vector<std::string> ReplyBytesOfTokens() const;

  // The piece as stored (U+2581 for spaces, GPT-2 byte characters); empty if out of range.
  std::string_view Piece(int32_t id) const;
  int32_t vocab_size() const { return static_cast<int32_t>(vocab_.tokens.size()); }
  int32_t bos_id() const { return vocab_.bos_id; }
  int32_t eos_id() const { return vocab_.eos_id; }
  const Vocabulary& vocab() const { return vocab_; }
  // EOS or one of the end-of-turn ids: generation stops here.
  bool IsEndOfGeneration(int32_t id) const;
  // EOS followed by the end-of-turn ids, without duplicates: the default stop ids.
  std::vector<int32_t> EndOfGenerationIds() const;
  // A control or unknown token: a marker with no text of its own.
  bool IsSpecial(int32_t id) const;

 private:
  struct Fragment {
    std::string_view text;  // raw text when token < 0
    int32_t token = -1;
  };

  Tokenizer(Vocabulary vocab, PieceIndex index, PreTokenizer pre);
  TokenType TypeOf(int32_t id) const;
  std::vector<Fragment> SplitSpecial(std::string_view text, bool parse_special) const;
  void EncodeSentencePieceFragments(const std::vector<Fragment>& fragments, bool continues_text,
                                    std::vector<int32_t>* out) const;
  void EncodeByteLevelFragments(const std::vector<Fragment>& fragments,
                                std::vector<int32_t>* out) const;

  Vocabulary vocab_;
  PieceIndex index_;
  PreTokenizer pre_;
  std::vector<std::string> decoded_;  // bytes per token (before the after-BOS rule)
  std::vector<int32_t> special_ids_;  // matched in text; longest piece first
};

}  // namespace ringserve::tokenizer

#endif  // RINGSERVE_WORKER_TOKENIZER_TOKENIZER_H_
