#include "common/http/http_response_head.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/http/http_syntax.h"

namespace ringserve::http {
namespace {

// A value with CR or LF would let whoever chose it write headers (or a whole response) of
// their own into the stream.
bool IsSafeValue(absl::string_view s) {
  return std::none_of(s.begin(), s.end(), [](char c) { return c == '\r' || c == '\n' || c == 0; });
}

bool HasHeader(const Headers* headers, absl::string_view name) {
  if (headers == nullptr) return false;
  return std::any_of(headers->begin(), headers->end(),
                     [&](const auto& h) { return absl::EqualsIgnoreCase(h.first, name); });
}

}  // namespace

bool StatusHasBody(int status) { return status >= 200 && status != 204 && status != 304; }

std::string FormatResponseHead(const ResponseHead& head) {
  std::string out = absl::StrCat("HTTP/1.1 ", head.status, " ", ReasonPhrase(head.status), "\r\n");
  if (!HasHeader(head.extra_headers, "server") && !head.server_name.empty()) {
    absl::StrAppend(&out, "Server: ", head.server_name, "\r\n");
  }
  const bool own_type = HasHeader(head.extra_headers, "content-type");
  if (!head.content_type.empty() && !own_type) {
    absl::StrAppend(&out, "Content-Type: ", head.content_type, "\r\n");
  }
  switch (head.framing) {
    case Framing::kContentLength:
      absl::StrAppend(&out, "Content-Length: ", head.content_length, "\r\n");
      break;
    case Framing::kChunked:
      absl::StrAppend(&out, "Transfer-Encoding: chunked\r\n");
      break;
    case Framing::kUntilClose:
    case Framing::kNone:
      break;
  }
  if (!head.connection.empty()) absl::StrAppend(&out, "Connection: ", head.connection, "\r\n");
  if (head.extra_headers != nullptr) {
    for (const auto& [name, value] : *head.extra_headers) {
      if (!IsToken(name) || !IsSafeValue(value) || absl::EqualsIgnoreCase(name, "content-length") ||
          absl::EqualsIgnoreCase(name, "transfer-encoding") ||
          absl::EqualsIgnoreCase(name, "connection")) {
        continue;
      }
      absl::StrAppend(&out, name, ": ", value, "\r\n");
    }
  }
  out.append("\r\n");
  return out;
}

bool AsksToClose(const Headers& headers) {
  for (const auto& [name, value] : headers) {
    if (!absl::EqualsIgnoreCase(name, "connection")) continue;
    for (const absl::string_view token : absl::StrSplit(value, ',')) {
      if (absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(token), "close")) return true;
    }
  }
  return false;
}

void AppendChunk(absl::string_view data, std::string& out) {
  if (data.empty()) return;
  absl::StrAppend(&out, absl::Hex(data.size()), "\r\n", data, "\r\n");
}

std::string ServerResponse(int status, absl::string_view message, absl::string_view server_name) {
  const std::string body = absl::StrCat(message, "\n");
  std::string out = FormatResponseHead({.status = status,
                                        .content_type = "text/plain; charset=utf-8",
                                        .framing = Framing::kContentLength,
                                        .content_length = body.size(),
                                        .connection = "close",
                                        .server_name = server_name});
  out.append(body);
  return out;
}

}  // namespace ringserve::http
