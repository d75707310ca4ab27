// UTF-8 and Unicode helpers for the tokenisers: lenient UTF-8 splitting (bad bytes become
// single-byte units, never an error), general-category classes and letter case for the
// pre-tokenisers' \p{..} classes, GPT-2's bytes_to_unicode mapping, and U+FFFD repair of
// byte streams. All functions are pure and thread-safe.
#ifndef RINGSERVE_WORKER_TOKENIZER_UNICODE_H_
#define RINGSERVE_WORKER_TOKENIZER_UNICODE_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ringserve::tokenizer {

inline constexpr uint32_t kReplacementChar = 0xFFFD;

// Unicode general category, by major class (L, N, P, S, M, Z, C) plus unassigned (Cn).
enum class CharCategory : uint8_t {
  kOther = 0,  // Cc, Cf, Co, Cs
  kLetter = 1,
  kNumber = 2,
  kPunctuation = 3,
  kSymbol = 4,
  kMark = 5,
  kSeparator = 6,
  kUnassigned = 7,
};

CharCategory CategoryOf(uint32_t cp);

// The case of a letter: upper for Lu and Lt (title case), lower for Ll, none for the
// caseless letters (Lm, Lo) and every other code point.
enum class LetterCase : uint8_t {
  kNone = 0,
  kUpper = 1,
  kLower = 2,
};

LetterCase CaseOf(uint32_t cp);
inline bool IsLetter(uint32_t cp) { return CategoryOf(cp) == CharCategory::kLetter; }
inline bool IsNumber(uint32_t cp) { return CategoryOf(cp) == CharCategory::kNumber; }
// The Unicode White_Space property (what regex \s means in PCRE/Rust/Oniguruma and what
// llama.cpp's unicode_cpt_flags::is_whitespace holds).
bool IsWhitespace(uint32_t cp);

// One UTF-8 character of a text. An invalid byte is a unit of its own with
// cp = kReplacementChar and valid = false, so no input is ever rejected.
struct Utf8Char {
  uint32_t cp;
  uint32_t offset;  // byte offset in the text
  uint8_t length;   // bytes
  bool valid;
};

std::vector<Utf8Char> SplitUtf8(std::string_view text);

// Length of a well-formed UTF-8 sequence starting at text[pos] (Unicode Table 3-7), or 0.
size_t ValidUtf8Length(std::string_view text, size_t pos);

void AppendUtf8(uint32_t cp, std::string* out);

// GPT-2 bytes_to_unicode (openai/gpt-2 encoder.py): every byte maps to a printable code
// point, so byte-level BPE pieces are valid UTF-8 strings.
const std::string& ByteToUnicode(uint8_t byte);
// The inverse: the byte a code point stands for, or -1 when it stands for none.
int UnicodeToByte(uint32_t cp);

// Appends the longest repaired prefix of `bytes` to `out` and returns the bytes consumed.
// Ill-formed subsequences become U+FFFD, one per maximal subpart (the W3C/Unicode
// "substitution of maximal subparts" practice). With `final` false an incomplete
// sequence at the end is left unconsumed, because more bytes may complete it; the output
// is prefix-stable, so repairing a stream piecewise equals repairing it whole.
size_t RepairUtf8(std::string_view bytes, bool final, std::string* out);

bool IsValidUtf8(std::string_view text);

}  // namespace ringserve::tokenizer

#endif  // RINGSERVE_WORKER_TOKENIZER_UNICODE_H_
