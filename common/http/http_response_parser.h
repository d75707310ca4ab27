// HttpResponseParser: turns the bytes a client reads from an HTTP/1.1 connection into a
// response head and its decoded body, however the bytes arrive (RFC 9112: status line, header
// fields, message body length by section 6.3, chunked coding by section 7.1). Pure: no sockets,
// no clock; the client feeds it and owns the timing. The body is handed out as it is decoded
// rather than kept, so a client can read a stream of Server-Sent Events (sse_parser.h) while the
// server is still generating it.
#ifndef RINGSERVE_COMMON_HTTP_HTTP_RESPONSE_PARSER_H_
#define RINGSERVE_COMMON_HTTP_HTTP_RESPONSE_PARSER_H_

#include <cstddef>
#include <string>

#include "absl/strings/string_view.h"
#include "common/http/http_message.h"
#include "common/http/http_syntax.h"

namespace ringserve::http {

// The final head of a response: interim 1xx responses are skipped, never reported.
struct HttpResponseHead {
  int status = 0;
  // 0 or 1; a later HTTP/1.x is read as HTTP/1.1 (RFC 9112 section 2.3).
  int minor_version = 1;
  std::string reason;  // as sent; may be empty
  Headers headers;     // names lower-cased, values with surrounding whitespace trimmed

  // The first header with this (lower-case) name, or null.
  const std::string* Header(absl::string_view lower_name) const;
};

// Owner: one client connection. Not thread-safe. Invariant: it never consumes a byte past the
// end of the response in progress, so the bytes of a next (pipelined) response stay with the
// caller until Reset() has made room for it.
class HttpResponseParser {
 public:
  enum class State {
    kIncomplete,  // feed more bytes, or FeedEof() when the peer has closed
    kComplete,    // head() and the body are whole; Reset() before the next response
    kError,       // error_message() says what was wrong; the connection must be closed
  };

  explicit HttpResponseParser(size_t max_head_bytes = 64 << 10);

  // The request this response answers was HEAD (or the caller otherwise knows the response has
  // no body, RFC 9112 section 6.3 item 1): call before feeding its bytes.
  void ExpectNoBody() { expect_no_body_ = true; }

  // Consumes bytes from the front of `input`, appending the decoded (de-chunked) body bytes to
  // *body, which may be null to drop them; returns how many input bytes it consumed. It stops
  // at the end of the response, and consumes nothing once complete or failed. Transfer codings
  // other than chunked (gzip, ...) are passed through undecoded.
  size_t Feed(absl::string_view input, std::string* body);

  // The peer closed the connection: completes a body delimited by the close (no Content-Length,
  // not chunked); anything else unfinished becomes kError.
  void FeedEof();

  State state() const { return state_; }
  // A byte of this response (even a leading empty line or an interim 1xx head) has been
  // consumed. A reused connection that closes before this is the stale keep-alive case, where a
  // client may resend an idempotent request.
  bool started() const { return started_; }
  bool head_complete() const { return stage_ > Stage::kHead; }
  // Valid once head_complete().
  const HttpResponseHead& head() const { return head_; }
  // Whether the connection may carry another request after this response (RFC 9112 section
  // 9.3): HTTP/1.1 unless "Connection: close", HTTP/1.0 only with "Connection: keep-alive";
  // never after a body delimited by the close, ambiguous framing or an error. Valid once
  // head_complete().
  bool keep_alive() const { return keep_alive_ && state_ != State::kError; }
  // What was wrong, in words, once state() is kError.
  const std::string& error_message() const { return error_message_; }

  // Ready for the next response on the same connection; forgets ExpectNoBody() too.
  void Reset();

 private:
  enum class Stage {
    kHead,
    kFixedBody,
    kUntilClose,
    kChunkSize,
    kChunkData,
    kChunkDataEnd,
    kTrailers,
    kDone,
  };

  size_t FeedHead(absl::string_view input);
  size_t FeedBody(absl::string_view input, std::string* body);
  // Appends up to a line end to line_; true when the line is whole (line_ holds it, without its
  // CRLF or LF). A line over max_line_bytes fails with `too_long`.
  bool TakeLine(absl::string_view input, size_t& pos, size_t max_line_bytes,
                absl::string_view too_long);
  void ParseHead();
  bool ParseStatusLine(absl::string_view line, HttpResponseHead& head);
  void ParseFraming();
  void ParseContentLength();
  void OnChunkSizeLine();
  void Complete();
  void Fail(std::string message);

  size_t max_head_bytes_;
  bool expect_no_body_ = false;
  State state_ = State::kIncomplete;
  Stage stage_ = Stage::kHead;
  bool started_ = false;
  bool keep_alive_ = true;
  HeadReader head_bytes_;       // the head in progress as received, until it is parsed
  std::string line_;            // a chunk-size or trailer line in progress
  bool chunk_cr_seen_ = false;  // the CR of the CRLF after a chunk's data has arrived
  size_t body_remaining_ = 0;   // of the Content-Length body or the current chunk
  size_t trailer_bytes_ = 0;
  HttpResponseHead head_;
  std::string error_message_;
};

}  // namespace ringserve::http

#endif  // RINGSERVE_COMMON_HTTP_HTTP_RESPONSE_PARSER_H_
