// GBNF (the context-free grammar format of llama.cpp's grammars/README.md) → one RegexNode
// tree per rule, a rule's use of another being a kCall node. Private to worker/grammar.
//
// Accepted: `name ::= body` rules (names of [A-Za-z0-9_-]); bodies of alternatives (`|`)
// of sequences of rule names, "literals", [classes], [^negated classes], `.` and
// ( groups ), each optionally followed by * + ? {n} {n,} {n,m} {,m}; `#` comments.
// Escapes in literals and classes: \n \r \t \\ \" \' \[ \] \- \^ \/ \xHH \uHHHH
// \UHHHHHHHH. A body runs until the next `name ::=`, which must start a line, so a body may
// continue over several lines. A grammar llama.cpp accepts means the same here, except that
// token references (<...>), empty classes and stacked quantifiers (a**) are refused, as is
// anything else unlisted.
#ifndef RINGSERVE_WORKER_GRAMMAR_GBNF_SYNTAX_H_
#define RINGSERVE_WORKER_GRAMMAR_GBNF_SYNTAX_H_

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/grammar/regex_syntax.h"

namespace ringserve::grammar {

struct GbnfRules {
  std::vector<std::string> names;  // names[i] is rule i's name; names[0] is "root"
  std::vector<RegexNode> bodies;   // bodies[i] is rule i's body; a reference to rule j is a
                                   // RegexNode{kind=kCall, rule=j}
  // Rules 1..num_predefined are the predefined ones, in the order given, with empty bodies.
  size_t num_predefined = 0;
};

// Grammars arrive in requests; this bounds the parser's work and the trees' size.
inline constexpr size_t kMaxGbnfBytes = size_t{64} << 10;

// Parses `text` (UTF-8, at most kMaxGbnfBytes). Rule 0 is "root"; the other rules are
// numbered in order of first appearance (definition or reference). Errors are
// INVALID_ARGUMENT, "grammar: line L, column C: " (1-based, the column in bytes) and what
// is wrong; every rule referenced must be defined once. `predefined` names rules the caller
// defines (rules 1, 2, ... in that order): the text may use them but not define them.
absl::StatusOr<GbnfRules> ParseGbnf(std::string_view text,
                                    std::span<const std::string> predefined = {});

}  // namespace ringserve::grammar

#endif  // RINGSERVE_WORKER_GRAMMAR_GBNF_SYNTAX_H_
