#include "worker/grammar/string_formats.h"

#include <array>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"

namespace ringserve::grammar {
namespace {

// The time's tail after its seconds, in order of what may come.
enum Tail : uint16_t {
  kAfterSeconds,   // '.', 'Z', '+' or '-'
  kFractionFirst,  // a digit
  kFraction,       // digits, then 'Z', '+' or '-'
  kOffsetHourTens,
  kOffsetHourUnits,     // after 0 or 1
  kOffsetHourUnitsLow,  // after 2: 0..3
  kOffsetColon,
  kOffsetMinuteTens,
  kOffsetMinuteUnits,
  kTimeDone,
};

bool IsDigit(uint8_t b) { return b >= '0' && b <= '9'; }
bool IsHex(uint8_t b) { return IsDigit(b) || (b >= 'a' && b <= 'f') || (b >= 'A' && b <= 'F'); }

int DaysIn(uint64_t year, uint64_t month) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  return month == 2 && leap ? 29 : kDays[month - 1];
}

// "8-4-4-4-12" hexadecimal digits.
bool UuidTakes(int32_t at, uint8_t b) {
  if (at >= 36) return false;
  return at == 8 || at == 13 || at == 18 || at == 23 ? b == '-' : IsHex(b);
}

// YYYY-MM-DD at `at` (0..9); `digits` holds the digits before it.
bool DateTakes(int32_t at, uint64_t digits, uint8_t b) {
  if (at == 4 || at == 7) return b == '-';
  if (!IsDigit(b)) return false;
  const int d = b - '0';
  switch (at) {
    case 5:  // month tens
      return d <= 1;
    case 6:  // month units: 01..12
      return digits % 10 == 0 ? d >= 1 : d <= 2;
    case 8:  // day tens: 3 only where the month has 30 or more days
      return d <= 2 || (d == 3 && DaysIn(digits / 100, digits % 100) >= 30);
    case 9: {  // day units: 01..days of the month
      const uint64_t tens = digits % 10;
      const int day = static_cast<int>(tens) * 10 + d;
      return day >= 1 && day <= DaysIn(digits / 1000, (digits / 10) % 100);
    }
    default:  // the year
      return at < 4;
  }
}

// HH:MM:SS at `at` (0..7) of a time; `previous` is the byte before (a tens digit).
bool ClockTakes(int32_t at, uint8_t previous, uint8_t b) {
  if (at == 2 || at == 5) return b == ':';
  if (!IsDigit(b)) return false;
  switch (at) {
    case 0:
      return b <= '2';
    case 1:
      return previous != '2' || b <= '3';
    case 3:
    case 6:
      return b <= '5';
    default:
      return at < 8;
  }
}

bool TailTakes(uint16_t& tail, uint8_t b) {
  const auto go = [&](Tail next) {
    tail = next;
    return true;
  };
  switch (tail) {
    case kAfterSeconds:
    case kFraction:
      if (tail == kAfterSeconds && b == '.') return go(kFractionFirst);
      if (tail == kFraction && IsDigit(b)) return true;
      if (b == 'Z') return go(kTimeDone);
      if (b == '+' || b == '-') return go(kOffsetHourTens);
      return false;
    case kFractionFirst:
      return IsDigit(b) && go(kFraction);
    case kOffsetHourTens:
      return b >= '0' && b <= '2' && go(b == '2' ? kOffsetHourUnitsLow : kOffsetHourUnits);
    case kOffsetHourUnits:
      return IsDigit(b) && go(kOffsetColon);
    case kOffsetHourUnitsLow:
      return b >= '0' && b <= '3' && go(kOffsetColon);
    case kOffsetColon:
      return b == ':' && go(kOffsetMinuteTens);
    case kOffsetMinuteTens:
      return b >= '0' && b <= '5' && go(kOffsetMinuteUnits);
    case kOffsetMinuteUnits:
      return IsDigit(b) && go(kTimeDone);
    default:
      return false;
  }
}

// A full-time starting at `start` within the string.
bool TimeTakes(FormatCursor& c, int32_t start, uint8_t previous, uint8_t b) {
  const int32_t at = c.position - start;
  if (at < 8) return ClockTakes(at, previous, b);
  return TailTakes(c.tail, b);
}

}  // namespace

std::optional<StringFormat> StringFormatNamed(std::string_view name) {
  if (name == "uuid") return StringFormat::kUuid;
  if (name == "date") return StringFormat::kDate;
  if (name == "time") return StringFormat::kTime;
  if (name == "date-time") return StringFormat::kDateTime;
  return std::nullopt;
}

std::optional<std::string_view> FormatRegex(std::string_view name) {
  using Formats = std::array<std::pair<std::string_view, std::string>, 5>;
  static const Formats kFormats = [] {
    const std::string octet = R"((25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d))";  // < 256, no leading 0
    const std::string group = "[0-9a-fA-F]{1,4}";
    const std::string label = "[A-Za-z0-9]([A-Za-z0-9-]{0,60}[A-Za-z0-9])?";
    const std::string hostname = absl::StrCat(label, R"((\.)", label, "){0,3}");
    const std::string atom = "[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,20}";
    const std::string time = R"(T(\d+H(\d+M(\d+S)?)?|\d+M(\d+S)?|\d+S))";
    // Eight groups, or fewer around one "::" (each alternative: k groups before it).
    std::string ipv6 = absl::StrCat("(", group, ":){7}", group, "|(", group, ":){1,7}:");
    for (int before = 6; before >= 1; --before) {
      absl::StrAppend(&ipv6, "|(", group, ":){1,", before, "}(:", group, "){1,", 7 - before, "}");
    }
    absl::StrAppend(&ipv6, "|:((:", group, "){1,7}|:)");
    return Formats{{
        {"ipv4", absl::StrCat(octet, R"((\.)", octet, "){3}")},
        {"ipv6", ipv6},
        {"hostname", hostname},
        {"email", absl::StrCat(atom, R"((\.)", atom, "){0,2}@", hostname)},
        {"duration", absl::StrCat(R"(P((\d+D|\d+M(\d+D)?|\d+Y(\d+M(\d+D)?)?)()", time, ")?|", time,
                                  R"(|\d+W))")},
    }};
  }();
  for (const auto& [format, regex] : kFormats) {
    if (format == name) return regex;
  }
  return std::nullopt;
}

bool FormatTakes(StringFormat format, FormatCursor& c, uint8_t byte) {
  // The byte before, for the hour's units: the date's digits end with it, or the tail
  // does not need it.
  const auto previous = static_cast<uint8_t>('0' + c.digits % 10);
  bool taken = false;
  switch (format) {
    case StringFormat::kNone:
      return false;
    case StringFormat::kUuid:
      taken = UuidTakes(c.position, byte);
      break;
    case StringFormat::kDate:
      taken = c.position < 10 && DateTakes(c.position, c.digits, byte);
      break;
    case StringFormat::kTime:
      taken = TimeTakes(c, 0, previous, byte);
      break;
    case StringFormat::kDateTime:
      if (c.position < 10) {
        taken = DateTakes(c.position, c.digits, byte);
      } else if (c.position == 10) {
        taken = byte == 'T';
      } else {
        taken = TimeTakes(c, 11, previous, byte);
      }
      break;
  }
  if (!taken) return false;
  if (IsDigit(byte) && c.position < 19) c.digits = c.digits * 10 + (byte - '0');
  ++c.position;
  return true;
}

bool FormatComplete(StringFormat format, const FormatCursor& c) {
  switch (format) {
    case StringFormat::kNone:
      return true;
    case StringFormat::kUuid:
      return c.position == 36;
    case StringFormat::kDate:
      return c.position == 10;
    case StringFormat::kTime:
    case StringFormat::kDateTime:
      return c.tail == kTimeDone;
  }
  return false;
}

}  // namespace ringserve::grammar
