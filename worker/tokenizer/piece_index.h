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
  // The merge of the pieces with ids `left` and `right` (as MergeRank of their texts), and the
  // id of the piece it makes (-1 when that text is no piece); rank -1 when there is none.
  // Only merges whose both sides are pieces are found this way.
  struct Merge {
    int32_t rank = -1;
    int32_t merged = -1;
  };
  Merge MergeOf(int32_t left, int32_t right) const {
    const auto it = merges_by_id_.find(PairKey(left, right));
    return it == merges_by_id_.end() ? Merge{} : it->second;
  }
  // Byte-level BPE: the id of the piece that is byte `byte`'s GPT-2 character (Find of it;
  // unlike ByteToken, no unk fallback), or -1.
  int32_t ByteCharId(uint8_t byte) const { return byte_char_ids_[byte]; }
  // Llama 3 (llama.cpp ignore_merges): a word that is a whole token is not merged.
  bool ignore_merges() const { return ignore_merges_; }
  void set_ignore_merges(bool v) { ignore_merges_ = v; }

 private:
  absl::flat_hash_map<std::string, int32_t> ids_;
  std::vector<float> scores_;
  std::array<int32_t, 256> byte_tokens_{};
  static uint64_t PairKey(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) |
           static_cast<uint32_t>(right);
  }

  absl::flat_hash_map<std::string, int32_t> merge_ranks_;
  // The same merges keyed by their sides' ids, so that a word's merges look up two integers
  // rather than build and hash "left right" (most of byte-level encoding's time).
  absl::flat_hash_map<uint64_t, Merge> merges_by_id_;
  std::array<int32_t, 256> byte_char_ids_{};
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
