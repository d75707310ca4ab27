// Lookup tables the BPE encoders share: piece -> id, scores, byte tokens and merge ranks.
// Built once by Tokenizer::Create from a validated Vocabulary; immutable afterwards, so
// any number of threads may encode with one index at the same time.
#ifndef RINGSERVE_WORKER_TOKENIZER_PIECE_INDEX_H_
#define RINGSERVE_WORKER_TOKENIZER_PIECE_INDEX_H_

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "worker/tokenizer/vocabulary.h"

namespace ringserve::tokenizer {

// Debian's Abseil is built with its own absl::string_view (ABSL_OPTION_USE_STD_STRING_VIEW
// 0), so std::string_view keys cross into Abseil through this.
inline absl::string_view ToAbsl(std::string_view s) { return {s.data(), s.size()}; }

class PieceIndex {
 public:
  // INVALID_ARGUMENT when the vocabulary is inconsistent (sizes, ids, merges).
  static absl::StatusOr<PieceIndex> Build(const Vocabulary& vocab);

  // Id of a piece, or -1. When a piece occurs twice the later id wins, as in llama.cpp.
  int32_t Find(std::string_view piece) const {
    const auto it = ids_.find(ToAbsl(piece));
    return it == ids_.end() ? -1 : it->second;
  }
  float Score(int32_t id) const { return scores_.empty() ? 0.0f : scores_[id]; }
  // The token that spells one raw byte (SentencePiece <0xXX>, or the GPT-2 byte
  // character for byte-level vocabularies), else unk, else -1.
  int32_t ByteToken(uint8_t byte) const { return byte_tokens_[byte]; }
  // Rank of the merge "left right" (lower merges first), or -1.
  int32_t MergeRank(std::string_view joined) const {
    const auto it = merge_ranks_.find(ToAbsl(joined));
    return it == merge_ranks_.end() ? -1 : it->second;
  }
  // Llama 3 (llama.cpp ignore_merges): a word that is a whole token is not merged.
  bool ignore_merges() const { return ignore_merges_; }
  void set_ignore_merges(bool v) { ignore_merges_ = v; }

 private:
  absl::flat_hash_map<std::string, int32_t> ids_;
  std::vector<float> scores_;
  std::array<int32_t, 256> byte_tokens_{};
  absl::flat_hash_map<std::string, int32_t> merge_ranks_;
  bool ignore_merges_ = false;
};

// SentencePiece BPE (llama.cpp llm_tokenizer_spm, llama2.c encode()): split into UTF-8
// characters, repeatedly merge the adjacent pair whose concatenation is a piece with the
// highest score (ties: leftmost), and spell what is left over with byte tokens.
// `text` is already escaped (spaces are U+2581). O(n log n) with a priority queue.
void EncodeSentencePiece(std::string_view text, const PieceIndex& index, std::vector<int32_t>* out);

// Byte-level BPE of one pre-tokenised word (raw bytes): map bytes through GPT-2's
// bytes_to_unicode, then apply ranked merges (lowest rank first, ties leftmost) as
// llama.cpp's llm_tokenizer_bpe_session does. O(n log n) with a priority queue.
void EncodeByteLevelWord(std::string_view word, const PieceIndex& index, std::vector<int32_t>* out);

}  // namespace ringserve::tokenizer

#endif  // RINGSERVE_WORKER_TOKENIZER_PIECE_INDEX_H_
