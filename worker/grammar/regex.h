// Regular expressions compiled to a deterministic automaton over bytes, for structured
// output: a reply that must match a regex (response_format "regex"), and JSON strings
// under a schema's "pattern". The automaton reads the UTF-8 bytes a model emits one at a
// time; a state is an int, so a matcher advances by a table lookup.
//
// Syntax, ECMAScript's (what JSON Schema's "pattern" names) and Python's where they agree:
// - literals (any UTF-8 character; \ escapes any other non-alphanumeric character),
//   \n \r \t \f \v \0, \xHH, \uHHHH (a surrogate pair as two), \u{H...};
// - . (any character but \n, \r, U+2028 and U+2029), \d \w \s and their complements \D \W
//   \S (\d and \w are ASCII; \s includes Unicode's spaces), classes [...] and [^...] with
//   ranges and escapes ([\b] is a backspace);
// - groups (...), (?:...), (?<name>...), (?P<name>...); alternation |;
// - quantifiers * + ? {n} {n,} {n,m} {,m}, their lazy forms (*? ...: the same texts);
//   counts up to 10000 (the automaton's size bounds them further);
// - ^ \A at the very start and $ \z \Z at the very end, which change nothing: the whole
//   text always has to match (as Python's fullmatch), which also satisfies JSON Schema's
//   unanchored test.
// Anything else (lookaround, backreferences, \b word boundaries, \p classes, inline flags,
// possessive quantifiers, anchors elsewhere) is INVALID_ARGUMENT naming it and its byte
// offset, never matched loosely.
//
// Every state the automaton can reach can still reach an accepting state: a byte that
// would lead where no accepted text lies is refused at once, so generation never paints
// itself into a corner.
//
// Ownership and threads: immutable once compiled; shared (shared_ptr<const>) by every
// matcher of a grammar, on any thread.
#ifndef RINGSERVE_WORKER_GRAMMAR_REGEX_H_
#define RINGSERVE_WORKER_GRAMMAR_REGEX_H_

#include <array>
#include <bitset>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace ringserve::grammar {

struct RegexNode;

class RegexDfa {
 public:
  static constexpr int32_t kDead = -1;
  static constexpr int32_t kStart = 0;
  // Patterns longer than this are refused.
  static constexpr size_t kMaxPatternBytes = size_t{16} << 10;
  // A pattern whose automaton would need more states (nested counted repeats of
  // alternatives can need exponentially many) is refused rather than compiled for long.
  static constexpr int32_t kMaxStates = 32768;

  // Compiles `pattern` (the syntax above). Only bytes in `allowed` appear in the texts the
  // automaton takes: a JSON string's pattern leaves out the bytes JSON would have to
  // escape. INVALID_ARGUMENT when the pattern is malformed, unsupported, too large, or
  // matches no text of the allowed bytes.
  static absl::StatusOr<std::shared_ptr<const RegexDfa>> Compile(std::string_view pattern,
                                                                 const std::bitset<256>& allowed);
  // Compiles a parsed tree, which may call grammar rules (RegexNode::kCall): a call is an
  // edge of its own, taken when the rule's text has been read (the grammar's matcher reads
  // it), and counts as a way to reach a match. The caller answers for the rule's text.
  // `work_left`, when given, is a budget shared by several compilations (a grammar's
  // rules): this one spends from it, and is refused as too complex when it runs out.
  static absl::StatusOr<std::shared_ptr<const RegexDfa>> CompileTree(
      const RegexNode& tree, const std::bitset<256>& allowed, int64_t* work_left = nullptr);
  // The work a compilation may spend (NFA state visits): well under a second.
  static constexpr int64_t kMaxWork = 20'000'000;

  // The state after `byte`; kDead when no accepted text continues that way.
  int32_t Next(int32_t state, uint8_t byte) const {
    return next_[static_cast<size_t>(state) * num_classes_ + class_of_[byte]];
  }
  // The text so far matches the whole pattern.
  bool Accepting(int32_t state) const { return accepting_[static_cast<size_t>(state)] != 0; }
  // Some byte may follow.
  bool CanContinue(int32_t state) const { return continues_[static_cast<size_t>(state)] != 0; }

  // The rules this state may call, and the state after each one's text; sorted by rule.
  struct Call {
    int32_t rule = 0;
    int32_t next = 0;
  };
  std::span<const Call> Calls(int32_t state) const {
    if (calls_.empty()) return {};
    const auto s = static_cast<size_t>(state);
    return std::span<const Call>(calls_).subspan(
        static_cast<size_t>(call_begin_[s]),
        static_cast<size_t>(call_begin_[s + 1] - call_begin_[s]));
  }
  bool has_calls() const { return !calls_.empty(); }
  // Accepting, and nothing (no byte, no call) may follow.
  bool IsFinal(int32_t state) const {
    return Accepting(state) && !CanContinue(state) && Calls(state).empty();
  }
  // The bytes a text may start with.
  std::bitset<256> FirstBytes() const;

  int32_t num_states() const { return static_cast<int32_t>(accepting_.size()); }
  int32_t num_byte_classes() const { return static_cast<int32_t>(num_classes_); }

 private:
  friend class DfaBuilder;

  // Bytes that no part of the pattern tells apart share a class, and a row of next_.
  std::array<uint8_t, 256> class_of_{};
  size_t num_classes_ = 0;
  std::vector<int32_t> next_;  // [state * num_classes_ + class]
  std::vector<uint8_t> accepting_;
  std::vector<uint8_t> continues_;
  std::vector<Call> calls_;          // every state's calls, in state order
  std::vector<int32_t> call_begin_;  // [state]: its first call in calls_; one past the end last
};

// `text` as a pattern that matches it and nothing else: the characters the syntax above
// gives a meaning escaped, control characters written as \xHH, the rest as they are.
std::string EscapeRegexLiteral(std::string_view text);

// A choice format (response_format.choice, ringserve-run --choice): the pattern that matches
// exactly one of `choices`, each taken literally, (?:a|b|...). INVALID_ARGUMENT, its message
// naming no field, for no choices or more than kMaxChoices, or a choice that is empty or
// longer than kMaxChoiceBytes. UTF-8 is the caller's to check (the compile refuses it too).
inline constexpr int kMaxChoices = 256;
inline constexpr size_t kMaxChoiceBytes = 1024;
absl::StatusOr<std::string> ChoicePattern(std::span<const std::string> choices);

}  // namespace ringserve::grammar

#endif  // RINGSERVE_WORKER_GRAMMAR_REGEX_H_
