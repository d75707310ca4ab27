#include "common/http/http_response_parser.h"

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/http/http_syntax.h"

namespace ringserve::http {
namespace {

// A chunk-size line with its extensions; extensions are ignored, so this only bounds memory.
constexpr size_t kMaxChunkLineBytes = 4096;

}  // namespace

const std::string* HttpResponseHead::Header(absl::string_view lower_name) const {
  for (const auto& [name, value] : headers) {
    if (name == lower_name) return &value;
  }
  return nullptr;
}

HttpResponseParser::HttpResponseParser(size_t max_head_bytes) : max_head_bytes_(max_head_bytes) {}

size_t HttpResponseParser::Feed(absl::string_view input, std::string* body) {
  if (state_ != State::kIncomplete) return 0;
  size_t used = 0;
  if (stage_ == Stage::kHead) used = FeedHead(input);
  if (state_ == State::kIncomplete && stage_ != Stage::kHead) {
    used += FeedBody(input.substr(used), body);
  }
  return used;
}

void HttpResponseParser::FeedEof() {
  if (state_ != State::kIncomplete) return;
  switch (stage_) {
    case Stage::kUntilClose:
      return Complete();
    case Stage::kHead:
      return Fail("connection closed before the end of the response head");
    case Stage::kFixedBody:
      return Fail(absl::StrCat("connection closed before the end of the body, ", body_remaining_,
                               " bytes short of its Content-Length"));
    case Stage::kChunkSize:
    case Stage::kChunkData:
    case Stage::kChunkDataEnd:
    case Stage::kTrailers:
      return Fail("connection closed before the end of the chunked body");
    case Stage::kDone:
      return;
  }
}

void HttpResponseParser::Reset() {
  expect_no_body_ = false;
  state_ = State::kIncomplete;
  stage_ = Stage::kHead;
  started_ = false;
  keep_alive_ = true;
  head_bytes_.Clear();
  line_.clear();
  chunk_cr_seen_ = false;
  body_remaining_ = 0;
  trailer_bytes_ = 0;
  head_ = HttpResponseHead();
  error_message_.clear();
}

void HttpResponseParser::Complete() {
  stage_ = Stage::kDone;
  state_ = State::kComplete;
}

void HttpResponseParser::Fail(std::string message) {
  state_ = State::kError;
  error_message_ = std::move(message);
}

size_t HttpResponseParser::FeedHead(absl::string_view input) {
  size_t pos = 0;
  // Several heads may pass through here: interim 1xx ones, then the final one.
  while (pos < input.size() && state_ == State::kIncomplete && stage_ == Stage::kHead) {
    started_ = true;
    const HeadReader::Result result = head_bytes_.Feed(input, pos, max_head_bytes_);
    if (result == HeadReader::Result::kTooLong) {
      Fail(absl::StrCat("response head over the limit of ", max_head_bytes_, " bytes"));
    } else if (result == HeadReader::Result::kComplete) {
      ParseHead();
    }
  }
  return pos;
}

void HttpResponseParser::ParseHead() {
  HttpResponseHead head;
  absl::StatusOr<absl::string_view> status_line = SplitHead(head_bytes_.bytes(), head.headers);
  if (!status_line.ok()) return Fail(std::string(status_line.status().message()));
  if (!ParseStatusLine(*status_line, head)) return;
  head_bytes_.Clear();
  if (head.status == 101) {
    // The connection now speaks another protocol, which this client never asks for.
    return Fail("101 Switching Protocols: the connection no longer carries HTTP/1.1");
  }
  // Interim responses (RFC 9110 section 15.2): the final response follows on the same bytes.
  if (head.status < 200) return;
  head_ = std::move(head);
  ParseFraming();
}

bool HttpResponseParser::ParseStatusLine(absl::string_view line, HttpResponseHead& head) {
  // status-line = HTTP-version SP status-code SP [ reason-phrase ] (RFC 9112 section 4). Some
  // servers leave out the SP before an empty reason; every client accepts that, so this does.
  if (!absl::StartsWith(line, "HTTP/")) {
    Fail("malformed status line: not an HTTP response");
    return false;
  }
  if (line.size() < 8 || line[5] != '1' || line[6] != '.' ||
      !absl::ascii_isdigit(static_cast<unsigned char>(line[7]))) {
    Fail(absl::StrCat("unsupported HTTP version in the status line \"",
                      absl::CHexEscape(line.substr(0, 40)), "\"; only HTTP/1.x is read"));
    return false;
  }
  const absl::string_view code = line.substr(std::min<size_t>(line.size(), 9), 3);
  if (line.size() < 12 || line[8] != ' ' || (line.size() > 12 && line[12] != ' ') ||
      !std::all_of(code.begin(), code.end(),
                   [](char c) { return absl::ascii_isdigit(static_cast<unsigned char>(c)); }) ||
      code[0] == '0') {
    Fail(absl::StrCat("malformed status line \"", absl::CHexEscape(line.substr(0, 40)), "\""));
    return false;
  }
  const absl::string_view reason = line.size() > 13 ? line.substr(13) : absl::string_view();
  if (!IsFieldValue(reason)) {
    Fail("invalid character in the reason phrase");
    return false;
  }
  head.minor_version = line[7] == '0' ? 0 : 1;
  head.status = (code[0] - '0') * 100 + (code[1] - '0') * 10 + (code[2] - '0');
  head.reason = std::string(reason);
  return true;
}

// RFC 9112 section 6.3, in its order: how long the body is, and whether the connection persists.
void HttpResponseParser::ParseFraming() {
  const Headers& headers = head_.headers;
  const std::vector<std::string> connection = ListElements(headers, "connection");
  keep_alive_ = !ListContains(connection, "close") &&
                (head_.minor_version >= 1 || ListContains(connection, "keep-alive"));
  if (expect_no_body_ || head_.status == 204 || head_.status == 304) return Complete();

  const bool has_length = head_.Header("content-length") != nullptr;
  if (head_.Header("transfer-encoding") != nullptr) {
    // Transfer-Encoding overrides Content-Length; both at once, or Transfer-Encoding in an
    // HTTP/1.0 message, means some hop may have framed it differently, so the connection must
    // not be reused (section 6.3 item 3, section 6.1).
    if (has_length || head_.minor_version == 0) keep_alive_ = false;
    const std::vector<std::string> codings = ListElements(headers, "transfer-encoding");
    if (!codings.empty() && codings.back() == "chunked") {
      stage_ = Stage::kChunkSize;
      return;
    }
    // Not chunked last: only the close ends the body (section 6.3 item 4).
    keep_alive_ = false;
    stage_ = Stage::kUntilClose;
    return;
  }
  if (has_length) return ParseContentLength();
  // Neither: the body runs until the server closes the connection (section 6.3 item 8).
  keep_alive_ = false;
  stage_ = Stage::kUntilClose;
}

void HttpResponseParser::ParseContentLength() {
  // A list of identical lengths ("42, 42") is one length (RFC 9112 section 6.3 item 5); any
  // other list is a response that some hop may have framed differently.
  const std::vector<std::string> lengths = ListElements(head_.headers, "content-length");
  size_t length = 0;
  // An overflowing length is refused: a client has no body limit that would refuse it later.
  if (lengths.empty() || ParseDecimal(lengths[0], length) != NumberResult::kOk) {
    return Fail("invalid Content-Length");
  }
  if (std::any_of(lengths.begin(), lengths.end(),
                  [&](const std::string& l) { return l != lengths[0]; })) {
    return Fail("conflicting Content-Length values");
  }
  body_remaining_ = length;
  if (length == 0) return Complete();
  stage_ = Stage::kFixedBody;
}

size_t HttpResponseParser::FeedBody(absl::string_view input, std::string* body) {
  size_t pos = 0;
  while (pos < input.size() && state_ == State::kIncomplete) {
    switch (stage_) {
      case Stage::kFixedBody:
      case Stage::kChunkData: {
        const size_t n = std::min(body_remaining_, input.size() - pos);
        if (body != nullptr) body->append(input.data() + pos, n);
        pos += n;
        body_remaining_ -= n;
        if (body_remaining_ == 0) {
          if (stage_ == Stage::kFixedBody) {
            Complete();
          } else {
            stage_ = Stage::kChunkDataEnd;
          }
        }
        break;
      }
      case Stage::kUntilClose:
        if (body != nullptr) body->append(input.data() + pos, input.size() - pos);
        pos = input.size();
        break;
      case Stage::kChunkSize:
        if (TakeLine(input, pos, kMaxChunkLineBytes, "chunk-size line too long")) {
          OnChunkSizeLine();
        }
        break;
      case Stage::kChunkDataEnd: {
        // Only CRLF (or LF) may follow a chunk's data; anything else means the size lied.
        const char c = input[pos++];
        if (c == '\n') {
          chunk_cr_seen_ = false;
          stage_ = Stage::kChunkSize;
        } else if (c == '\r' && !chunk_cr_seen_) {
          chunk_cr_seen_ = true;
        } else {
          Fail("chunk data not followed by CRLF");
        }
        break;
      }
      case Stage::kTrailers:
        // Trailer fields are read and dropped (RFC 9112 section 7.1.2 allows discarding them);
        // together they are held to the head limit.
        if (TakeLine(input, pos, max_head_bytes_ - std::min(trailer_bytes_, max_head_bytes_),
                     "chunked trailer section over the head limit")) {
          trailer_bytes_ += line_.size() + 2;
          if (line_.empty()) Complete();
          line_.clear();
        }
        break;
      case Stage::kHead:
      case Stage::kDone:
        return pos;
    }
  }
  return pos;
}

bool HttpResponseParser::TakeLine(absl::string_view input, size_t& pos, size_t max_line_bytes,
                                  absl::string_view too_long) {
  switch (http::TakeLine(input, pos, max_line_bytes, line_)) {
    case LineResult::kWhole:
      return true;
    case LineResult::kIncomplete:
      return false;
    case LineResult::kTooLong:
      Fail(std::string(too_long));
      return false;
  }
  return false;
}

void HttpResponseParser::OnChunkSizeLine() {
  size_t size = 0;
  switch (ParseChunkSize(line_, size)) {
    case NumberResult::kMalformed:
      return Fail("malformed chunk size");
    case NumberResult::kOverflow:
      // Refused, not saturated: there is no body limit to catch it later.
      return Fail("chunk size overflows");
    case NumberResult::kOk:
      break;
  }
  line_.clear();
  if (size == 0) {
    stage_ = Stage::kTrailers;
  } else {
    body_remaining_ = size;
    stage_ = Stage::kChunkData;
  }
}

}  // namespace ringserve::http
