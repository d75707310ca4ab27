// Byte-level BPE (GPT-2, openai/gpt-2 encoder.py) as llama.cpp's llm_tokenizer_bpe_session
// runs it: the word's bytes become GPT-2 byte characters, then the pair with the lowest
// merge rank (leftmost on ties) merges until none is left. Priority queue with lazy
// deletion: O(n log n) per word. Each symbol keeps the id of the piece it is, so a pair's
// merge is looked up by two ids (PieceIndex::MergeOf), its text only when a side is no piece.
#include <cstdint>
#include <queue>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "worker/tokenizer/piece_index.h"
#include "worker/tokenizer/unicode.h"

namespace ringserve::tokenizer {
namespace {

struct Symbol {
  uint32_t begin;   // byte offset in the byte-character string
  uint32_t length;  // 0 once merged into its left neighbour
  int32_t prev;
  int32_t next;
  int32_t id;  // the piece its text is (PieceIndex::Find), or -1
};

struct Bigram {
  int32_t rank;
  int32_t left;
  int32_t right;
  uint32_t length;
  int32_t merged;  // the id of the piece the merge makes, or -1 (looked up when merged)
};

// Lowest rank first; among equal ranks the leftmost pair.
struct BigramOrder {
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
  }
};

using BigramQueue = std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder>;

class WordMerger {
 public:
  // `word`'s bytes as GPT-2 byte characters, one symbol each.
  WordMerger(std::string_view word, const PieceIndex& index) : index_(index) {
    chars_.reserve(word.size() * 2);
    symbols_.reserve(word.size());
    for (size_t i = 0; i < word.size(); ++i) {
      const auto byte = static_cast<uint8_t>(word[i]);
      const auto begin = static_cast<uint32_t>(chars_.size());
      chars_ += ByteToUnicode(byte);
      const auto n = static_cast<int32_t>(i);
      symbols_.push_back({begin, static_cast<uint32_t>(chars_.size()) - begin, n - 1,
                          i + 1 == word.size() ? -1 : n + 1, index.ByteCharId(byte)});
    }
  }

  const std::string& chars() const { return chars_; }

  void Run(std::vector<int32_t>* out) {
    for (int32_t i = 1; i < static_cast<int32_t>(symbols_.size()); ++i) TryAdd(i - 1, i);
    while (!queue_.empty()) {
      const Bigram b = queue_.top();
      queue_.pop();
      Symbol& left = symbols_[b.left];
      Symbol& right = symbols_[b.right];
      if (left.length == 0 || right.length == 0 || left.next != b.right ||
          left.length + right.length != b.length) {
        continue;  // stale: one side changed since the pair was queued
      }
      left.length += right.length;
      left.id = b.merged >= 0 ? b.merged : index_.Find(Text(left));
      right.length = 0;
      left.next = right.next;
      if (right.next >= 0) symbols_[right.next].prev = b.left;
      TryAdd(left.prev, b.left);
      TryAdd(b.left, left.next);
    }
    Emit(out);
  }

 private:
  std::string_view Text(const Symbol& s) const {
    return std::string_view(chars_).substr(s.begin, s.length);
  }

  void TryAdd(int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const Symbol& l = symbols_[left];
    const Symbol& r = symbols_[right];
    PieceIndex::Merge merge;
    if (l.id >= 0 && r.id >= 0) {
      merge = index_.MergeOf(l.id, r.id);
    } else {  // a side that is no piece: only the merge's text can name it
      key_.assign(Text(l));
      key_.push_back(' ');
      key_.append(Text(r));
      merge.rank = index_.MergeRank(key_);
    }
    if (merge.rank < 0) return;
    queue_.push({merge.rank, left, right, l.length + r.length, merge.merged});
  }

  void Emit(std::vector<int32_t>* out) const {
    for (int32_t i = symbols_.empty() ? -1 : 0; i != -1; i = symbols_[i].next) {
      if (symbols_[i].id >= 0) {
        out->push_back(symbols_[i].id);
        continue;
      }
      // Not a piece: spell it one byte character at a time (unk when even that fails).
      for (const Utf8Char& c : SplitUtf8(Text(symbols_[i]))) {
        const int byte = UnicodeToByte(c.cp);
        const int32_t byte_id = byte >= 0 ? index_.ByteToken(static_cast<uint8_t>(byte)) : -1;
        if (byte_id >= 0) out->push_back(byte_id);
      }
    }
  }

  const PieceIndex& index_;
  std::string chars_;
  std::vector<Symbol> symbols_;
  BigramQueue queue_;
  std::string key_;
};

}  // namespace

void EncodeByteLevelWord(std::string_view word, const PieceIndex& index,
                         std::vector<int32_t>* out) {
  WordMerger merger(word, index);
  if (index.ignore_merges()) {
    if (const int32_t id = index.Find(merger.chars()); id >= 0) {
      out->push_back(id);
      return;
    }
  }
  merger.Run(out);
}

}  // namespace ringserve::tokenizer
