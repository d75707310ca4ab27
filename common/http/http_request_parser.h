// HttpRequestParser: turns the bytes of an HTTP/1.1 connection into requests, one at a time,
// however the bytes arrive (RFC 9112: request line, header fields, Content-Length or chunked
// body). Pure: no sockets, no clock; the server feeds it and owns the timing.
#ifndef RINGSERVE_COMMON_HTTP_HTTP_REQUEST_PARSER_H_
#define RINGSERVE_COMMON_HTTP_HTTP_REQUEST_PARSER_H_

#include <cstddef>
#include <string>

#include "absl/strings/string_view.h"
#include "common/http/http_message.h"
#include "common/http/http_syntax.h"

namespace ringserve::http {

struct HttpParserLimits {
  size_t max_head_bytes = 16 << 10;  // request line and header fields; larger: 431
  size_t max_body_bytes = 16 << 20;  // decoded body; larger: 413
};

// Owner: one connection. Not thread-safe. Invariant: it never consumes a byte past the end of
// the request in progress, so a pipelined next request stays with the caller until
// TakeRequest() has made room for it.
class HttpRequestParser {
 public:
  enum class State {
    kIncomplete,  // feed more bytes
    kComplete,    // request() is whole; TakeRequest() next
    kError,       // error_status() says how to answer; the connection then closes
  };

  explicit HttpRequestParser(HttpParserLimits limits = {});

  // Consumes bytes from the front of `input`; returns how many. It stops at the end of the
  // request, and consumes nothing once complete or failed.
  size_t Feed(absl::string_view input);

  State state() const { return state_; }
  // A byte of this request (even a leading empty line) has been consumed.
  bool started() const { return started_; }
  bool head_complete() const { return stage_ > Stage::kHead; }
  // The head is complete and asked "Expect: 100-continue" (HTTP/1.1 only, RFC 9110 section
  // 10.1.1) and the body has not all arrived: the client waits for "100 Continue" before
  // sending it.
  bool expects_continue() const;
  // Whether the connection may carry another request after this one (RFC 9112 section 9.3):
  // HTTP/1.1 unless "Connection: close", HTTP/1.0 only with "Connection: keep-alive". Valid
  // once the head is complete.
  bool keep_alive() const { return keep_alive_; }

  // 400, 413, 431 or 505, with what was wrong in words, once state() is kError.
  int error_status() const { return error_status_; }
  const std::string& error_message() const { return error_message_; }

  // The request so far: the head once head_complete(), everything once kComplete.
  const HttpRequest& request() const { return request_; }
  // Once kComplete: the request (peer left empty); the parser is ready for the next one.
  HttpRequest TakeRequest();

 private:
  enum class Stage { kHead, kFixedBody, kChunkSize, kChunkData, kChunkDataEnd, kTrailers, kDone };

  size_t FeedHead(absl::string_view input);
  size_t FeedBody(absl::string_view input);
  // Appends up to a line end to line_; true when the line is whole (line_ holds it, without
  // its CRLF or LF).
  bool TakeLine(absl::string_view input, size_t& pos, size_t max_line_bytes, int too_long_status);
  void ParseHead();
  bool ParseRequestLine(absl::string_view line);
  bool ParseFraming();
  void OnChunkSizeLine();
  void Fail(int status, std::string message);
  void Reset();

  const HttpParserLimits limits_;
  State state_ = State::kIncomplete;
  Stage stage_ = Stage::kHead;
  bool started_ = false;
  bool keep_alive_ = true;
  bool expect_continue_ = false;
  HeadReader head_;            // the head as received, until it is parsed
  std::string line_;           // a chunk-size line, chunk end or trailer line in progress
  size_t body_remaining_ = 0;  // of the Content-Length body or the current chunk
  size_t trailer_bytes_ = 0;
  HttpRequest request_;
  int error_status_ = 0;
  std::string error_message_;
};

}  // namespace ringserve::http

#endif  // RINGSERVE_COMMON_HTTP_HTTP_REQUEST_PARSER_H_
