// The compiled form of a Grammar: what the compilers (json_schema.cc, gbnf_grammar.cc,
// FromRegex) hand the matcher (matcher.cc). Private to worker/grammar.
#ifndef RINGSERVE_WORKER_GRAMMAR_GRAMMAR_NODES_H_
#define RINGSERVE_WORKER_GRAMMAR_GRAMMAR_NODES_H_

#include <bitset>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "worker/grammar/matcher.h"
#include "worker/grammar/regex.h"
#include "worker/grammar/string_formats.h"

namespace ringserve::grammar {

inline constexpr int32_t kUnbounded = std::numeric_limits<int32_t>::max();
// A grammar's rules (FromGbnf) nest at most this deep in the matcher: its stack holds at
// most this many rule frames (a call in tail position replaces its caller's frame).
inline constexpr int32_t kMaxRuleDepth = 64;

enum class NodeKind : uint8_t {
  // Concrete nodes: a value of one is matched by one matcher frame.
  kObject,
  kArray,
  kString,
  kNumber,
  kInteger,
  kLiterals,  // one of a set of exact texts (enum, const, true, false, null)
  kText,      // raw text (not JSON) that matches `pattern`: a regex response format's root,
              // or a grammar's rule (its automaton calls other kText nodes by index)
  // A value is one of `members` (anyOf, type arrays, $ref); never matched directly, the
  // matcher starts one frame per concrete alternative.
  kChoice,
};

struct Grammar::Node {
  struct Property {
    std::string key{};   // the name as compact JSON text, quotes included
    int32_t value = -1;  // the node of its value
  };

  NodeKind kind = NodeKind::kChoice;
  std::vector<Property> properties{};   // kObject, at most kMaxProperties
  uint64_t required = 0;                // kObject: bit i set: properties[i] must be present
  int32_t additional = -1;              // kObject: node of values under other keys, -1: none
  int32_t items = -1;                   // kArray: node of each element after the prefix
  std::vector<int32_t> prefix_items{};  // kArray: nodes of the first elements, in order
  int32_t min = 0;                      // kArray: elements; kString: code points
  int32_t max = kUnbounded;             // likewise
  // kInteger or kNumber with a range or a multiple: the inclusive range.
  bool bounded = false;
  int64_t int_min = std::numeric_limits<int64_t>::min();
  int64_t int_max = std::numeric_limits<int64_t>::max();
  // Bounded: the range and the multiple (> 0) in units of 10^-fraction_digits (an
  // integer's: 0; a number's: kDecimalFractionDigits; number_range.h).
  int64_t multiple_of = 1;
  int32_t fraction_digits = 0;
  // kString with a "format" ringserve enforces (its text is ASCII, without escapes).
  StringFormat format = StringFormat::kNone;
  // kString with a "pattern" (its text has no escapes; the automaton takes none of the
  // bytes JSON would escape), and kText.
  std::shared_ptr<const RegexDfa> pattern{};
  // kText rules of a grammar: how many frames above this one finishing it takes at least,
  // from each automaton state (empty: none from any state), and from its start once it has
  // read a byte (a call stands for a non-empty text).
  std::vector<int32_t> finish_depth{};
  int32_t nonempty_finish_depth = 0;
  std::vector<std::string> literals{};  // kLiterals: sorted, unique
  std::vector<int32_t> members{};       // kChoice

  // The concrete nodes a value of this node may be (itself when concrete), merged so that
  // at most one is kLiterals, and the bytes such a value may start with.
  std::vector<int32_t> alternatives{};
  std::bitset<256> first_bytes{};
};

}  // namespace ringserve::grammar

#endif  // RINGSERVE_WORKER_GRAMMAR_GRAMMAR_NODES_H_
