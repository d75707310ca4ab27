// SentencePiece-style BPE as llama.cpp (src/llama-vocab.cpp, llm_tokenizer_spm_session)
// and llama2.c (run.c, encode()) run it. Both pick the highest-scoring mergeable pair,
// leftmost on ties; llama2.c rescans the whole sequence per merge (O(n^2)), llama.cpp uses
// a priority queue with lazy deletion of stale pairs, which gives the same merges in
// O(n log n) and is what this follows.
#include <algorithm>
#include <cstdint>
#include <queue>
#include <string_view>
#include <vector>

#include "worker/tokenizer/piece_index.h"
#include "worker/tokenizer/unicode.h"

namespace ringserve::tokenizer {
namespace {

struct Symbol {
  uint32_t begin;   // byte offset in the text
  uint32_t length;  // 0 once merged into its left neighbour
  int32_t prev;
  int32_t next;
};

struct Bigram {
  float score;
  int32_t left;
  int32_t right;
  uint32_t length;  // bytes of the merged piece, to detect stale entries
};

// Highest score first; among equal scores the leftmost pair.
struct BigramOrder {
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  }
};

using BigramQueue = std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder>;

void TryAddBigram(std::string_view text, const std::vector<Symbol>& symbols, int32_t left,
                  int32_t right, const PieceIndex& index, BigramQueue* queue) {
  if (left < 0 || right < 0) return;
  const Symbol& l = symbols[left];
  const uint32_t length = l.length + symbols[right].length;
  const int32_t id = index.Find(text.substr(l.begin, length));
  if (id < 0) return;
  queue->push({index.Score(id), left, right, length});
}

}  // namespace

void EncodeSentencePiece(std::string_view text, const PieceIndex& index,
                         std::vector<int32_t>* out) {
  // Characters by UTF-8 lead byte; an invalid byte is a symbol of its own and will be
  // spelled with its byte token.
  std::vector<Symbol> symbols;
  symbols.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    const size_t n = std::max<size_t>(ValidUtf8Length(text, pos), 1);
    const auto i = static_cast<int32_t>(symbols.size());
    symbols.push_back({static_cast<uint32_t>(pos), static_cast<uint32_t>(n), i - 1,
                       pos + n == text.size() ? -1 : i + 1});
    pos += n;
  }
  BigramQueue queue;
  for (int32_t i = 1; i < static_cast<int32_t>(symbols.size()); ++i) {
    TryAddBigram(text, symbols, i - 1, i, index, &queue);
  }
  while (!queue.empty()) {
    const Bigram bigram = queue.top();
    queue.pop();
    Symbol& left = symbols[bigram.left];
    Symbol& right = symbols[bigram.right];
    if (left.length == 0 || right.length == 0 || left.length + right.length != bigram.length) {
      continue;  // one side already merged elsewhere
    }
    left.length += right.length;
    right.length = 0;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = bigram.left;
    TryAddBigram(text, symbols, left.prev, bigram.left, index, &queue);
    TryAddBigram(text, symbols, bigram.left, left.next, index, &queue);
  }
  for (int32_t i = symbols.empty() ? -1 : 0; i != -1; i = symbols[i].next) {
    const Symbol& s = symbols[i];
    const int32_t id = index.Find(text.substr(s.begin, s.length));
    if (id >= 0) {
      out->push_back(id);
      continue;
    }
    for (uint32_t k = 0; k < s.length; ++k) {  // byte fallback
      const int32_t byte_id = index.ByteToken(static_cast<uint8_t>(text[s.begin + k]));
      if (byte_id >= 0) out->push_back(byte_id);
    }
  }
}

}  // namespace ringserve::tokenizer
