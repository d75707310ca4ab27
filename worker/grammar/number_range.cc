#include "worker/grammar/number_range.h"

#include <algorithm>
#include <limits>

namespace ringserve::grammar {
namespace {

using Int128 = __int128;

Int128 Pow10(int32_t n) {
  Int128 p = 1;
  for (int32_t i = 0; i < n; ++i) p *= 10;
  return p;
}

int32_t NumDigits(uint64_t v) {
  int32_t n = 1;
  for (; v >= 10; v /= 10) ++n;
  return n;
}

// Whether [low, high] (in units, for the prefix's sign mirrored) meets the range at a
// multiple.
bool Meets(const NumberRange& range, bool negative, Int128 low, Int128 high) {
  const Int128 from = std::max<Int128>(negative ? -high : low, range.min);
  const Int128 to = std::min<Int128>(negative ? -low : high, range.max);
  return from <= to && HoldsMultiple(from, to, range.multiple);
}

}  // namespace

bool HoldsMultiple(Int128 low, Int128 high, Int128 multiple) {
  // The least multiple >= low; division truncates toward zero, which rounds a negative
  // quotient up already.
  const Int128 first =
      low > 0 ? (low + multiple - 1) / multiple * multiple : low / multiple * multiple;
  return first <= high;
}

bool Reachable(const NumberRange& range, const NumberPrefix& p) {
  if (p.num_fraction >= 0) {  // after the point: the fraction's remaining digits vary
    if (p.num_fraction > range.fraction_digits) return false;
    const Int128 scale = Pow10(range.fraction_digits - p.num_fraction);
    const Int128 low = Int128{p.digits} * scale;
    return Meets(range, p.negative, low, low + scale - 1);
  }
  // No point yet: k more integer digits, then (for a decimal range) any fraction.
  constexpr int32_t kMaxIntegerDigits = 19;  // an int64's
  const int32_t max_more =
      p.zero ? 0
             : (range.fraction_digits > 0 ? kMaxDecimalIntegerDigits : kMaxIntegerDigits) -
                   NumDigits(p.digits);
  Int128 scale = Pow10(range.fraction_digits);  // 10^k units
  for (int32_t k = 0; k <= max_more; ++k, scale *= 10) {
    const Int128 low = Int128{p.digits} * scale;
    if (low > Int128{std::numeric_limits<int64_t>::max()} + 1) break;
    if (Meets(range, p.negative, low, low + scale - 1)) return true;
  }
  return false;
}

bool InRange(const NumberRange& range, const NumberPrefix& p) {
  if (p.num_fraction == 0 || p.num_fraction > range.fraction_digits) return false;
  const int32_t fraction = std::max(p.num_fraction, 0);
  const Int128 value = Int128{p.digits} * Pow10(range.fraction_digits - fraction);
  const Int128 signed_value = p.negative ? -value : value;
  return signed_value >= range.min && signed_value <= range.max &&
         signed_value % range.multiple == 0;
}

}  // namespace ringserve::grammar
