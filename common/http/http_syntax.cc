#include "common/http/http_syntax.h"

#include <algorithm>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"

namespace ringserve::http {

bool IsToken(absl::string_view s) {
  if (s.empty()) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
           absl::string_view("!#$%&'*+-.^_`|~").find(c) != absl::string_view::npos;
  });
}

bool IsFieldValue(absl::string_view s) {
  return std::none_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return (u < 0x20 && c != '\t') || u == 0x7f;
  });
}

absl::string_view TrimOws(absl::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::vector<std::string> ListElements(const Headers& headers, absl::string_view name) {
  std::vector<std::string> elements;
  for (const auto& [field, value] : headers) {
    if (field != name) continue;
    for (absl::string_view element : absl::StrSplit(value, ',')) {
      element = TrimOws(element);
      if (!element.empty()) elements.push_back(absl::AsciiStrToLower(element));
    }
  }
  return elements;
}

bool ListContains(const std::vector<std::string>& elements, absl::string_view wanted) {
  return std::find(elements.begin(), elements.end(), wanted) != elements.end();
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

NumberResult ParseDecimal(absl::string_view digits, size_t& value) {
  if (digits.empty()) return NumberResult::kMalformed;
  value = 0;
  bool overflow = false;
  for (const char c : digits) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return NumberResult::kMalformed;
    const auto digit = static_cast<size_t>(c - '0');
    overflow = overflow || value > (SIZE_MAX - digit) / 10;
    value = overflow ? SIZE_MAX : value * 10 + digit;
  }
  return overflow ? NumberResult::kOverflow : NumberResult::kOk;
}

NumberResult ParseChunkSize(absl::string_view line, size_t& size) {
  size_t digits = 0;
  size = 0;
  bool overflow = false;
  for (; digits < line.size() && HexValue(line[digits]) >= 0; ++digits) {
    overflow = overflow || size > (SIZE_MAX >> 4);
    size = overflow ? SIZE_MAX : (size << 4) | static_cast<size_t>(HexValue(line[digits]));
  }
  const absl::string_view rest = TrimOws(line.substr(digits));
  if (digits == 0 || (!rest.empty() && rest.front() != ';')) return NumberResult::kMalformed;
  return overflow ? NumberResult::kOverflow : NumberResult::kOk;
}

LineResult TakeLine(absl::string_view input, size_t& pos, size_t max_line_bytes,
                    std::string& line) {
  const size_t newline = input.find('\n', pos);
  const size_t end = newline == absl::string_view::npos ? input.size() : newline;
  // One byte of slack for the CR of a CRLF line ending.
  if (line.size() + (end - pos) > max_line_bytes + 1) return LineResult::kTooLong;
  line.append(input.data() + pos, end - pos);
  if (newline == absl::string_view::npos) {
    pos = input.size();
    return LineResult::kIncomplete;
  }
  pos = newline + 1;
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return LineResult::kWhole;
}

HeadReader::Result HeadReader::Feed(absl::string_view input, size_t& pos, size_t max_bytes) {
  while (pos < input.size()) {
    if (bytes_.empty() && (input[pos] == '\r' || input[pos] == '\n')) {
      ++pos;
      continue;
    }
    const size_t newline = input.find('\n', pos);
    const size_t end = newline == absl::string_view::npos ? input.size() : newline + 1;
    if (bytes_.size() + (end - pos) > max_bytes) return Result::kTooLong;
    bytes_.append(input.data() + pos, end - pos);
    pos = end;
    if (newline == absl::string_view::npos) break;
    absl::string_view line = absl::string_view(bytes_).substr(line_start_);
    line.remove_suffix(1);
    absl::ConsumeSuffix(&line, "\r");
    if (line.empty()) return Result::kComplete;
    line_start_ = bytes_.size();
  }
  return Result::kIncomplete;
}

void HeadReader::Clear() {
  bytes_.clear();
  line_start_ = 0;
}

absl::StatusOr<absl::string_view> SplitHead(absl::string_view head, Headers& headers) {
  absl::string_view rest = head;
  absl::string_view start_line;
  bool first = true;
  while (!rest.empty()) {
    absl::string_view line = rest.substr(0, rest.find('\n'));
    rest.remove_prefix(std::min(rest.size(), line.size() + 1));
    absl::ConsumeSuffix(&line, "\r");
    if (line.empty()) break;
    if (absl::StrContains(line, '\r')) return absl::InvalidArgumentError("bare CR in the head");
    if (first) {
      start_line = line;
      first = false;
      continue;
    }
    // A recipient may replace obs-fold with spaces (RFC 9112 section 5.2), but no peer of
    // ringserve's sends it: it is more likely a sign of a broken or smuggled message.
    if (line.front() == ' ' || line.front() == '\t') {
      return absl::InvalidArgumentError("obsolete line folding in a header field");
    }
    const size_t colon = line.find(':');
    if (colon == absl::string_view::npos) {
      return absl::InvalidArgumentError("header field without a colon");
    }
    // No whitespace before the colon (RFC 9112 section 5.1): a token check catches it.
    const absl::string_view name = line.substr(0, colon);
    if (!IsToken(name)) return absl::InvalidArgumentError("invalid header field name");
    const absl::string_view value = TrimOws(line.substr(colon + 1));
    if (!IsFieldValue(value)) {
      return absl::InvalidArgumentError("invalid character in a header field value");
    }
    headers.emplace_back(absl::AsciiStrToLower(name), std::string(value));
  }
  return start_line;
}

}  // namespace ringserve::http
