#include "worker/grammar/utf8_sequences.h"

#include <algorithm>
#include <array>

namespace ringserve::grammar {
namespace {

constexpr uint32_t kSurrogateFirst = 0xD800;
constexpr uint32_t kSurrogateLast = 0xDFFF;

int EncodedLength(uint32_t code_point) {
  if (code_point < 0x80) return 1;
  if (code_point < 0x800) return 2;
  if (code_point < 0x10000) return 3;
  return 4;
}

std::array<uint8_t, 4> Encode(uint32_t c, int length) {
  switch (length) {
    case 1:
      return {static_cast<uint8_t>(c)};
    case 2:
      return {static_cast<uint8_t>(0xC0 | (c >> 6)), static_cast<uint8_t>(0x80 | (c & 0x3F))};
    case 3:
      return {static_cast<uint8_t>(0xE0 | (c >> 12)),
              static_cast<uint8_t>(0x80 | ((c >> 6) & 0x3F)),
              static_cast<uint8_t>(0x80 | (c & 0x3F))};
    default:
      return {
          static_cast<uint8_t>(0xF0 | (c >> 18)), static_cast<uint8_t>(0x80 | ((c >> 12) & 0x3F)),
          static_cast<uint8_t>(0x80 | ((c >> 6) & 0x3F)), static_cast<uint8_t>(0x80 | (c & 0x3F))};
  }
}

// [first, last] share an encoded length. Splits it until, at every byte position, the
// encodings of the range are all the bytes between those of `first` and `last`: then the
// range is one sequence of byte ranges.
void Split(uint32_t first, uint32_t last, std::vector<std::vector<ByteRange>>& out) {
  const int length = EncodedLength(first);
  for (int i = 1; i < length; ++i) {
    const uint32_t low_bits = (uint32_t{1} << (6 * i)) - 1;  // the last i bytes' payload
    if ((first & ~low_bits) == (last & ~low_bits)) continue;
    if ((first & low_bits) != 0) {
      Split(first, first | low_bits, out);
      Split((first | low_bits) + 1, last, out);
      return;
    }
    if ((last & low_bits) != low_bits) {
      Split(first, (last & ~low_bits) - 1, out);
      Split(last & ~low_bits, last, out);
      return;
    }
  }
  const std::array<uint8_t, 4> a = Encode(first, length);
  const std::array<uint8_t, 4> b = Encode(last, length);
  std::vector<ByteRange>& sequence = out.emplace_back();
  for (int i = 0; i < length; ++i) sequence.push_back({.first = a[i], .last = b[i]});
}

}  // namespace

CodePointSet CodePointSet::Range(uint32_t first, uint32_t last) {
  CodePointSet set;
  if (first <= last) set.ranges_.push_back({.first = first, .last = std::min(last, kMaxCodePoint)});
  set.Normalize();
  return set;
}

void CodePointSet::Add(const CodePointSet& other) {
  ranges_.insert(ranges_.end(), other.ranges_.begin(), other.ranges_.end());
  Normalize();
}

CodePointSet CodePointSet::Complement() const {
  CodePointSet out;
  uint32_t next = 0;
  for (const CodePointRange& r : ranges_) {
    if (r.first > next) out.ranges_.push_back({.first = next, .last = r.first - 1});
    next = r.last + 1;
  }
  if (next <= kMaxCodePoint) out.ranges_.push_back({.first = next, .last = kMaxCodePoint});
  out.Normalize();
  return out;
}

void CodePointSet::Normalize() {
  std::vector<CodePointRange> split;
  for (const CodePointRange& r : ranges_) {
    if (r.first > r.last || r.first > kMaxCodePoint) continue;
    const uint32_t last = std::min(r.last, kMaxCodePoint);
    if (last < kSurrogateFirst || r.first > kSurrogateLast) {
      split.push_back({.first = r.first, .last = last});
      continue;
    }
    if (r.first < kSurrogateFirst) split.push_back({.first = r.first, .last = kSurrogateFirst - 1});
    if (last > kSurrogateLast) split.push_back({.first = kSurrogateLast + 1, .last = last});
  }
  std::sort(split.begin(), split.end(),
            [](const CodePointRange& a, const CodePointRange& b) { return a.first < b.first; });
  ranges_.clear();
  for (const CodePointRange& r : split) {
    if (!ranges_.empty() && r.first <= ranges_.back().last + 1) {
      ranges_.back().last = std::max(ranges_.back().last, r.last);
    } else {
      ranges_.push_back(r);
    }
  }
}

std::vector<std::vector<ByteRange>> Utf8Sequences(const CodePointSet& set) {
  static constexpr uint32_t kLengthEnds[] = {0x7F, 0x7FF, 0xFFFF, kMaxCodePoint};
  std::vector<std::vector<ByteRange>> out;
  for (const CodePointRange& r : set.ranges()) {
    uint32_t first = r.first;
    for (const uint32_t end : kLengthEnds) {
      if (first > r.last) break;
      if (first > end) continue;
      const uint32_t last = std::min(r.last, end);
      Split(first, last, out);
      first = last + 1;
    }
  }
  return out;
}

size_t DecodeUtf8(std::string_view text, size_t pos, uint32_t* code_point) {
  const auto lead = static_cast<uint8_t>(text[pos]);
  size_t length = 0;
  uint32_t value = 0;
  if (lead < 0x80) {
    *code_point = lead;
    return 1;
  }
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
    value = lead & 0x1F;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    value = lead & 0x0F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    value = lead & 0x07;
  } else {
    return 0;
  }
  if (pos + length > text.size()) return 0;
  for (size_t i = 1; i < length; ++i) {
    const auto byte = static_cast<uint8_t>(text[pos + i]);
    if ((byte & 0xC0) != 0x80) return 0;
    value = (value << 6) | (byte & 0x3F);
  }
  static constexpr uint32_t kShortest[] = {0, 0, 0x80, 0x800, 0x10000};
  if (value < kShortest[length] || value > kMaxCodePoint || (value >= 0xD800 && value <= 0xDFFF)) {
    return 0;
  }
  *code_point = value;
  return length;
}

}  // namespace ringserve::grammar
