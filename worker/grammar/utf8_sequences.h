// Sets of Unicode code points, and their UTF-8 encodings as sequences of byte ranges, so
// that a regular expression over characters becomes an automaton over the bytes a model
// emits. Private to worker/grammar.
#ifndef RINGSERVE_WORKER_GRAMMAR_UTF8_SEQUENCES_H_
#define RINGSERVE_WORKER_GRAMMAR_UTF8_SEQUENCES_H_

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace ringserve::grammar {

inline constexpr uint32_t kMaxCodePoint = 0x10FFFF;

struct CodePointRange {
  uint32_t first = 0;
  uint32_t last = 0;  // inclusive

  friend bool operator==(const CodePointRange&, const CodePointRange&) = default;
};

// A set of code points as sorted, disjoint, non-adjacent ranges. Surrogates (U+D800..DFFF)
// are never members: UTF-8 cannot encode them.
class CodePointSet {
 public:
  CodePointSet() = default;
  static CodePointSet Of(uint32_t code_point) { return Range(code_point, code_point); }
  static CodePointSet Range(uint32_t first, uint32_t last);
  static CodePointSet All() { return Range(0, kMaxCodePoint); }

  void Add(const CodePointSet& other);
  CodePointSet Complement() const;

  bool empty() const { return ranges_.empty(); }
  const std::vector<CodePointRange>& ranges() const { return ranges_; }

  friend bool operator==(const CodePointSet&, const CodePointSet&) = default;

 private:
  void Normalize();  // sorts, merges, and drops the surrogates

  std::vector<CodePointRange> ranges_;
};

struct ByteRange {
  uint8_t first = 0;
  uint8_t last = 0;  // inclusive
};

// The UTF-8 encodings of the set's code points as sequences of byte ranges: a byte string
// is the encoding of a member exactly when one sequence has its length and each byte lies
// in that sequence's range at its position. The sequences are disjoint, and only valid
// UTF-8 (shortest form, no surrogates) matches them.
std::vector<std::vector<ByteRange>> Utf8Sequences(const CodePointSet& set);

// The length of the UTF-8 character at text[pos] (pos < text.size(); shortest form, no
// surrogates) and its code point; 0 when the bytes there are not one.
size_t DecodeUtf8(std::string_view text, size_t pos, uint32_t* code_point);

}  // namespace ringserve::grammar

#endif  // RINGSERVE_WORKER_GRAMMAR_UTF8_SEQUENCES_H_
