// Formatting of HTTP/1.1 responses (RFC 9112 sections 4-7): the status line and header
// section, chunk framing, and the small responses the server makes itself. The framing
// headers are written here and only here, so a handler's headers cannot contradict them.
#ifndef RINGSERVE_COMMON_HTTP_HTTP_RESPONSE_HEAD_H_
#define RINGSERVE_COMMON_HTTP_HTTP_RESPONSE_HEAD_H_

#include <cstddef>
#include <string>

#include "absl/strings/string_view.h"
#include "common/http/http_message.h"

namespace ringserve::http {

// How the body of a response is delimited (RFC 9112 section 6.3).
enum class Framing {
  kContentLength,  // "Content-Length: content_length"
  kChunked,        // "Transfer-Encoding: chunked"
  kUntilClose,     // neither: the body ends when the connection closes (HTTP/1.0 streams)
  kNone,           // neither, and no body: 1xx, 204 and 304 (RFC 9110 sections 8.6, 15.3.5)
};

struct ResponseHead {
  int status = 200;
  absl::string_view content_type;  // omitted when empty
  const Headers* extra_headers = nullptr;
  Framing framing = Framing::kContentLength;
  size_t content_length = 0;
  // "close", "keep-alive" (HTTP/1.0 clients need it said to keep the connection) or empty.
  absl::string_view connection;
  absl::string_view server_name;
};

// Status 1xx, 204 and 304 responses have no body, whatever the handler passed.
bool StatusHasBody(int status);

// The status line and header section, with the blank line that ends it. Extra headers that
// would break the framing (Content-Length, Transfer-Encoding, Connection) or the message
// (a name that is not a token, a value with CR, LF or NUL) are left out; the server's own
// Content-Type and Server are left out when the extra headers carry their own.
std::string FormatResponseHead(const ResponseHead& head);

// Whether a handler's headers say "Connection: close".
bool AsksToClose(const Headers& headers);

// One chunk of a chunked body (RFC 9112 section 7.1); empty data would end the body, so it
// appends nothing.
void AppendChunk(absl::string_view data, std::string& out);
inline constexpr absl::string_view kLastChunk = "0\r\n\r\n";
inline constexpr absl::string_view kContinueResponse = "HTTP/1.1 100 Continue\r\n\r\n";

// A complete text/plain response the server makes itself (an error, 503 while shutting
// down), with "Connection: close": the message and a newline.
std::string ServerResponse(int status, absl::string_view message, absl::string_view server_name);

}  // namespace ringserve::http

#endif  // RINGSERVE_COMMON_HTTP_HTTP_RESPONSE_HEAD_H_
