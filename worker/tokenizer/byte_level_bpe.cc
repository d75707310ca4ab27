// Byte-level BPE (GPT-2, openai/gpt-2 encoder.py) as llama.cpp's llm_tokenizer_bpe_session
// runs it: the word's bytes become GPT-2 byte characters, then the pair with the lowest
// merge rank (leftmost on ties) merges until none is left. Priority queue with lazy
// deletion: O(n log n) per word.
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
};

struct Bigram {
  int32_t rank;
  int32_t left;
  int32_t right;
  uint32_t length;
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
  WordMerger(std::string chars, const PieceIndex& index)
      : chars_(std::move(chars)), index_(index) {}

  void Run(std::vector<int32_t>* out) {
    for (size_t pos = 0; pos < chars_.size();) {
      const size_t n = ValidUtf8Length(chars_, pos);  // always >= 1: the string is valid
      const auto i = static_cast<int32_t>(symbols_.size());
      symbols_.push_back({static_cast<uint32_t>(pos), static_cast<uint32_t>(n), i - 1,
                          pos + n == chars_.size() ? -1 : i + 1});
      pos += n;
    }
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
    key_.assign(Text(symbols_[left]));
    key_.push_back(' ');
    key_.append(Text(symbols_[right]));
    const int32_t rank = index_.MergeRank(key_);
    if (rank < 0) return;
    queue_.push({rank, left, right, symbols_[left].length + symbols_[right].length});
  }

  void Emit(std::vector<int32_t>* out) const {
    for (int32_t i = symbols_.empty() ? -1 : 0; i != -1; i = symbols_[i].next) {
      const std::string_view text = Text(symbols_[i]);
      const int32_t id = index_.Find(text);
      if (id >= 0) {
        out->push_back(id);
        continue;
      }
      // Not a piece: spell it one byte character at a time (unk when even that fails).
      for (const Utf8Char& c : SplitUtf8(text)) {
        const int byte = UnicodeToByte(c.cp);
        const int32_t byte_id = byte >= 0 ? index_.ByteToken(static_cast<uint8_t>(byte)) : -1;
        if (byte_id >= 0) out->push_back(byte_id);
      }
    }
  }

  std::string chars_;
  const PieceIndex& index_;
  std::vector<Symbol> symbols_;
  BigramQueue queue_;
  std::string key_;
};

}  // namespace

void EncodeByteLevelWord(std::string_view word, const PieceIndex& index,
                         std::vector<int32_t>* out) {
  std::string chars;
  chars.reserve(word.size() * 2);
  for (char c : word) chars += ByteToUnicode(static_cast<uint8_t>(c));
  if (index.ignore_merges()) {
    if (const int32_t id = index.Find(chars); id >= 0) {
      out->push_back(id);
      return;
    }
  }
  WordMerger(std::move(chars), index).Run(out);
}

}  // namespace ringserve::tokenizer
