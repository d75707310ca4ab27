// Numbers with a range (JSON Schema minimum/maximum/exclusive*, multipleOf), matched digit
// by digit: a digit is taken only while some number in the range still starts with the
// digits so far. Private to worker/grammar.
//
// Values are counted in units of 10^-fraction_digits (an integer's: 0; a number's: 6), so
// that the range, the multiple and every text's value are exact integers. A bounded number
// is written in plain decimal notation with at most fraction_digits digits after the point
// and at most kMaxDecimalIntegerDigits before it: at most 15 significant digits, which a
// double holds exactly, so a validator that parses it as a double compares it as here.
#ifndef RINGSERVE_WORKER_GRAMMAR_NUMBER_RANGE_H_
#define RINGSERVE_WORKER_GRAMMAR_NUMBER_RANGE_H_

#include <cstdint>

namespace ringserve::grammar {

inline constexpr int32_t kDecimalFractionDigits = 6;
inline constexpr int32_t kMaxDecimalIntegerDigits = 9;

struct NumberRange {
  int64_t min = 0;       // inclusive, in units
  int64_t max = 0;       // inclusive, in units
  int64_t multiple = 1;  // > 0, in units
  int32_t fraction_digits = 0;
};

// The digits so far: their value as one integer (integer and fraction digits together),
// whether a '-' came first, and how many come after the point (-1: no point yet).
struct NumberPrefix {
  bool negative = false;
  uint64_t digits = 0;
  int32_t num_fraction = -1;
  bool zero = false;  // the integer part is "0": no more integer digits
};

// Whether [low, high] holds a multiple of `multiple` (> 0).
bool HoldsMultiple(__int128 low, __int128 high, __int128 multiple);

// Some number of the range starts with the prefix (more digits, or a point and more, may
// follow within the limits above; an integer range takes no point).
bool Reachable(const NumberRange& range, const NumberPrefix& prefix);
// The prefix is a whole number of the range (with a point, at least one digit after it).
bool InRange(const NumberRange& range, const NumberPrefix& prefix);

}  // namespace ringserve::grammar

#endif  // RINGSERVE_WORKER_GRAMMAR_NUMBER_RANGE_H_
