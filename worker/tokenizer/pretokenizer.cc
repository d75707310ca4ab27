#include "worker/tokenizer/pretokenizer.h"

#include <algorithm>
#include <array>
#include <span>
#include <string>

#include "absl/strings/str_cat.h"
#include "worker/tokenizer/piece_index.h"
#include "worker/tokenizer/pretokenizer_ranges.h"
#include "worker/tokenizer/unicode.h"

namespace ringserve::tokenizer {
namespace {

constexpr uint32_t kOutOfRange = 0xFFFFFFFF;

// The classes of a code point the splitters test, looked up once per character of a text
// (each lookup is a binary search of the Unicode tables, and a split tests a character
// several times).
enum ClassBit : uint8_t {
  kLetterBit = 1,        // \p{L}
  kNumberBit = 2,        // \p{N}
  kSpaceBit = 4,         // \s
  kTekkenUpperBit = 8,   // [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]: a word's capitals
  kTekkenLowerBit = 16,  // [\p{Ll}\p{Lm}\p{Lo}\p{M}]: the rest of a word
};

uint8_t ClassesOf(uint32_t cp) {
  const CharCategory cat = CategoryOf(cp);
  uint8_t bits = IsWhitespace(cp) ? kSpaceBit : 0;
  if (cat == CharCategory::kNumber) bits |= kNumberBit;
  if (cat == CharCategory::kMark) bits |= kTekkenUpperBit | kTekkenLowerBit;
  if (cat == CharCategory::kLetter) {
    // Caseless letters (Lm, Lo) are in both of Tekken's classes.
    const LetterCase letter_case = CaseOf(cp);
    bits |= kLetterBit;
    if (letter_case != LetterCase::kLower) bits |= kTekkenUpperBit;
    if (letter_case != LetterCase::kUpper) bits |= kTekkenLowerBit;
  }
  return bits;
}

// One chunk [begin, end) of the text's code points. Reads outside the chunk return
// kOutOfRange and match no class: llama.cpp applies each regex to each chunk as a
// separate subject, so a chunk edge acts like the end of the text (e.g. for (?!\S)).
class Chunk {
 public:
  Chunk(const std::vector<Utf8Char>& chars, const std::vector<uint8_t>& classes, size_t begin,
        size_t end)
      : chars_(chars), classes_(classes), begin_(begin), end_(end) {}
  size_t begin() const { return begin_; }
  size_t end() const { return end_; }
  uint32_t Cp(size_t pos) const {
    return pos >= begin_ && pos < end_ ? chars_[pos].cp : kOutOfRange;
  }
  bool Letter(size_t pos) const { return Has(pos, kLetterBit); }
  bool Number(size_t pos) const { return Has(pos, kNumberBit); }
  bool Space(size_t pos) const { return Has(pos, kSpaceBit); }
  bool TekkenUpper(size_t pos) const { return Has(pos, kTekkenUpperBit); }
  bool TekkenLower(size_t pos) const { return Has(pos, kTekkenLowerBit); }
  // In the chunk and neither whitespace, letter nor number: [^\s\p{L}\p{N}].
  bool Other(size_t pos) const {
    return pos >= begin_ && pos < end_ &&
           (classes_[pos] & (kLetterBit | kNumberBit | kSpaceBit)) == 0;
  }

 private:
  bool Has(size_t pos, uint8_t bit) const {
    return pos >= begin_ && pos < end_ && (classes_[pos] & bit) != 0;
  }
  const std::vector<Utf8Char>& chars_;
  const std::vector<uint8_t>& classes_;
  size_t begin_;
  size_t end_;
};

// Appends the non-empty chunk lengths (in code points) as a split walks forward.
class Emitter {
 public:
  Emitter(size_t begin, std::vector<size_t>* out) : prev_(begin), out_(out) {}
  size_t Emit(size_t end) {
    const size_t len = end - prev_;
    if (len > 0) out_->push_back(len);
    prev_ = end;
    return len;
  }

 private:
  size_t prev_;
  std::vector<size_t>* out_;
};

uint32_t AsciiLower(uint32_t cp) { return cp >= 'A' && cp <= 'Z' ? cp + 32 : cp; }

// 's|'t|'re|'ve|'m|'ll|'d, optionally case-insensitive; returns the match length or 0.
size_t ContractionLength(const Chunk& c, size_t pos, bool ignore_case) {
  if (c.Cp(pos) != '\'' || pos + 1 >= c.end()) return 0;
  auto at = [&](size_t p) { return ignore_case ? AsciiLower(c.Cp(p)) : c.Cp(p); };
  const uint32_t next = at(pos + 1);
  if (next == 's' || next == 't' || next == 'm' || next == 'd') return 2;
  if (pos + 2 >= c.end()) return 0;
  const uint32_t next2 = at(pos + 2);
  if ((next == 'r' && next2 == 'e') || (next == 'v' && next2 == 'e') ||
      (next == 'l' && next2 == 'l')) {
    return 3;
  }
  return 0;
}

// The GPT-2 pattern, as llama.cpp's unicode_regex_split_custom_gpt2 evaluates it.
void SplitGpt2(const Chunk& c, std::vector<size_t>* out) {
  Emitter emit(c.begin(), out);
  for (size_t pos = c.begin(); pos < c.end();) {
    if (const size_t n = ContractionLength(c, pos, false)) {
      pos += emit.Emit(pos + n);
      continue;
    }
    const size_t p2 = c.Cp(pos) == ' ' ? pos + 1 : pos;  // the optional leading space
    if (c.Letter(p2) || c.Number(p2) || c.Other(p2)) {
      const bool letter = c.Letter(p2);
      const bool number = c.Number(p2);
      pos = p2;
      while (letter ? c.Letter(pos) : number ? c.Number(pos) : c.Other(pos)) ++pos;
      emit.Emit(pos);
      continue;
    }
    size_t num_spaces = 0;
    while (c.Space(pos + num_spaces)) ++num_spaces;
    if (num_spaces > 1 && c.Cp(pos + num_spaces) != kOutOfRange) {
      pos += num_spaces - 1;  // \s+(?!\S): leave the last space to the next word
    } else if (num_spaces > 0) {
      pos += num_spaces;
    } else {
      ++pos;
    }
    emit.Emit(pos);
  }
}

bool IsCrLf(uint32_t cp) { return cp == '\r' || cp == '\n'; }

// Whitespace runs of the Llama 3 pattern: \s*[\r\n]+ | \s+(?!\S) | \s+.
size_t Llama3SpaceEnd(const Chunk& c, size_t pos) {
  size_t num_spaces = 0;
  size_t last_crlf_end = 0;
  while (c.Space(pos + num_spaces)) {
    if (IsCrLf(c.Cp(pos + num_spaces))) last_crlf_end = pos + num_spaces + 1;
    ++num_spaces;
  }
  if (last_crlf_end > 0) return last_crlf_end;
  if (num_spaces > 1 && c.Cp(pos + num_spaces) != kOutOfRange) return pos + num_spaces - 1;
  return pos + std::max<size_t>(num_spaces, 1);
}

// The Llama 3 pattern with \p{N}{1,max_digits}, as llama.cpp's
// unicode_regex_split_custom_llama3 evaluates it (Qwen2 is the same with single digits).
void SplitLlama3(const Chunk& c, size_t max_digits, std::vector<size_t>* out) {
  Emitter emit(c.begin(), out);
  for (size_t pos = c.begin(); pos < c.end();) {
    const uint32_t cp = c.Cp(pos);
    if (const size_t n = ContractionLength(c, pos, true)) {
      pos += emit.Emit(pos + n);
      continue;
    }
    // [^\r\n\p{L}\p{N}]?\p{L}+
    if (!IsCrLf(cp) && !c.Number(pos) && (c.Letter(pos) || c.Letter(pos + 1))) {
      ++pos;
      while (c.Letter(pos)) ++pos;
      emit.Emit(pos);
      continue;
    }
    if (c.Number(pos)) {
      for (size_t first = pos; c.Number(pos);) {
        if (++pos - first >= max_digits) {
          emit.Emit(pos);
          first = pos;
        }
      }
      emit.Emit(pos);
      continue;
    }
    // ' ?[^\s\p{L}\p{N}]+[\r\n]*'; llama.cpp tests the class at pos + 1 only for a space.
    const size_t p2 = cp == ' ' ? pos + 1 : pos;
    if (!c.Space(p2) && !c.Letter(p2) && !c.Number(p2)) {
      pos = p2;
      while (c.Other(pos)) ++pos;
      while (IsCrLf(c.Cp(pos))) ++pos;
      emit.Emit(pos);
      continue;
    }
    pos = Llama3SpaceEnd(c, pos);
    emit.Emit(pos);
  }
}

// Where U*L+ (`need_lower`) or U+L* matched from `pos` ends, or 0 for no match: the
// backtracking regex gives the capitals back one at a time until a lower-case letter
// follows them, and its first success is the match.
size_t TekkenWordEnd(const Chunk& c, size_t pos, bool need_lower) {
  auto upper = [&](size_t p) { return c.TekkenUpper(p); };
  auto lower = [&](size_t p) { return c.TekkenLower(p); };
  size_t caps = pos;
  while (upper(caps)) ++caps;
  size_t from = caps;
  if (need_lower) {
    while (from > pos && !lower(from)) --from;
    if (!lower(from)) return 0;
  } else if (caps == pos) {
    return 0;
  }
  while (lower(from)) ++from;
  return from;
}

// Mistral's Tekken pattern (tekken.json and its tokenizer.json; leftmost-first, as
// tiktoken and Hugging Face evaluate it):
//   [^\r\n\p{L}\p{N}]?U*L+ | [^\r\n\p{L}\p{N}]?U+L* | \p{N} | ' '?[^\s\p{L}\p{N}]+[\r\n/]*
//   | \s*[\r\n]+ | \s+(?!\S) | \s+
// with U and L the classes of ClassBit. llama.cpp approximates U and L by "a letter not a-z" and
// "a letter not A-Z", which splits words at accented capitals and at combining marks
// (Devanagari's vowel signs); ringserve keeps the checkpoint's own split.
void SplitTekken(const Chunk& c, std::vector<size_t>* out) {
  Emitter emit(c.begin(), out);
  for (size_t pos = c.begin(); pos < c.end();) {
    const uint32_t cp = c.Cp(pos);
    // The optional lead [^\r\n\p{L}\p{N}] is tried taken first, then left out.
    const bool lead = !IsCrLf(cp) && !c.Letter(pos) && !c.Number(pos);
    size_t end = 0;
    for (bool need_lower : {true, false}) {
      if (lead) end = TekkenWordEnd(c, pos + 1, need_lower);
      if (end == 0) end = TekkenWordEnd(c, pos, need_lower);
      if (end != 0) break;
    }
    if (end == 0 && c.Number(pos)) end = pos + 1;
    if (end == 0) {
      const size_t p2 = cp == ' ' && c.Other(pos + 1) ? pos + 1 : pos;
      if (c.Other(p2)) {
        end = p2;
        while (c.Other(end)) ++end;
        while (IsCrLf(c.Cp(end)) || c.Cp(end) == '/') ++end;
      }
    }
    if (end == 0) end = Llama3SpaceEnd(c, pos);
    pos = end;
    emit.Emit(pos);
  }
}

// Splits a chunk at each leftmost match of `match(pos)` (the match length, 0 = none),
// keeping the gaps: what std::regex_iterator gives llama.cpp for the simple patterns.
template <typename Match>
void SplitMatches(const Chunk& c, Match match, std::vector<size_t>* out) {
  Emitter emit(c.begin(), out);
  for (size_t pos = c.begin(); pos < c.end();) {
    const size_t n = match(pos);
    if (n == 0) {
      ++pos;
      continue;
    }
    emit.Emit(pos);
    pos += n;
    emit.Emit(pos);
  }
  emit.Emit(c.end());
}

template <typename Pred>
size_t RunLength(const Chunk& c, size_t pos, Pred pred) {
  size_t n = 0;
  while (c.Cp(pos + n) != kOutOfRange && pred(c.Cp(pos + n))) ++n;
  return n;
}

void SplitSingleDigits(const Chunk& c, std::vector<size_t>* out) {
  SplitMatches(
      c, [&](size_t pos) -> size_t { return c.Number(pos) ? 1 : 0; }, out);
}

void SplitDigitRuns(const Chunk& c, std::vector<size_t>* out) {
  SplitMatches(
      c, [&](size_t pos) { return RunLength(c, pos, IsNumber); }, out);
}

void SplitThreeAsciiDigits(const Chunk& c, std::vector<size_t>* out) {
  auto digit = [](uint32_t cp) { return cp >= '0' && cp <= '9'; };
  SplitMatches(
      c, [&](size_t pos) -> size_t { return RunLength(c, pos, digit) >= 3 ? 3 : 0; }, out);
}

// [\p{P}\$\+<=>\^~\|]+
void SplitPunctuationRuns(const Chunk& c, std::vector<size_t>* out) {
  auto punct = [](uint32_t cp) {
    return CategoryOf(cp) == CharCategory::kPunctuation ||
           std::string_view("$+<=>^~|").find(static_cast<char>(cp)) != std::string_view::npos;
  };
  auto match = [&](size_t pos) { return RunLength(c, pos, punct); };
  SplitMatches(c, match, out);
}

// llama.cpp matches explicit code point classes with std::wregex after replacing every
// non-ASCII whitespace code point by U+000B, so such code points are never in a class.
bool InClass(std::span<const CodeRange> ranges, uint32_t cp) {
  if (cp > 0x7F && IsWhitespace(cp)) return false;
  return std::any_of(ranges.begin(), ranges.end(),
                     [cp](const CodeRange& r) { return cp >= r.first && cp <= r.last; });
}

// \s?[class]+
size_t SpaceThenClassRun(const Chunk& c, size_t pos, std::span<const CodeRange> ranges) {
  auto in = [ranges](uint32_t cp) { return InClass(ranges, cp); };
  if (c.Space(pos)) {
    const size_t n = RunLength(c, pos + 1, in);
    if (n > 0) return n + 1;
  }
  return RunLength(c, pos, in);
}

void SplitCrLf(const Chunk& c, std::vector<size_t>* out) {
  SplitMatches(
      c, [&](size_t pos) -> size_t { return IsCrLf(c.Cp(pos)) ? 1 : 0; }, out);
}
void SplitDeepseekLetters(const Chunk& c, std::vector<size_t>* out) {
  SplitMatches(
      c, [&](size_t pos) { return SpaceThenClassRun(c, pos, kDeepseekLetters); }, out);
}
void SplitDeepseekPunct(const Chunk& c, std::vector<size_t>* out) {
  SplitMatches(
      c, [&](size_t pos) { return SpaceThenClassRun(c, pos, kDeepseekPunct); }, out);
}
void SplitDeepseekCjk(const Chunk& c, std::vector<size_t>* out) {
  auto in = [](uint32_t cp) { return InClass(kDeepseekCjk, cp); };
  SplitMatches(
      c, [&](size_t pos) { return RunLength(c, pos, in); }, out);
}

// \s+$ : the whitespace that ends the chunk.
void SplitTrailingSpace(const Chunk& c, std::vector<size_t>* out) {
  size_t tail = c.end();
  while (tail > c.begin() && c.Space(tail - 1)) --tail;
  SplitMatches(
      c, [&](size_t pos) { return pos == tail ? c.end() - tail : 0; }, out);
}

void SplitGpt2Step(const Chunk& c, std::vector<size_t>* out) { SplitGpt2(c, out); }
void SplitLlama3Step(const Chunk& c, std::vector<size_t>* out) { SplitLlama3(c, 3, out); }
void SplitQwen2Step(const Chunk& c, std::vector<size_t>* out) { SplitLlama3(c, 1, out); }
void SplitTekkenStep(const Chunk& c, std::vector<size_t>* out) { SplitTekken(c, out); }

using Step = void (*)(const Chunk&, std::vector<size_t>*);

std::span<const Step> StepsOf(PreTokenizer kind) {
  static constexpr Step kDefaultSteps[] = {SplitPunctuationRuns, SplitGpt2Step, SplitDigitRuns,
                                           SplitThreeAsciiDigits};
  static constexpr Step kGpt2Steps[] = {SplitGpt2Step};
  static constexpr Step kLlama3Steps[] = {SplitLlama3Step};
  static constexpr Step kQwen2Steps[] = {SplitQwen2Step};
  static constexpr Step kTekkenSteps[] = {SplitTekkenStep};
  static constexpr Step kStarcoderSteps[] = {SplitSingleDigits, SplitGpt2Step};
  static constexpr Step kDeepseekSteps[] = {SplitCrLf,          SplitDeepseekLetters,
                                            SplitDeepseekPunct, SplitTrailingSpace,
                                            SplitDeepseekCjk,   SplitDigitRuns};
  switch (kind) {
    case PreTokenizer::kGpt2:
      return kGpt2Steps;
    case PreTokenizer::kLlama3:
      return kLlama3Steps;
    case PreTokenizer::kQwen2:
      return kQwen2Steps;
    case PreTokenizer::kStarcoder:
      return kStarcoderSteps;
    case PreTokenizer::kDeepseekLlm:
      return kDeepseekSteps;
    case PreTokenizer::kTekken:
      return kTekkenSteps;
    case PreTokenizer::kDefault:
      break;
  }
  return kDefaultSteps;
}

}  // namespace

absl::StatusOr<PreTokenizer> PreTokenizerFromName(std::string_view name) {
  struct Alias {
    std::string_view name;
    PreTokenizer kind;
  };
  // The names llama.cpp (llama-vocab.cpp, load()) maps onto each of these regex sets.
  static constexpr Alias kAliases[] = {
      {"default", PreTokenizer::kDefault},
      {"gpt2", PreTokenizer::kGpt2},
      {"gpt-2", PreTokenizer::kGpt2},
      {"phi-2", PreTokenizer::kGpt2},
      {"mpt", PreTokenizer::kGpt2},
      {"olmo", PreTokenizer::kGpt2},
      {"jais", PreTokenizer::kGpt2},
      {"llama3", PreTokenizer::kLlama3},
      {"llama-v3", PreTokenizer::kLlama3},
      {"llama-bpe", PreTokenizer::kLlama3},
      {"falcon3", PreTokenizer::kLlama3},
      {"dbrx", PreTokenizer::kLlama3},
      {"smaug-bpe", PreTokenizer::kLlama3},
      {"qwen2", PreTokenizer::kQwen2},
      {"stablelm2", PreTokenizer::kQwen2},
      {"deepseek-r1-qwen", PreTokenizer::kQwen2},
      {"deepseek-llm", PreTokenizer::kDeepseekLlm},
      {"starcoder", PreTokenizer::kStarcoder},
      {"refact", PreTokenizer::kStarcoder},
      {"command-r", PreTokenizer::kStarcoder},
      {"smollm", PreTokenizer::kStarcoder},
      {"codeshell", PreTokenizer::kStarcoder},
      {"tekken", PreTokenizer::kTekken},
  };
  for (const Alias& a : kAliases) {
    if (a.name == name) return a.kind;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unsupported pre-tokenizer '", ToAbsl(name),
      "' (supported: default, gpt2, llama-bpe, qwen2, deepseek-llm, starcoder, tekken and "
      "aliases)"));
}

std::vector<std::string_view> PreTokenize(PreTokenizer kind, std::string_view text) {
  const std::vector<Utf8Char> chars = SplitUtf8(text);
  std::vector<uint8_t> classes(chars.size());
  static const std::array<uint8_t, 128> kAsciiClasses = [] {
    std::array<uint8_t, 128> table{};
    for (uint32_t cp = 0; cp < table.size(); ++cp) table[cp] = ClassesOf(cp);
    return table;
  }();
  for (size_t i = 0; i < chars.size(); ++i) {
    const uint32_t cp = chars[i].cp;
    classes[i] = cp < kAsciiClasses.size() ? kAsciiClasses[cp] : ClassesOf(cp);
  }
  std::vector<size_t> lens;
  if (!chars.empty()) lens.push_back(chars.size());
  std::vector<size_t> next;
  for (Step step : StepsOf(kind)) {
    next.clear();
    size_t start = 0;
    for (size_t len : lens) {
      step(Chunk(chars, classes, start, start + len), &next);
      start += len;
    }
    lens.swap(next);
  }
  std::vector<std::string_view> words;
  words.reserve(lens.size());
  size_t start = 0;
  for (size_t len : lens) {
    const size_t byte_begin = chars[start].offset;
    start += len;
    const size_t byte_end = start < chars.size() ? chars[start].offset : text.size();
    words.push_back(text.substr(byte_begin, byte_end - byte_begin));
  }
  return words;
}

}  // namespace ringserve::tokenizer
