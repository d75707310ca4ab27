// Helpers shared by the tokenizer tests: reference-data paths and seeded random text.
#ifndef RINGSERVE_TESTS_UNIT_TOKENIZER_TEST_UTIL_H_
#define RINGSERVE_TESTS_UNIT_TOKENIZER_TEST_UTIL_H_

#include <cstdint>
#include <optional>
#include <random>
#include <string>

#include "worker/tokenizer/tokenizer.h"

namespace ringserve::tokenizer::testing {

// RINGSERVE_SHARED_DIR/relative, or "" when the file is absent (the test then skips).
std::string SharedFile(const std::string& relative);
std::string ReadFile(const std::string& path);
// Random UTF-8 text from ASCII, accents, CJK, Hangul, emoji (with ZWJ), mixed
// whitespace and newlines: always valid UTF-8.
std::string RandomText(std::mt19937& rng, int max_pieces);

inline EncodeOptions Options(std::optional<bool> add_bos, bool parse_special = false) {
  EncodeOptions opts;
  opts.add_bos = add_bos;
  opts.parse_special = parse_special;
  return opts;
}

}  // namespace ringserve::tokenizer::testing

#endif  // RINGSERVE_TESTS_UNIT_TOKENIZER_TEST_UTIL_H_
