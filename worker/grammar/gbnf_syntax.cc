#include "worker/grammar/gbnf_syntax.h"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace ringserve::grammar {
namespace {

// Groups nest at most this deep, so a hostile grammar cannot exhaust the parser's stack.
constexpr int kMaxDepth = 64;
// The same bound on counts as regex_syntax.cc: the automaton holds one copy of the repeated
// part per count, so larger counts only fail later and more slowly.
constexpr int32_t kMaxRepeat = 10000;
// Each rule becomes a sub-automaton; real grammars have tens of rules.
constexpr size_t kMaxRules = 1024;

bool IsNameChar(char c) { return absl::ascii_isalnum(c) || c == '_' || c == '-'; }
bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// A character for an error message: control characters as U+XXXX, others as they are.
std::string Printable(std::string_view text, size_t pos) {
  uint32_t code_point = 0;
  const size_t length = DecodeUtf8(text, pos, &code_point);
  if (code_point < 0x20 || code_point == 0x7F) {
    return absl::StrCat("U+", absl::Hex(code_point, absl::kZeroPad4));
  }
  return std::string(text.substr(pos, length));
}

RegexNode SetNode(CodePointSet set) {
  return RegexNode{.kind = RegexNode::Kind::kSet, .set = std::move(set)};
}

// A concatenation or alternation, without the wrapper when there is one child (small
// trees), and kEmpty when there is none.
RegexNode Combine(RegexNode::Kind kind, std::vector<RegexNode> children) {
  if (children.empty()) return RegexNode{};
  if (children.size() == 1) return std::move(children[0]);
  return RegexNode{.kind = kind, .children = std::move(children)};
}

class Parser {
 public:
  Parser(std::string_view text, std::span<const std::string> predefined)
      : text_(text), num_predefined_(predefined.size()) {
    rules_.push_back(Rule{.name = "root", .body = {}});
    index_.emplace("root", 0);
    for (const std::string& name : predefined) {
      index_.emplace(name, static_cast<int32_t>(rules_.size()));
      rules_.push_back(Rule{.name = name, .body = {}, .defined = true, .predefined = true});
    }
  }

  absl::StatusOr<GbnfRules> Parse();

 private:
  struct Rule {
    std::string name;
    RegexNode body;
    bool defined = false;
    bool predefined = false;
    size_t first_reference = std::string_view::npos;
  };

  std::string Position(size_t at) const;  // "line L, column C"
  absl::Status Error(size_t at, std::string_view message) const {
    return absl::InvalidArgumentError(
        absl::StrCat("grammar: ", Position(at), ": ", std::string(message)));
  }
  bool AtEnd() const { return pos_ >= text_.size(); }
  bool At(char c) const { return pos_ < text_.size() && text_[pos_] == c; }
  size_t SpaceEnd(size_t at) const;  // past the whitespace and comments at `at`
  size_t NameEnd(size_t at) const;
  void SkipSpace() { pos_ = SpaceEnd(pos_); }
  // Whether a `name ::=` starts at pos_: it ends the body before it.
  bool AtDefinition() const;
  absl::StatusOr<int32_t> RuleIndex(std::string name, size_t at);

  absl::Status Definition();
  absl::StatusOr<RegexNode> Alternatives(int depth);
  absl::StatusOr<RegexNode> Sequence(int depth);
  absl::StatusOr<RegexNode> Item(int depth);
  absl::StatusOr<RegexNode> Group(int depth);
  // Wraps `item` in the quantifier at pos_, if there is one.
  absl::Status Quantify(RegexNode& item);
  // Consumes a quantifier at pos_ and sets min/max; false (consuming nothing) if none.
  absl::StatusOr<bool> Quantifier(int32_t* min, int32_t* max);
  absl::StatusOr<bool> BraceCounts(int32_t* min, int32_t* max);
  absl::StatusOr<std::optional<int32_t>> Count();
  absl::StatusOr<RegexNode> Literal();
  absl::StatusOr<CodePointSet> Class();
  // One character of the literal or class opened at `open`, escaped or as it is.
  absl::StatusOr<uint32_t> Char(size_t open, const char* construct);
  absl::StatusOr<uint32_t> Escape();
  absl::StatusOr<uint32_t> HexEscape(size_t at, char letter, size_t num_digits);

  std::string_view text_;
  size_t num_predefined_ = 0;
  size_t pos_ = 0;
  std::vector<Rule> rules_;
  absl::flat_hash_map<std::string, int32_t> index_;  // rule name → index in rules_
};

std::string Parser::Position(size_t at) const {
  const std::string_view before = text_.substr(0, std::min(at, text_.size()));
  const size_t line_start = before.rfind('\n');
  const size_t column = line_start == std::string_view::npos ? at + 1 : at - line_start;
  return absl::StrCat("line ", 1 + std::count(before.begin(), before.end(), '\n'), ", column ",
                      column);
}

size_t Parser::SpaceEnd(size_t at) const {
  while (at < text_.size()) {
    if (IsSpace(text_[at])) {
      ++at;
    } else if (text_[at] == '#') {
      while (at < text_.size() && text_[at] != '\n') ++at;
    } else {
      break;
    }
  }
  return at;
}

size_t Parser::NameEnd(size_t at) const {
  while (at < text_.size() && IsNameChar(text_[at])) ++at;
  return at;
}

bool Parser::AtDefinition() const {
  const size_t name_end = NameEnd(pos_);
  return name_end != pos_ && text_.substr(SpaceEnd(name_end)).starts_with("::=");
}

absl::StatusOr<int32_t> Parser::RuleIndex(std::string name, size_t at) {
  const auto it = index_.find(name);
  if (it != index_.end()) return it->second;
  if (rules_.size() >= kMaxRules) return Error(at, absl::StrCat("more than ", kMaxRules, " rules"));
  const auto index = static_cast<int32_t>(rules_.size());
  index_.emplace(name, index);
  rules_.push_back(Rule{.name = std::move(name), .body = {}});
  return index;
}

absl::StatusOr<GbnfRules> Parser::Parse() {
  if (text_.size() > kMaxGbnfBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("grammar: longer than ", kMaxGbnfBytes, " bytes (", text_.size(), ")"));
  }
  // Checked up front, so that the parser can take every character as valid.
  for (size_t at = 0; at < text_.size();) {
    uint32_t code_point = 0;
    const size_t length = DecodeUtf8(text_, at, &code_point);
    if (length == 0) return Error(at, "not valid UTF-8");
    at += length;
  }
  SkipSpace();
  while (!AtEnd()) RS_RETURN_IF_ERROR(Definition());
  if (!rules_[0].defined) return absl::InvalidArgumentError("grammar: no rule named 'root'");
  GbnfRules result;
  result.num_predefined = num_predefined_;
  for (Rule& rule : rules_) {
    // Rules are numbered on first appearance, so the first undefined one in this order is
    // the one referenced first.
    if (!rule.defined) {
      return Error(rule.first_reference, absl::StrCat("undefined rule '", rule.name, "'"));
    }
    result.names.push_back(std::move(rule.name));
    result.bodies.push_back(std::move(rule.body));
  }
  return result;
}

absl::Status Parser::Definition() {
  const size_t at = pos_;
  pos_ = NameEnd(pos_);
  if (pos_ == at) return Error(at, "expected a rule name");
  std::string name(text_.substr(at, pos_ - at));
  // A body ends only where the next `name ::=` starts, so "a ::= b c ::= d" would quietly
  // read as two rules; llama.cpp ends a rule at the end of its line, so requiring a new line
  // refuses only what it refuses too.
  for (size_t i = at; i > 0 && text_[i - 1] != '\n'; --i) {
    if (!IsSpace(text_[i - 1])) return Error(at, "a rule definition must start a line");
  }
  SkipSpace();
  if (!text_.substr(pos_).starts_with("::=")) {
    return Error(pos_, "expected '::=' after the rule name");
  }
  pos_ += 3;
  RS_ASSIGN_OR_RETURN(const int32_t index, RuleIndex(name, at));
  Rule& rule = rules_[static_cast<size_t>(index)];
  if (rule.predefined) return Error(at, absl::StrCat("rule '", name, "' is predefined"));
  if (rule.defined) return Error(at, absl::StrCat("rule '", name, "' is defined twice"));
  rule.defined = true;
  RS_ASSIGN_OR_RETURN(RegexNode body, Alternatives(/*depth=*/0));
  // RuleIndex may have grown rules_ while the body was parsed.
  rules_[static_cast<size_t>(index)].body = std::move(body);
  if (At(')')) return Error(pos_, "unbalanced ')'");
  return absl::OkStatus();
}

absl::StatusOr<RegexNode> Parser::Alternatives(int depth) {
  std::vector<RegexNode> branches;
  for (;;) {
    RS_ASSIGN_OR_RETURN(RegexNode branch, Sequence(depth));
    branches.push_back(std::move(branch));
    if (!At('|')) break;
    ++pos_;
  }
  return Combine(RegexNode::Kind::kAlternate, std::move(branches));
}

absl::StatusOr<RegexNode> Parser::Sequence(int depth) {
  std::vector<RegexNode> items;
  for (;;) {
    SkipSpace();
    if (AtEnd() || At('|') || At(')') || AtDefinition()) break;
    RS_ASSIGN_OR_RETURN(RegexNode item, Item(depth));
    RS_RETURN_IF_ERROR(Quantify(item));
    items.push_back(std::move(item));
  }
  return Combine(RegexNode::Kind::kConcat, std::move(items));
}

absl::StatusOr<RegexNode> Parser::Item(int depth) {
  const size_t at = pos_;
  const char c = text_[pos_];
  if (IsNameChar(c)) {
    pos_ = NameEnd(pos_);
    RS_ASSIGN_OR_RETURN(const int32_t index,
                        RuleIndex(std::string(text_.substr(at, pos_ - at)), at));
    Rule& rule = rules_[static_cast<size_t>(index)];
    if (rule.first_reference == std::string_view::npos) rule.first_reference = at;
    return RegexNode{.kind = RegexNode::Kind::kCall, .rule = index};
  }
  switch (c) {
    case '"':
      return Literal();
    case '[': {
      RS_ASSIGN_OR_RETURN(CodePointSet set, Class());
      return SetNode(std::move(set));
    }
    case '.':
      ++pos_;
      return SetNode(CodePointSet::All());
    case '(':
      return Group(depth);
    case '<':
      return Error(at, "token references (<...>) are not supported");
    case '*':
    case '+':
    case '?':
    case '{':
      return Error(at, "quantifier without an item");
    default:
      return Error(at, absl::StrCat("unexpected character '", Printable(text_, at), "'"));
  }
}

absl::StatusOr<RegexNode> Parser::Group(int depth) {
  const size_t open = pos_++;
  if (depth >= kMaxDepth) return Error(open, absl::StrCat("groups nest deeper than ", kMaxDepth));
  RS_ASSIGN_OR_RETURN(RegexNode inner, Alternatives(depth + 1));
  if (!At(')')) {
    return Error(pos_, absl::StrCat("expected ')' to close the '(' at ", Position(open)));
  }
  ++pos_;
  return inner;
}

absl::Status Parser::Quantify(RegexNode& item) {
  SkipSpace();
  int32_t min = 0;
  int32_t max = 0;
  RS_ASSIGN_OR_RETURN(const bool quantified, Quantifier(&min, &max));
  if (!quantified) return absl::OkStatus();
  RegexNode repeat{.kind = RegexNode::Kind::kRepeat, .min = min, .max = max};
  repeat.children.push_back(std::move(item));
  item = std::move(repeat);
  SkipSpace();
  const size_t at = pos_;
  RS_ASSIGN_OR_RETURN(const bool again, Quantifier(&min, &max));
  if (again) return Error(at, "a quantifier follows a quantifier (group the item to repeat it)");
  return absl::OkStatus();
}

absl::StatusOr<bool> Parser::Quantifier(int32_t* min, int32_t* max) {
  if (At('{')) return BraceCounts(min, max);
  if (!At('*') && !At('+') && !At('?')) return false;
  *min = At('+') ? 1 : 0;
  *max = At('?') ? 1 : RegexNode::kUnbounded;
  ++pos_;
  return true;
}

// {n}, {n,}, {n,m} or {,m}, whitespace allowed between the parts.
absl::StatusOr<bool> Parser::BraceCounts(int32_t* min, int32_t* max) {
  const size_t open = pos_++;
  SkipSpace();
  RS_ASSIGN_OR_RETURN(const std::optional<int32_t> low, Count());
  SkipSpace();
  const bool comma = At(',');
  std::optional<int32_t> high = low;
  if (comma) {
    ++pos_;
    SkipSpace();
    RS_ASSIGN_OR_RETURN(high, Count());
    SkipSpace();
  }
  if (!low.has_value() && !high.has_value()) return Error(pos_, "expected a count");
  if (!At('}')) return Error(pos_, "expected '}'");
  ++pos_;
  *min = low.value_or(0);
  *max = high.value_or(RegexNode::kUnbounded);
  if (*max != RegexNode::kUnbounded && *min > *max) {
    return Error(open, "the minimum count exceeds the maximum");
  }
  return true;
}

absl::StatusOr<std::optional<int32_t>> Parser::Count() {
  const size_t at = pos_;
  int32_t value = 0;
  while (!AtEnd() && absl::ascii_isdigit(text_[pos_])) {
    value = std::min(value * 10 + (text_[pos_] - '0'), kMaxRepeat + 1);
    ++pos_;
  }
  if (pos_ == at) return std::nullopt;
  if (value > kMaxRepeat) return Error(at, absl::StrCat("count over ", kMaxRepeat));
  return value;
}

absl::StatusOr<RegexNode> Parser::Literal() {
  const size_t open = pos_++;
  std::vector<RegexNode> chars;
  while (!At('"')) {
    if (AtEnd()) return Error(open, "unterminated literal");
    RS_ASSIGN_OR_RETURN(const uint32_t code_point, Char(open, "literal"));
    chars.push_back(SetNode(CodePointSet::Of(code_point)));
  }
  ++pos_;
  return Combine(RegexNode::Kind::kConcat, std::move(chars));
}

absl::StatusOr<CodePointSet> Parser::Class() {
  const size_t open = pos_++;
  const bool negated = At('^');
  if (negated) ++pos_;
  CodePointSet set;
  bool empty = true;
  while (!At(']')) {
    if (AtEnd()) return Error(open, "unterminated class");
    const size_t item = pos_;
    RS_ASSIGN_OR_RETURN(const uint32_t low, Char(open, "class"));
    uint32_t high = low;
    // A '-' before the ']' is itself a member.
    if (At('-') && pos_ + 1 < text_.size() && text_[pos_ + 1] != ']') {
      ++pos_;
      RS_ASSIGN_OR_RETURN(high, Char(open, "class"));
      if (high < low) return Error(item, "range out of order");
    }
    set.Add(CodePointSet::Range(low, high));
    empty = false;
  }
  ++pos_;
  if (empty) return Error(open, "empty class");
  if (negated) set = set.Complement();
  // The complement of every character: a set no text can match is surely a mistake.
  if (set.empty()) return Error(open, "the class matches no character");
  return set;
}

absl::StatusOr<uint32_t> Parser::Char(size_t open, const char* construct) {
  if (At('\\')) {
    if (pos_ + 1 >= text_.size()) return Error(open, absl::StrCat("unterminated ", construct));
    return Escape();
  }
  uint32_t code_point = 0;
  pos_ += DecodeUtf8(text_, pos_, &code_point);  // valid: Parse checked the whole text
  return code_point;
}

absl::StatusOr<uint32_t> Parser::Escape() {
  // The characters that escape to themselves: the delimiters, and those JSON or regex
  // habits escape.
  static constexpr std::string_view kSelf = "\\\"'[]-^/";
  const size_t at = pos_;
  const char c = text_[pos_ + 1];
  pos_ += 2;
  if (c == 'n') return '\n';
  if (c == 'r') return '\r';
  if (c == 't') return '\t';
  if (kSelf.find(c) != std::string_view::npos) return static_cast<uint32_t>(c);
  if (c == 'x') return HexEscape(at, c, 2);
  if (c == 'u') return HexEscape(at, c, 4);
  if (c == 'U') return HexEscape(at, c, 8);
  return Error(at, absl::StrCat("unknown escape '\\", Printable(text_, at + 1), "'"));
}

absl::StatusOr<uint32_t> Parser::HexEscape(size_t at, char letter, size_t num_digits) {
  uint32_t value = 0;
  for (size_t i = 0; i < num_digits; ++i, ++pos_) {
    const int digit = AtEnd() ? -1 : HexValue(text_[pos_]);
    if (digit < 0) {
      return Error(at, absl::StrCat("\\", std::string(1, letter), " needs exactly ", num_digits,
                                    " hexadecimal digits"));
    }
    value = value * 16 + static_cast<uint32_t>(digit);
  }
  if (value >= 0xD800 && value <= 0xDFFF) {
    return Error(at, "escape of a surrogate (U+D800..U+DFFF): not a character");
  }
  if (value > kMaxCodePoint) return Error(at, "escape of a code point above U+10FFFF");
  return value;
}

}  // namespace

absl::StatusOr<GbnfRules> ParseGbnf(std::string_view text,
                                    std::span<const std::string> predefined) {
  return Parser(text, predefined).Parse();
}

}  // namespace ringserve::grammar
