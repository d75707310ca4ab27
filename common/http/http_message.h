// The parts of an HTTP/1.1 message (RFC 9110, RFC 9112) shared by the request parser, the
// server and its handlers: the request as a handler sees it, and reason phrases.
#ifndef RINGSERVE_COMMON_HTTP_HTTP_MESSAGE_H_
#define RINGSERVE_COMMON_HTTP_HTTP_MESSAGE_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"

namespace ringserve::http {

// In the order sent; a name may repeat (RFC 9110 section 5.3).
using Headers = std::vector<std::pair<std::string, std::string>>;

struct HttpRequest {
  std::string method;     // as sent, e.g. "GET", "POST"
  std::string target;     // as sent, e.g. "/v1/models?x=1"
  std::string path;       // target up to '?' (for an absolute-form target, from its path on)
  int minor_version = 1;  // HTTP/1.0 or HTTP/1.1
  Headers headers;        // names lower-cased, values with surrounding whitespace trimmed
  std::string body;       // Content-Length or chunked bodies, decoded
  std::string peer;       // the client's address: "10.0.0.1", "::1"

  // The first header with this (lower-case) name, or null.
  const std::string* Header(absl::string_view lower_name) const;
};

// Reason phrase for a status code ("OK", "Bad Request", ...; "Unknown" otherwise).
absl::string_view ReasonPhrase(int status);

}  // namespace ringserve::http

#endif  // RINGSERVE_COMMON_HTTP_HTTP_MESSAGE_H_
