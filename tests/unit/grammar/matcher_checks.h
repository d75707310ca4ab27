// What a fresh matcher makes of a whole text, for the grammar tests.
#ifndef RINGSERVE_TESTS_UNIT_GRAMMAR_MATCHER_CHECKS_H_
#define RINGSERVE_TESTS_UNIT_GRAMMAR_MATCHER_CHECKS_H_

#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "worker/grammar/matcher.h"

namespace ringserve::grammar {

// The text is a prefix of some text the grammar accepts.
inline bool Prefix(const std::shared_ptr<const Grammar>& grammar, std::string_view text) {
  Matcher matcher(grammar);
  return matcher.Advance(text);
}

// The grammar accepts the text as a whole.
inline bool Accepts(const std::shared_ptr<const Grammar>& grammar, std::string_view text) {
  Matcher matcher(grammar);
  return matcher.Advance(text) && matcher.IsComplete();
}

// The bytes the matcher would take next.
inline std::vector<uint8_t> TakenBytes(const Matcher& matcher) {
  std::vector<uint8_t> taken;
  for (int byte = 0; byte < 256; ++byte) {
    Matcher copy = matcher;
    if (copy.Advance(static_cast<uint8_t>(byte))) taken.push_back(static_cast<uint8_t>(byte));
  }
  return taken;
}

}  // namespace ringserve::grammar

#endif  // RINGSERVE_TESTS_UNIT_GRAMMAR_MATCHER_CHECKS_H_
