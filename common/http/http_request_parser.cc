#include "common/http/http_request_parser.h"

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace ringserve::http {
namespace {

// A chunk-size line with its extensions; extensions are ignored, so this only bounds memory.
constexpr size_t kMaxChunkLineBytes = 4096;

// tchar (RFC 9110 section 5.6.2): method and header names are tokens.
bool IsToken(absl::string_view s) {
  if (s.empty()) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
           absl::string_view("!#$%&'*+-.^_`|~").find(c) != absl::string_view::npos;
  });
}

// Field values (RFC 9110 section 5.5): no control characters but HTAB. CR, LF and NUL in
// particular must not reach a handler that might copy them into a response.
bool IsFieldValue(absl::string_view s) {
  return std::none_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return (u < 0x20 && c != '\t') || u == 0x7f;
  });
}

// OWS is spaces and tabs only (RFC 9110 section 5.6.3).
absl::string_view TrimOws(absl::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// The elements of a comma-separated list field, across every field with that name,
// lower-cased, with empty elements dropped (RFC 9110 section 5.6.1).
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

bool Contains(const std::vector<std::string>& elements, absl::string_view wanted) {
  return std::find(elements.begin(), elements.end(), wanted) != elements.end();
}

// Saturates at SIZE_MAX rather than overflowing: any such length is over every limit.
bool ParseDecimal(absl::string_view digits, size_t& value) {
  if (digits.empty()) return false;
  value = 0;
  for (const char c : digits) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
    const auto digit = static_cast<size_t>(c - '0');
    value = value > (SIZE_MAX - digit) / 10 ? SIZE_MAX : value * 10 + digit;
  }
  return true;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The path of a target: origin-form up to '?'; for an absolute-form target (RFC 9112
// section 3.2.2, which a server must accept) what follows the authority.
std::string PathOf(absl::string_view target) {
  absl::string_view path = target.substr(0, target.find('?'));
  const size_t scheme_end = path.find("://");
  if (!absl::StartsWith(path, "/") && scheme_end != absl::string_view::npos) {
    path.remove_prefix(scheme_end + 3);
    const size_t slash = path.find('/');
    path = slash == absl::string_view::npos ? "/" : path.substr(slash);
  }
  return std::string(path);
}

}  // namespace

HttpRequestParser::HttpRequestParser(HttpParserLimits limits) : limits_(limits) {}

size_t HttpRequestParser::Feed(absl::string_view input) {
  if (state_ != State::kIncomplete) return 0;
  size_t used = 0;
  if (stage_ == Stage::kHead) used = FeedHead(input);
  if (state_ == State::kIncomplete && stage_ != Stage::kHead) {
    used += FeedBody(input.substr(used));
  }
  return used;
}

bool HttpRequestParser::expects_continue() const {
  return expect_continue_ && state_ == State::kIncomplete && head_complete();
}

HttpRequest HttpRequestParser::TakeRequest() {
  HttpRequest request = std::move(request_);
  Reset();
  return request;
}

void HttpRequestParser::Reset() {
  state_ = State::kIncomplete;
  stage_ = Stage::kHead;
  started_ = false;
  keep_alive_ = true;
  expect_continue_ = false;
  head_.clear();
  line_start_ = 0;
  line_.clear();
  body_remaining_ = 0;
  trailer_bytes_ = 0;
  request_ = HttpRequest();
  error_status_ = 0;
  error_message_.clear();
}

void HttpRequestParser::Fail(int status, std::string message) {
  state_ = State::kError;
  error_status_ = status;
  error_message_ = std::move(message);
}

size_t HttpRequestParser::FeedHead(absl::string_view input) {
  size_t pos = 0;
  while (pos < input.size() && state_ == State::kIncomplete && stage_ == Stage::kHead) {
    started_ = true;
    // RFC 9112 section 2.2: empty lines before the request line are ignored (some clients
    // send a CRLF after a POST body).
    if (head_.empty() && (input[pos] == '\r' || input[pos] == '\n')) {
      ++pos;
      continue;
    }
    const size_t newline = input.find('\n', pos);
    const size_t end = newline == absl::string_view::npos ? input.size() : newline + 1;
    if (head_.size() + (end - pos) > limits_.max_head_bytes) {
      Fail(431, absl::StrCat("request head over the limit of ", limits_.max_head_bytes, " bytes"));
      return pos;
    }
    head_.append(input.data() + pos, end - pos);
    pos = end;
    if (newline == absl::string_view::npos) break;
    absl::string_view line = absl::string_view(head_).substr(line_start_);
    line.remove_suffix(1);
    absl::ConsumeSuffix(&line, "\r");
    if (line.empty()) {
      ParseHead();
      break;
    }
    line_start_ = head_.size();
  }
  return pos;
}

void HttpRequestParser::ParseHead() {
  absl::string_view rest = head_;
  bool request_line = true;
  while (!rest.empty()) {
    absl::string_view line = rest.substr(0, rest.find('\n'));
    rest.remove_prefix(line.size() + 1);
    absl::ConsumeSuffix(&line, "\r");
    if (line.empty()) break;
    if (absl::StrContains(line, '\r')) return Fail(400, "bare CR in the request head");
    if (request_line) {
      if (!ParseRequestLine(line)) return;
      request_line = false;
      continue;
    }
    if (line.front() == ' ' || line.front() == '\t') {
      return Fail(400, "obsolete line folding in a header field");
    }
    const size_t colon = line.find(':');
    if (colon == absl::string_view::npos) return Fail(400, "header field without a colon");
    // No whitespace before the colon (RFC 9112 section 5.1): a token check catches it.
    const absl::string_view name = line.substr(0, colon);
    if (!IsToken(name)) return Fail(400, "invalid header field name");
    const absl::string_view value = TrimOws(line.substr(colon + 1));
    if (!IsFieldValue(value)) return Fail(400, "invalid character in a header field value");
    request_.headers.emplace_back(absl::AsciiStrToLower(name), std::string(value));
  }
  head_.clear();
  if (ParseFraming() && stage_ == Stage::kDone) state_ = State::kComplete;
}

bool HttpRequestParser::ParseRequestLine(absl::string_view line) {
  const std::vector<absl::string_view> parts = absl::StrSplit(line, ' ');
  if (parts.size() != 3 || !IsToken(parts[0]) || parts[1].empty()) {
    Fail(400, "malformed request line");
    return false;
  }
  const absl::string_view method = parts[0];
  const absl::string_view target = parts[1];
  const absl::string_view version = parts[2];
  if (!std::all_of(target.begin(), target.end(), [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return u > 0x20 && u != 0x7f;
      })) {
    Fail(400, "invalid character in the request target");
    return false;
  }
  if (version.size() != 8 || !absl::StartsWith(version, "HTTP/") ||
      !absl::ascii_isdigit(static_cast<unsigned char>(version[5])) || version[6] != '.' ||
      !absl::ascii_isdigit(static_cast<unsigned char>(version[7]))) {
    Fail(400, "malformed HTTP version");
    return false;
  }
  if (method == "PRI" && target == "*" && version == "HTTP/2.0") {
    Fail(400, "HTTP/2 is not served here; use HTTP/1.1");
    return false;
  }
  if (version != "HTTP/1.0" && version != "HTTP/1.1") {
    Fail(505, absl::StrCat(version, " is not supported; use HTTP/1.1"));
    return false;
  }
  request_.method = std::string(method);
  request_.target = std::string(target);
  request_.path = PathOf(target);
  request_.minor_version = version[7] - '0';
  return true;
}

// RFC 9112 section 6: how long the body is, and whether the connection persists.
bool HttpRequestParser::ParseFraming() {
  const Headers& headers = request_.headers;
  const std::vector<std::string> connection = ListElements(headers, "connection");
  keep_alive_ = !Contains(connection, "close") &&
                (request_.minor_version >= 1 || Contains(connection, "keep-alive"));
  const std::string* expect = request_.Header("expect");
  expect_continue_ = request_.minor_version >= 1 && expect != nullptr &&
                     absl::EqualsIgnoreCase(*expect, "100-continue");

  const bool has_length = request_.Header("content-length") != nullptr;
  // Both framings at once is how requests are smuggled past proxies (section 6.3).
  if (request_.Header("transfer-encoding") != nullptr) {
    if (has_length) {
      Fail(400, "both Content-Length and Transfer-Encoding");
      return false;
    }
    if (request_.minor_version == 0) {
      Fail(400, "Transfer-Encoding in an HTTP/1.0 request");
      return false;
    }
    const std::vector<std::string> codings = ListElements(headers, "transfer-encoding");
    if (codings.size() != 1 || codings[0] != "chunked") {
      Fail(400, "unsupported transfer coding; only chunked is accepted");
      return false;
    }
    stage_ = Stage::kChunkSize;
    return true;
  }
  if (!has_length) {
    stage_ = Stage::kDone;  // a request without either has no body (section 6.3)
    return true;
  }
  // A list of identical lengths ("42, 42") is one length (section 6.3).
  std::vector<std::string> lengths = ListElements(headers, "content-length");
  size_t length = 0;
  if (lengths.empty() || !ParseDecimal(lengths[0], length) ||
      std::any_of(lengths.begin(), lengths.end(),
                  [&](const std::string& l) { return l != lengths[0]; })) {
    Fail(400, "invalid Content-Length");
    return false;
  }
  if (length > limits_.max_body_bytes) {
    Fail(413, absl::StrCat("body over the limit of ", limits_.max_body_bytes, " bytes"));
    return false;
  }
  // Bounded, so a client declaring a large body and sending nothing holds little memory.
  request_.body.reserve(std::min<size_t>(length, 1 << 20));
  body_remaining_ = length;
  stage_ = length == 0 ? Stage::kDone : Stage::kFixedBody;
  return true;
}

size_t HttpRequestParser::FeedBody(absl::string_view input) {
  size_t pos = 0;
  while (pos < input.size() && state_ == State::kIncomplete) {
    switch (stage_) {
      case Stage::kFixedBody:
      case Stage::kChunkData: {
        const size_t n = std::min(body_remaining_, input.size() - pos);
        request_.body.append(input.data() + pos, n);
        pos += n;
        body_remaining_ -= n;
        if (body_remaining_ == 0) {
          stage_ = stage_ == Stage::kFixedBody ? Stage::kDone : Stage::kChunkDataEnd;
        }
        break;
      }
      case Stage::kChunkSize:
        if (TakeLine(input, pos, kMaxChunkLineBytes, 400)) OnChunkSizeLine();
        break;
      case Stage::kChunkDataEnd:
        // Only the CRLF may follow a chunk's data.
        if (TakeLine(input, pos, 1, 400)) {
          if (!line_.empty()) {
            Fail(400, "chunk data longer than its size");
            return pos;
          }
          stage_ = Stage::kChunkSize;
        }
        break;
      case Stage::kTrailers:
        // Trailer fields are read and dropped (RFC 9112 section 7.1.2 allows discarding).
        if (TakeLine(input, pos, limits_.max_head_bytes, 431)) {
          trailer_bytes_ += line_.size() + 2;
          if (trailer_bytes_ > limits_.max_head_bytes) {
            Fail(431, "chunked trailer section over the head limit");
            return pos;
          }
          if (line_.empty()) stage_ = Stage::kDone;
          line_.clear();
        }
        break;
      case Stage::kHead:
      case Stage::kDone:
        break;
    }
    if (stage_ == Stage::kDone) state_ = State::kComplete;
  }
  return pos;
}

bool HttpRequestParser::TakeLine(absl::string_view input, size_t& pos, size_t max_line_bytes,
                                 int too_long_status) {
  const size_t newline = input.find('\n', pos);
  const size_t end = newline == absl::string_view::npos ? input.size() : newline;
  // One byte of slack for the CR of a CRLF line ending.
  if (line_.size() + (end - pos) > max_line_bytes + 1) {
    Fail(too_long_status, too_long_status == 400 ? "malformed chunked body"
                                                 : "chunked trailer section over the head limit");
    return false;
  }
  line_.append(input.data() + pos, end - pos);
  if (newline == absl::string_view::npos) {
    pos = input.size();
    return false;
  }
  pos = newline + 1;
  if (!line_.empty() && line_.back() == '\r') line_.pop_back();
  return true;
}

void HttpRequestParser::OnChunkSizeLine() {
  const absl::string_view line = line_;
  size_t digits = 0;
  size_t size = 0;
  for (; digits < line.size() && HexValue(line[digits]) >= 0; ++digits) {
    size = size > (SIZE_MAX >> 4) ? SIZE_MAX : (size << 4) | HexValue(line[digits]);
  }
  // Extensions after ';' are ignored (RFC 9112 section 7.1.1); BWS may precede them.
  const absl::string_view rest = TrimOws(line.substr(digits));
  if (digits == 0 || (!rest.empty() && rest.front() != ';')) {
    return Fail(400, "malformed chunk size");
  }
  line_.clear();
  if (size == 0) {
    stage_ = Stage::kTrailers;
  } else if (size > limits_.max_body_bytes - request_.body.size()) {
    Fail(413, absl::StrCat("body over the limit of ", limits_.max_body_bytes, " bytes"));
  } else {
    body_remaining_ = size;
    stage_ = Stage::kChunkData;
  }
}

}  // namespace ringserve::http
