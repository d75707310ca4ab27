#include "worker/tokenizer/piece_index.h"

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "worker/tokenizer/unicode.h"

namespace ringserve::tokenizer {
namespace {

absl::Status CheckId(int32_t id, size_t n, std::string_view what) {
  if (id < -1 || (id >= 0 && static_cast<size_t>(id) >= n)) {
    return absl::InvalidArgumentError(
        absl::StrCat("vocabulary: ", ToAbsl(what), " id ", id, " is outside [0, ", n, ")"));
  }
  return absl::OkStatus();
}

absl::Status Validate(const Vocabulary& v) {
  const size_t n = v.tokens.size();
  if (n == 0) return absl::InvalidArgumentError("vocabulary: no tokens");
  if (n > static_cast<size_t>(INT32_MAX)) return absl::InvalidArgumentError("vocabulary: too big");
  if (!v.scores.empty() && v.scores.size() != n) {
    return absl::InvalidArgumentError(
        absl::StrCat("vocabulary: ", v.scores.size(), " scores for ", n, " tokens"));
  }
  if (!v.types.empty() && v.types.size() != n) {
    return absl::InvalidArgumentError(
        absl::StrCat("vocabulary: ", v.types.size(), " token types for ", n, " tokens"));
  }
  for (auto [id, what] :
       {std::pair{v.bos_id, "bos"}, {v.eos_id, "eos"}, {v.unk_id, "unk"}, {v.pad_id, "pad"}}) {
    if (absl::Status s = CheckId(id, n, what); !s.ok()) return s;
  }
  for (int32_t id : v.eot_ids) {
    if (absl::Status s = CheckId(id, n, "eot"); !s.ok()) return s;
  }
  if (v.add_bos && v.bos_id < 0) {
    return absl::InvalidArgumentError("vocabulary: add_bos is set but there is no bos id");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<PieceIndex> PieceIndex::Build(const Vocabulary& v) {
  if (absl::Status s = Validate(v); !s.ok()) return s;
  PieceIndex index;
  index.ids_.reserve(v.tokens.size());
  for (size_t i = 0; i < v.tokens.size(); ++i) {
    index.ids_[v.tokens[i]] = static_cast<int32_t>(i);
  }
  index.scores_ = v.scores;
  for (int b = 0; b < 256; ++b) {
    int32_t id = -1;
    if (v.model == TokenizerModel::kSentencePiece) {
      char hex[8];
      std::snprintf(hex, sizeof(hex), "<0x%02X>", b);
      id = index.Find(hex);
      if (id < 0 && b < 0x80) id = index.Find(std::string(1, static_cast<char>(b)));
    } else {
      id = index.Find(ByteToUnicode(static_cast<uint8_t>(b)));
    }
    index.byte_char_ids_[b] = v.model == TokenizerModel::kSentencePiece ? -1 : id;
    index.byte_tokens_[b] = id >= 0 ? id : v.unk_id;
  }
  index.merge_ranks_.reserve(v.merges.size());
  index.merges_by_id_.reserve(v.merges.size());
  for (size_t rank = 0; rank < v.merges.size(); ++rank) {
    const std::string& m = v.merges[rank];
    const size_t space = m.find(' ', 1);
    if (space == std::string::npos || space + 1 >= m.size() ||
        m.find(' ', space + 1) != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("vocabulary: merge ", rank, " '", m, "' is not \"left right\""));
    }
    if (!index.merge_ranks_.try_emplace(m, static_cast<int32_t>(rank)).second) continue;
    // (The first rank wins; a text has one id, Find's, so the id pair stands for this text.)
    const int32_t left = index.Find(std::string_view(m).substr(0, space));
    const int32_t right = index.Find(std::string_view(m).substr(space + 1));
    if (left < 0 || right < 0) continue;
    std::string merged = m;
    merged.erase(space, 1);
    index.merges_by_id_.try_emplace(PairKey(left, right),
                                    Merge{static_cast<int32_t>(rank), index.Find(merged)});
  }
  return index;
}

}  // namespace ringserve::tokenizer
