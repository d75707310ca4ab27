// Regular expression syntax → a tree over code-point sets, for structured output (a regex
// response format, and JSON Schema "pattern"). Private to worker/grammar; regex.h lists
// the syntax accepted. Grammar rules (gbnf_syntax.h) are trees of the same nodes, with
// calls of other rules among them.
#ifndef RINGSERVE_WORKER_GRAMMAR_REGEX_SYNTAX_H_
#define RINGSERVE_WORKER_GRAMMAR_REGEX_SYNTAX_H_

#include <cstdint>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/grammar/utf8_sequences.h"

namespace ringserve::grammar {

struct RegexNode {
  enum class Kind : uint8_t {
    kEmpty,      // matches the empty text
    kSet,        // one code point of `set`
    kConcat,     // the children in order
    kAlternate,  // one of the children
    kRepeat,     // children[0], min..max times
    kCall,       // a grammar rule's text (a non-empty one: grammar.cc), by `rule`; never
                 // made by ParseRegex
  };
  static constexpr int32_t kUnbounded = -1;  // max of a repeat without an upper bound

  Kind kind = Kind::kEmpty;
  CodePointSet set{};
  std::vector<RegexNode> children{};
  int32_t min = 0;
  int32_t max = 0;
  int32_t rule = -1;  // kCall
};

// Parses `pattern` (UTF-8). Errors are INVALID_ARGUMENT naming the byte offset and the
// construct ("lookahead is not supported", "unbalanced ')'").
absl::StatusOr<RegexNode> ParseRegex(std::string_view pattern);

}  // namespace ringserve::grammar

#endif  // RINGSERVE_WORKER_GRAMMAR_REGEX_SYNTAX_H_
