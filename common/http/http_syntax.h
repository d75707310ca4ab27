// The pieces of HTTP's grammar (RFC 9110, RFC 9112) both of rs_http's parsers and its response
// writer share: tokens, field values, optional whitespace, list fields, hex digits, lines, and
// a message head collected as its bytes arrive and split into its start line and fields.
#ifndef RINGSERVE_COMMON_HTTP_HTTP_SYNTAX_H_
#define RINGSERVE_COMMON_HTTP_HTTP_SYNTAX_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/http/http_message.h"

namespace ringserve::http {

// tchar+ (RFC 9110 section 5.6.2): methods and header names are tokens.
bool IsToken(absl::string_view s);
// Field values and reason phrases (RFC 9110 section 5.5, RFC 9112 section 4): no control
// characters but HTAB, so a NUL, CR or LF cannot reach whoever logs, compares or copies them
// into a response.
bool IsFieldValue(absl::string_view s);
// Without leading and trailing OWS (spaces and tabs only, RFC 9110 section 5.6.3).
absl::string_view TrimOws(absl::string_view s);
// The elements of a comma-separated list field, across every field with that (lower-case)
// name, lower-cased, with empty elements dropped (RFC 9110 section 5.6.1).
std::vector<std::string> ListElements(const Headers& headers, absl::string_view name);
bool ListContains(const std::vector<std::string>& elements, absl::string_view wanted);
// 0-15 for a hex digit, else -1.
int HexValue(char c);

enum class NumberResult { kOk, kMalformed, kOverflow };
// Decimal digits (a Content-Length). kOverflow when the value does not fit a size_t: `value`
// is then SIZE_MAX (over every limit a server has), never a wrapped-around small number.
NumberResult ParseDecimal(absl::string_view digits, size_t& value);
// A chunk-size line (RFC 9112 section 7.1): hex digits, then optional whitespace and
// extensions after ';', which are ignored; kOverflow as ParseDecimal's.
NumberResult ParseChunkSize(absl::string_view line, size_t& size);

enum class LineResult { kIncomplete, kWhole, kTooLong };
// Appends `input` from `pos` up to a line end to `line`, moving `pos` past what it took:
// kWhole when the line ended (`line` holds it without its CRLF or LF), kIncomplete when the
// input ran out first, kTooLong (nothing taken) when the line would pass max_line_bytes.
LineResult TakeLine(absl::string_view input, size_t& pos, size_t max_line_bytes, std::string& line);

// Collects a message head (start line, field lines, and the empty line that ends them) from
// bytes as they arrive. Empty lines before a head are skipped (RFC 9112 section 2.2: some
// peers send a CRLF after a body).
class HeadReader {
 public:
  enum class Result { kIncomplete, kComplete, kTooLong };
  // Takes `input` from `pos` on, moving `pos` past what it took: kComplete once the head's
  // empty line arrived (it takes nothing after it), kTooLong when the head would pass
  // max_bytes.
  Result Feed(absl::string_view input, size_t& pos, size_t max_bytes);
  // The head as received, once complete.
  absl::string_view bytes() const { return bytes_; }
  void Clear();

 private:
  std::string bytes_;
  size_t line_start_ = 0;  // where bytes_'s unfinished line begins
};

// A whole head split into its start line and its header fields (names lower-cased, values
// trimmed), appended to `headers`; INVALID_ARGUMENT naming what was wrong (a bare CR, obsolete
// line folding, a field without a colon, a bad name or value).
absl::StatusOr<absl::string_view> SplitHead(absl::string_view head, Headers& headers);

}  // namespace ringserve::http

#endif  // RINGSERVE_COMMON_HTTP_HTTP_SYNTAX_H_
