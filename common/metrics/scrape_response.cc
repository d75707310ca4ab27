// The HTTP side of ScrapeServer: one request head in, one complete response out. Only
// what a Prometheus scraper (or curl) sends is understood; anything else gets a 4xx.
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "common/metrics/scrape_server.h"

namespace ringserve::metrics {
namespace {

std::string Response(absl::string_view status, absl::string_view content_type,
                     absl::string_view body, bool with_body, absl::string_view extra_headers = "") {
  return absl::StrCat("HTTP/1.1 ", status, "\r\nContent-Type: ", content_type,
                      "\r\nContent-Length: ", body.size(), "\r\n", extra_headers,
                      "Connection: close\r\n\r\n", with_body ? body : "");
}

std::string TextError(absl::string_view status, absl::string_view extra_headers = "") {
  return Response(status, "text/plain; charset=utf-8", absl::StrCat(status, "\n"), true,
                  extra_headers);
}

}  // namespace

std::string ScrapeResponse(absl::string_view request_head, const ScrapeServerOptions& options,
                           const std::function<std::string()>& render) {
  absl::string_view line = request_head.substr(0, request_head.find('\n'));
  if (absl::EndsWith(line, "\r")) line.remove_suffix(1);
  const std::vector<absl::string_view> parts = absl::StrSplit(line, ' ');
  if (parts.size() != 3 || parts[0].empty() || parts[1].empty() ||
      !absl::StartsWith(parts[2], "HTTP/1.")) {
    return TextError("400 Bad Request");
  }
  const absl::string_view method = parts[0];
  const bool head = method == "HEAD";
  if (method != "GET" && !head) return TextError("405 Method Not Allowed", "Allow: GET, HEAD\r\n");
  const absl::string_view path = parts[1].substr(0, parts[1].find('?'));
  if (path != options.path) return TextError("404 Not Found");
  return Response("200 OK", options.content_type, render(), !head);
}

std::string RequestTooLargeResponse() { return TextError("431 Request Header Fields Too Large"); }

}  // namespace ringserve::metrics
