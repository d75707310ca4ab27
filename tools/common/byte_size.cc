#include "tools/common/byte_size.h"

#include <cmath>
#include <limits>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace ringserve::tools {
namespace {

struct Unit {
  absl::string_view suffix;
  int64_t scale;
};
constexpr Unit kUnits[] = {{"TiB", int64_t{1} << 40}, {"GiB", int64_t{1} << 30},
                           {"MiB", int64_t{1} << 20}, {"KiB", int64_t{1} << 10},
                           {"TB", 1'000'000'000'000}, {"GB", 1'000'000'000},
                           {"MB", 1'000'000},         {"KB", 1'000}};

absl::Status NotASize(absl::string_view text, absl::string_view flag, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("--", flag, ": '", text, "' is not a size (", why,
                                                 "); write bytes or e.g. 512MiB, 1.5GiB"));
}

}  // namespace

bool IsPlainDecimal(absl::string_view text) {
  bool digit = false;
  bool point = false;
  for (const char c : text) {
    if (c == '.' && !point) {
      point = true;
    } else if (absl::ascii_isdigit(static_cast<unsigned char>(c))) {
      digit = true;
    } else {
      return false;
    }
  }
  return digit;
}

absl::StatusOr<int64_t> ParseByteSize(absl::string_view text, absl::string_view flag) {
  absl::string_view number = text;
  int64_t scale = 1;
  for (const Unit& unit : kUnits) {
    if (absl::EndsWith(number, unit.suffix)) {
      number.remove_suffix(unit.suffix.size());
      scale = unit.scale;
      break;
    }
  }
  if (!IsPlainDecimal(number)) return NotASize(text, flag, "not a plain number");
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  int64_t bytes = 0;
  if (absl::StrContains(number, '.')) {
    if (scale == 1) return NotASize(text, flag, "a fraction of a byte needs a unit");
    double value = 0;
    if (!absl::SimpleAtod(number, &value)) return NotASize(text, flag, "not a plain number");
    // 2^63 is exact in a double; anything at or above it does not fit an int64.
    const double scaled = std::floor(value * static_cast<double>(scale));
    if (scaled >= 0x1p63) return NotASize(text, flag, absl::StrCat("more than ", kMax, " bytes"));
    bytes = static_cast<int64_t>(scaled);
  } else {
    int64_t value = 0;
    if (!absl::SimpleAtoi(number, &value) || value > kMax / scale) {
      return NotASize(text, flag, absl::StrCat("more than ", kMax, " bytes"));
    }
    bytes = value * scale;
  }
  if (bytes <= 0) return NotASize(text, flag, "not positive");
  return bytes;
}

}  // namespace ringserve::tools
