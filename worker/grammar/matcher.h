// Structured output: text constrained by a grammar, one byte at a time.
//
// Grammar is a compiled constraint: any JSON object (response_format "json_object"), a
// JSON Schema (a subset, listed on FromSchema), raw text matching a regular expression
// (response_format "regex", FromRegex), or raw text derived from a context-free grammar
// (response_format "grammar", FromGbnf). Matcher walks the bytes a model emits and says
// which next bytes keep them a prefix of some text the grammar accepts; the token mask
// (token_trie.h, token_constraint.h) runs it over every vocabulary token's bytes to pick
// what may be sampled.
//
// JSON texts (RFC 8259) are accepted with these choices, so that generation terminates
// and the output needs no cleanup:
// - whitespace may go before the value and around structural characters ({ } [ ] : ,) in
//   the two layouts models write, compact ({"a": 1, "b": 2}: one space) and pretty-printed
//   (a newline, then at most kMaxIndent spaces or tabs), and never after the value ends: a
//   model that favours whitespace (small ones do) cannot pad its reply out to max_tokens;
// - strings hold valid UTF-8 (no overlong forms, no surrogates) and no raw control bytes;
//   every JSON escape is accepted, \u with exactly four hex digits;
// - numbers follow the JSON grammar (no leading zeros, no '+', no NaN/Infinity).
//
// Ownership and threads: a Grammar is immutable and shared (shared_ptr<const>) by any
// number of matchers on any threads; a Matcher is a value owned by one job, used by one
// thread at a time, and cheap to copy (the token mask copies it per vocabulary trie node).
#ifndef RINGSERVE_WORKER_GRAMMAR_MATCHER_H_
#define RINGSERVE_WORKER_GRAMMAR_MATCHER_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/grammar/regex.h"

namespace ringserve::grammar {

inline constexpr int kMaxIndent = 24;

class Grammar {
 public:
  // Any JSON object, with any values inside.
  static std::shared_ptr<const Grammar> AnyObject();

  // Compiles a JSON Schema (draft 2020-12 / draft-07 spelling) given as JSON text. Supported:
  // - true / {}: any JSON value; false: nothing (INVALID_ARGUMENT: no text could match);
  // - "type": one name or an array of them ("object", "array", "string", "number",
  //   "integer", "boolean", "null");
  // - objects: "properties", "required", "additionalProperties" (false, true or a schema;
  //   absent means false: only the listed properties, as strict structured-output APIs do);
  //   each property at most once, in any order; the object closes only once every required
  //   property is present; at most kMaxProperties properties per object schema;
  // - arrays: "prefixItems" (the first elements' schemas, in order: tuples), "items" (a
  //   schema for the elements after them; absent: any value; false: none), "minItems",
  //   "maxItems";
  // - strings: "minLength", "maxLength" (in code points; an escape counts as one);
  // - string "format": "uuid", "date", "time", "date-time", "duration", "email",
  //   "hostname", "ipv4", "ipv6" (string_formats.h); others are INVALID_ARGUMENT, as are
  //   minLength/maxLength beside a format;
  // - string "pattern" (regex.h's syntax): the whole string matches it, written without
  //   escapes (no quote, backslash or control character: a pattern that needs one is
  //   INVALID_ARGUMENT); not beside "format", "minLength" or "maxLength";
  // - numbers: "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum" and
  //   "multipleOf", matched digit by digit (number_range.h): a digit is taken only while
  //   some multiple in the range starts with the digits so far. On "integer" within 64-bit
  //   integers (a whole multipleOf); on "number" the value is written as a plain decimal
  //   with at most 6 digits after the point and 9 before it (a multipleOf of at most 6
  //   decimals), and the bounds are the decimals their JSON text spells;
  // - "enum" (a non-empty array of JSON values) and "const": the value's compact JSON text
  //   (nlohmann::json::dump() spelling), exactly;
  // - "anyOf" and "oneOf" (oneOf is matched as anyOf), and "allOf" of one schema (that
  //   schema: Pydantic's wrapping of a "$ref"), combined with nothing else but annotations;
  // - "$ref" to "#", "#/$defs/<name>" or "#/definitions/<name>" (recursion allowed);
  // - annotations, ignored: "title", "description", "default", "examples", "$schema",
  //   "$id", "$comment", "$defs", "definitions", "deprecated", "readOnly", "writeOnly".
  // Anything else ("allOf" of several, "uniqueItems", "if", ...) is INVALID_ARGUMENT
  // naming the keyword and where it is (a JSON pointer such as "/properties/age"), as are
  // malformed JSON, wrong keyword types, unknown type names, a required property that the
  // object cannot hold, minItems > maxItems, minLength > maxLength, and unresolved refs.
  static absl::StatusOr<std::shared_ptr<const Grammar>> FromSchema(std::string_view schema);

  // Raw text, not JSON, that matches a regular expression as a whole (regex.h lists the
  // syntax): no whitespace is added around it, and the text is valid UTF-8.
  // INVALID_ARGUMENT as RegexDfa::Compile answers.
  static absl::StatusOr<std::shared_ptr<const Grammar>> FromRegex(std::string_view regex);

  // Raw text derived from a context-free grammar in GBNF (gbnf_syntax.h lists the syntax;
  // the rule named "root" is the whole text). Rules may recurse, except on the left (a rule
  // that calls itself before reading a byte, such as expr ::= expr "+" term, is refused
  // with the rules named), and nest at most kMaxRuleDepth (64) deep at once in the text; a
  // call in tail position (list ::= item list?) costs no depth; at most 16 parses of an
  // ambiguous grammar are followed at once (kMaxStacks). INVALID_ARGUMENT naming the
  // line and column of a syntax error, or the rule that is undefined, matches no text, or
  // makes an automaton too large.
  static absl::StatusOr<std::shared_ptr<const Grammar>> FromGbnf(std::string_view text);

  // A grammar whose rule `name` is a JSON value that `json` (FromSchema, AnyObject) accepts,
  // starting at its first byte (no whitespace before it): text with JSON inside, such as
  // a tool call's tags around its arguments.
  struct JsonRule {
    std::string name;
    std::shared_ptr<const Grammar> json;
  };
  // FromGbnf with `json_rules` defined outside the text (which may not define them too).
  static absl::StatusOr<std::shared_ptr<const Grammar>> FromGbnf(
      std::string_view text, std::span<const JsonRule> json_rules);

  static constexpr int kMaxProperties = 64;

  // Private to the implementation (grammar_nodes.h): the compiled schema nodes.
  struct Node;
  const std::vector<Node>& nodes() const { return nodes_; }

  Grammar();
  ~Grammar();

 private:
  friend class JsonGrammarBuilder;
  friend class GrammarCompiler;
  std::vector<Node> nodes_;  // nodes_[0] is the root
};

// Bytes a JSON string's body takes as they are from one character boundary to another:
// complete, valid UTF-8 (as the matcher defines it) with no quote, backslash or control
// byte. Non-empty.
bool IsPlainStringText(std::string_view bytes);

class Matcher {
 public:
  explicit Matcher(std::shared_ptr<const Grammar> grammar);
  // Out of line: Stack is complete only in matcher.cc. Copy-assignment reuses the
  // target's storage, so the token mask's per-depth copies allocate only while warming up.
  Matcher(const Matcher& other);
  Matcher& operator=(const Matcher& other);
  Matcher(Matcher&& other) noexcept;
  Matcher& operator=(Matcher&& other) noexcept;
  ~Matcher();

  // Takes `byte` when the bytes so far followed by it are a prefix of a text the grammar
  // accepts (so the text can always still be completed); otherwise returns false and the
  // matcher is unchanged.
  bool Advance(uint8_t byte);
  // Takes all of `bytes` or, returning false, none of them.
  bool Advance(std::string_view bytes);

  // The bytes so far are a whole accepted text (generation may end here).
  bool IsComplete() const;
  // Complete, and no byte may follow (generation must end here).
  bool IsFinished() const;

  // A key for caching what may follow within the next `lookahead` bytes: this state with
  // each open string's code-point count replaced by its class when no text of that many
  // bytes can reach a bound that depends on it (below minLength with no way to reach it,
  // or at minLength or past it with maxLength out of reach). Two states with equal keys
  // take exactly the same byte strings of up to `lookahead` bytes, so a string with a
  // length bound shares one mask over most of its length. Not a state to advance.
  Matcher MaskKey(int32_t lookahead) const;

  // When every alternative is inside a string value without a format, at a character
  // boundary: the most code points that may still come before the string's maxLength
  // (INT32_MAX without one), the largest over the alternatives. Then a plain string text
  // (IsPlainStringText) is taken exactly when its code points fit in it, whatever else the
  // state holds, so the token mask allows such tokens without testing them (token_trie.h).
  // nullopt in every other state.
  std::optional<int32_t> PlainStringRoom() const;

  // Where the text is inside one automaton, and only there: the whole reply of a regex
  // grammar, a grammar rule (the reply's only stack, its top frame a rule's), or the only
  // alternative inside a string under a "pattern" (in_string true: a quote, where the
  // automaton accepts, closes the string and hands the bytes after it back to the JSON
  // grammar; no other byte leaves the automaton). The token mask then follows the
  // automaton itself rather than copying the matcher per byte (token_trie.h), and hands
  // back to the matcher where HandsBack says. nullopt in every other state.
  struct AutomatonState {
    const RegexDfa* dfa = nullptr;
    int32_t state = 0;
    bool in_string = false;
    // A rule's frame: it may return to a caller where its automaton accepts; finishing
    // from a state may take at most depth_room frames above it (finish_depth: per state,
    // null when every state's is 0).
    bool may_return = false;
    const std::vector<int32_t>* finish_depth = nullptr;
    int32_t depth_room = 0;

    // Where more than the automaton's own bytes may follow (the rule may call another or
    // return): the matcher walks on from there.
    bool HandsBack(int32_t at) const {
      return (may_return && dfa->Accepting(at)) || !dfa->Calls(at).empty();
    }
    // The automaton's next state after `byte`, RegexDfa::kDead where it cannot take it
    // here (the matcher refuses a byte after which the rule could only finish too deep).
    int32_t Next(int32_t at, uint8_t byte) const {
      const int32_t next = dfa->Next(at, byte);
      if (finish_depth == nullptr || next == RegexDfa::kDead) return next;
      return (*finish_depth)[static_cast<size_t>(next)] > depth_room ? RegexDfa::kDead : next;
    }
  };
  std::optional<AutomatonState> Automaton() const;

  // Same state (same grammar, same bytes so far up to equivalence of what may follow).
  friend bool operator==(const Matcher& a, const Matcher& b);

  // Implementation state, private to matcher.cc; copyable values.
  struct Frame;
  struct Stack;

 private:
  std::shared_ptr<const Grammar> grammar_;
  // stacks_[0, live_) are the alternatives still alive (anyOf, enum), deduplicated; the
  // stacks past live_ are spare storage, kept so that copies and Advance reuse it.
  std::vector<Stack> stacks_;
  size_t live_ = 0;
  std::vector<Stack> next_;  // Advance's scratch: the stacks after the byte
};

}  // namespace ringserve::grammar

#endif  // RINGSERVE_WORKER_GRAMMAR_MATCHER_H_
