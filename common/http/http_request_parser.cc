#include "common/http/http_request_parser.h"

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/http/http_syntax.h"

namespace ringserve::http {
namespace {

// A chunk-size line with its extensions; extensions are ignored, so this only bounds memory.
constexpr size_t kMaxChunkLineBytes = 4096;

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
  head_.Clear();
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
  if (input.empty()) return 0;
  started_ = true;
  size_t pos = 0;
  switch (head_.Feed(input, pos, limits_.max_head_bytes)) {
    case HeadReader::Result::kTooLong:
      Fail(431, absl::StrCat("request head over the limit of ", limits_.max_head_bytes, " bytes"));
      break;
    case HeadReader::Result::kComplete:
      ParseHead();
      break;
    case HeadReader::Result::kIncomplete:
      break;
  }
  return pos;
}

void HttpRequestParser::ParseHead() {
  absl::StatusOr<absl::string_view> request_line = SplitHead(head_.bytes(), request_.headers);
  if (!request_line.ok()) return Fail(400, std::string(request_line.status().message()));
  if (!ParseRequestLine(*request_line)) return;
  head_.Clear();
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
  keep_alive_ = !ListContains(connection, "close") &&
                (request_.minor_version >= 1 || ListContains(connection, "keep-alive"));
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
  // An overflowing length is SIZE_MAX: over the body limit, refused with 413 below.
  if (lengths.empty() || ParseDecimal(lengths[0], length) == NumberResult::kMalformed ||
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
  switch (http::TakeLine(input, pos, max_line_bytes, line_)) {
    case LineResult::kWhole:
      return true;
    case LineResult::kIncomplete:
      return false;
    case LineResult::kTooLong:
      Fail(too_long_status, too_long_status == 400 ? "malformed chunked body"
                                                   : "chunked trailer section over the head limit");
      return false;
  }
  return false;
}

void HttpRequestParser::OnChunkSizeLine() {
  size_t size = 0;
  if (ParseChunkSize(line_, size) == NumberResult::kMalformed) {
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
