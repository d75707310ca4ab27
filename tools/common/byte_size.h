// Memory sizes on the command line: "2GiB", "512MiB", "1.5GiB", "1GB", "1073741824".
#ifndef RINGSERVE_TOOLS_COMMON_BYTE_SIZE_H_
#define RINGSERVE_TOOLS_COMMON_BYTE_SIZE_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ringserve::tools {

// Whether `text` is digits with at most one decimal point ("12", "0.9", "1."), the only
// numbers a size may be written with: no sign, exponent, hex, inf or nan.
bool IsPlainDecimal(absl::string_view text);

// A positive byte count: a whole number of bytes, or a number with a unit (KiB, MiB, GiB,
// TiB in powers of 1024; KB, MB, GB, TB in powers of 1000), which may have a fraction
// ("1.5GiB", rounded down to whole bytes). A fraction without a unit, zero, a size beyond
// int64 and anything else is INVALID_ARGUMENT naming --`flag` and the text.
absl::StatusOr<int64_t> ParseByteSize(absl::string_view text, absl::string_view flag);

}  // namespace ringserve::tools

#endif  // RINGSERVE_TOOLS_COMMON_BYTE_SIZE_H_
