// JSON Schema "format" for strings that have a fixed grammar: "uuid", "date", "time" and
// "date-time" (RFC 4122 and RFC 3339's full-date, full-time and date-time), matched here,
// and "ipv4", "ipv6", "hostname", "email" and "duration", given as regexes (FormatRegex)
// that the schema compiler turns into automata. A formatted
// string is ASCII without escapes, matched one byte at a time from its position; the
// calendar is honoured (no February 30th; February 29th only in leap years), and a time
// carries an offset ("Z" or +hh:mm / -hh:mm), as RFC 3339 requires. Private to
// worker/grammar.
#ifndef RINGSERVE_WORKER_GRAMMAR_STRING_FORMATS_H_
#define RINGSERVE_WORKER_GRAMMAR_STRING_FORMATS_H_

#include <cstdint>
#include <optional>
#include <string_view>

namespace ringserve::grammar {

enum class StringFormat : uint8_t { kNone, kUuid, kDate, kTime, kDateTime };

// The format a schema's "format" names; nullopt for one ringserve does not enforce.
std::optional<StringFormat> StringFormatNamed(std::string_view name);

// Where a formatted string is: bytes taken, the date's digits so far (YYYYMMDD, as a
// number), and the phase of a time's tail (after the seconds).
struct FormatCursor {
  int32_t position = 0;
  uint64_t digits = 0;
  uint16_t tail = 0;
};

// The formats whose grammar is a regular language, as a regex (regex.h's syntax) matched
// like a schema's "pattern"; nullopt for any other name. Each accepts a subset of what its
// standard allows, never more:
// - "ipv4": RFC 2673's dotted quad without leading zeros;
// - "ipv6": RFC 4291's eight groups, "::" compression included, without an embedded IPv4
//   tail or a zone;
// - "hostname": RFC 1123 labels (letters, digits and inner hyphens), at most 4 labels of at
//   most 62 characters (so at most 251 in all, within the 253 allowed);
// - "email": RFC 5321's Mailbox with a dot-string local part (1 to 3 atoms of at most 20
//   characters) and a "hostname" domain;
// - "duration": RFC 3339 Appendix A's ISO 8601 durations (P1Y2M3DT4H5M6S, P3W, PT0S).
std::optional<std::string_view> FormatRegex(std::string_view name);

// Takes `byte` (the string's next content byte) when the format allows it there.
bool FormatTakes(StringFormat format, FormatCursor& cursor, uint8_t byte);
// Whether the string may close here (the format's text is whole).
bool FormatComplete(StringFormat format, const FormatCursor& cursor);

}  // namespace ringserve::grammar

#endif  // RINGSERVE_WORKER_GRAMMAR_STRING_FORMATS_H_
