#include "worker/tokenizer/unicode.h"

#include <algorithm>
#include <array>
#include <iterator>
#include <span>

namespace ringserve::tokenizer {
namespace {

// A run of code points sharing one table value, up to the next run's first.
struct CodeRun {
  uint32_t first;
  uint8_t value;
};

uint8_t RunValueOf(std::span<const CodeRun> runs, uint32_t cp) {
  const auto it = std::upper_bound(runs.begin(), runs.end(), cp,
                                   [](uint32_t v, const CodeRun& r) { return v < r.first; });
  return std::prev(it)->value;
}

#include "worker/tokenizer/unicode_tables.inc"

// Second-byte bounds of a sequence by lead byte (Unicode Table 3-7, "Well-Formed UTF-8
// Byte Sequences"); later continuation bytes are always 80..BF.
struct LeadInfo {
  uint8_t length;  // 0 = not a lead byte
  uint8_t lo;
  uint8_t hi;
};

LeadInfo LeadInfoOf(uint8_t b) {
  if (b < 0x80) return {1, 0, 0};
  if (b < 0xC2) return {0, 0, 0};
  if (b < 0xE0) return {2, 0x80, 0xBF};
  if (b == 0xE0) return {3, 0xA0, 0xBF};
  if (b == 0xED) return {3, 0x80, 0x9F};
  if (b < 0xF0) return {3, 0x80, 0xBF};
  if (b == 0xF0) return {4, 0x90, 0xBF};
  if (b < 0xF4) return {4, 0x80, 0xBF};
  if (b == 0xF4) return {4, 0x80, 0x8F};
  return {0, 0, 0};
}

// How many bytes from `pos` form a well-formed prefix of a sequence (1 for the lead byte
// alone); `complete` tells whether that prefix is the whole sequence.
size_t WellFormedPrefix(std::string_view text, size_t pos, bool* complete) {
  const LeadInfo info = LeadInfoOf(static_cast<uint8_t>(text[pos]));
  *complete = info.length == 1;
  if (info.length <= 1) return 1;
  size_t i = 1;
  for (; i < info.length && pos + i < text.size(); ++i) {
    const auto b = static_cast<uint8_t>(text[pos + i]);
    const uint8_t lo = i == 1 ? info.lo : 0x80;
    const uint8_t hi = i == 1 ? info.hi : 0xBF;
    if (b < lo || b > hi) return i;
  }
  *complete = i == info.length;
  return i;
}

std::array<std::string, 256> BuildByteToUnicode() {
  std::array<std::string, 256> table;
  int next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    AppendUtf8(printable ? static_cast<uint32_t>(b) : static_cast<uint32_t>(next++), &table[b]);
  }
  return table;
}

}  // namespace

CharCategory CategoryOf(uint32_t cp) {
  if (cp > 0x10FFFF) return CharCategory::kUnassigned;
  return static_cast<CharCategory>(RunValueOf(kCategoryRuns, cp));
}

LetterCase CaseOf(uint32_t cp) {
  if (cp > 0x10FFFF) return LetterCase::kNone;
  return static_cast<LetterCase>(RunValueOf(kLetterCaseRuns, cp));
}

bool IsWhitespace(uint32_t cp) {
  if (cp < 0x80) return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20;
  return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
         cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

size_t ValidUtf8Length(std::string_view text, size_t pos) {
  bool complete = false;
  const size_t n = WellFormedPrefix(text, pos, &complete);
  return complete ? n : 0;
}

std::vector<Utf8Char> SplitUtf8(std::string_view text) {
  std::vector<Utf8Char> chars;
  chars.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    const size_t n = ValidUtf8Length(text, pos);
    if (n == 0) {
      chars.push_back({kReplacementChar, static_cast<uint32_t>(pos), 1, false});
      ++pos;
      continue;
    }
    const auto lead = static_cast<uint8_t>(text[pos]);
    uint32_t cp = n == 1 ? lead : lead & (0x7F >> n);
    for (size_t i = 1; i < n; ++i) cp = (cp << 6) | (static_cast<uint8_t>(text[pos + i]) & 0x3F);
    chars.push_back({cp, static_cast<uint32_t>(pos), static_cast<uint8_t>(n), true});
    pos += n;
  }
  return chars;
}

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

const std::string& ByteToUnicode(uint8_t byte) {
  static const std::array<std::string, 256> table = BuildByteToUnicode();
  return table[byte];
}

int UnicodeToByte(uint32_t cp) {
  // The mapping's code points are all below 0x144 (256 + 68 remapped bytes).
  static const std::array<int16_t, 0x144> inverse = [] {
    std::array<int16_t, 0x144> inv;
    inv.fill(-1);
    for (int b = 0; b < 256; ++b) {
      const std::vector<Utf8Char> chars = SplitUtf8(ByteToUnicode(static_cast<uint8_t>(b)));
      inv[chars[0].cp] = static_cast<int16_t>(b);
    }
    return inv;
  }();
  return cp < inverse.size() ? inverse[cp] : -1;
}

size_t RepairUtf8(std::string_view bytes, bool final, std::string* out) {
  size_t pos = 0;
  while (pos < bytes.size()) {
    bool complete = false;
    const size_t n = WellFormedPrefix(bytes, pos, &complete);
    if (complete) {
      out->append(bytes.substr(pos, n));
    } else if (pos + n == bytes.size() && !final &&
               LeadInfoOf(static_cast<uint8_t>(bytes[pos])).length > 0) {
      return pos;  // a valid start that later bytes may complete
    } else {
      AppendUtf8(kReplacementChar, out);
    }
    pos += n;
  }
  return pos;
}

bool IsValidUtf8(std::string_view text) {
  for (size_t pos = 0; pos < text.size();) {
    const size_t n = ValidUtf8Length(text, pos);
    if (n == 0) return false;
    pos += n;
  }
  return true;
}

}  // namespace ringserve::tokenizer
