#include "worker/grammar/regex_syntax.h"

#include <cstddef>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace ringserve::grammar {
namespace {

// Groups nest at most this deep, so a hostile pattern cannot exhaust the parser's stack.
constexpr int kMaxDepth = 64;
// The largest count a {n,m} may name. The automaton holds one copy of the repeated part
// per count, so its own limits (regex.cc) bound what a count costs; this one only keeps a
// count from being parsed past them (".{0,2000}" for a bounded free text is fine, where
// RE2 would stop at 1000).
constexpr int32_t kMaxRepeat = 10000;

CodePointSet Ranges(std::initializer_list<CodePointRange> ranges) {
  CodePointSet set;
  for (const CodePointRange& r : ranges) set.Add(CodePointSet::Range(r.first, r.last));
  return set;
}

// ECMAScript's classes (JSON Schema's "pattern" is ECMA-262): \d and \w are ASCII, \s is
// ASCII whitespace plus Unicode's spaces and line terminators.
CodePointSet Digits() { return CodePointSet::Range('0', '9'); }
CodePointSet WordChars() { return Ranges({{'0', '9'}, {'A', 'Z'}, {'_', '_'}, {'a', 'z'}}); }
CodePointSet Spaces() {
  return Ranges({{'\t', '\r'},
                 {' ', ' '},
                 {0xA0, 0xA0},
                 {0x1680, 0x1680},
                 {0x2000, 0x200A},
                 {0x2028, 0x2029},
                 {0x202F, 0x202F},
                 {0x205F, 0x205F},
                 {0x3000, 0x3000},
                 {0xFEFF, 0xFEFF}});
}
// '.': any character but a line terminator.
CodePointSet AnyButNewline() {
  return Ranges({{'\n', '\n'}, {'\r', '\r'}, {0x2028, 0x2029}}).Complement();
}

RegexNode SetNode(CodePointSet set) {
  return RegexNode{.kind = RegexNode::Kind::kSet, .set = std::move(set)};
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

class Parser {
 public:
  explicit Parser(std::string_view pattern) : p_(pattern) {}

  absl::StatusOr<RegexNode> Parse() {
    RS_ASSIGN_OR_RETURN(RegexNode node, Alternation(0));
    if (pos_ < p_.size()) return Error(pos_, "unbalanced ')'");
    return node;
  }

 private:
  static absl::Status Error(size_t at, std::string_view message) {
    return absl::InvalidArgumentError(
        absl::StrCat("regex at byte ", at, ": ", std::string(message)));
  }
  bool AtEnd() const { return pos_ >= p_.size(); }
  char Peek(size_t ahead = 0) const { return pos_ + ahead < p_.size() ? p_[pos_ + ahead] : '\0'; }

  absl::StatusOr<RegexNode> Alternation(int depth);
  absl::StatusOr<RegexNode> Sequence(int depth);
  // The next atom; nullopt for an anchor at the pattern's ends (the whole text is matched).
  absl::StatusOr<std::optional<RegexNode>> Atom(int depth);
  absl::StatusOr<RegexNode> Group(int depth);
  absl::StatusOr<bool> Anchor();
  // A {n}, {n,}, {n,m} or {,m} at pos_: consumes it and sets min/max; false (consuming
  // nothing) when the brace does not start one (then it is a literal '{').
  absl::StatusOr<bool> BraceQuantifier(int32_t* min, int32_t* max);
  absl::StatusOr<bool> Quantifier(RegexNode& atom);
  absl::StatusOr<CodePointSet> Class();
  // One character of a class: a code point, or an escape's set (`single` false).
  absl::StatusOr<CodePointSet> ClassAtom(bool* single, uint32_t* code_point);
  absl::StatusOr<CodePointSet> Escape(bool in_class, bool* single, uint32_t* code_point);
  absl::StatusOr<uint32_t> HexDigits(size_t count);
  absl::StatusOr<uint32_t> UnicodeEscape();
  absl::StatusOr<uint32_t> CodePoint();

  std::string_view p_;
  size_t pos_ = 0;
};

absl::StatusOr<RegexNode> Parser::Alternation(int depth) {
  if (depth > kMaxDepth) return Error(pos_, absl::StrCat("groups nest deeper than ", kMaxDepth));
  RegexNode alternate{.kind = RegexNode::Kind::kAlternate};
  for (;;) {
    RS_ASSIGN_OR_RETURN(RegexNode branch, Sequence(depth));
    alternate.children.push_back(std::move(branch));
    if (Peek() != '|' || AtEnd()) break;
    ++pos_;
  }
  if (alternate.children.size() == 1) return std::move(alternate.children[0]);
  return alternate;
}

absl::StatusOr<RegexNode> Parser::Sequence(int depth) {
  RegexNode concat{.kind = RegexNode::Kind::kConcat};
  while (!AtEnd() && Peek() != '|' && Peek() != ')') {
    RS_ASSIGN_OR_RETURN(std::optional<RegexNode> atom, Atom(depth));
    if (!atom.has_value()) continue;
    RS_ASSIGN_OR_RETURN(const bool repeated, Quantifier(*atom));
    if (repeated) {
      int32_t min = 0;
      int32_t max = 0;
      const char c = Peek();
      RS_ASSIGN_OR_RETURN(const bool brace, c == '{' ? BraceQuantifier(&min, &max) : false);
      if (c == '*' || c == '+' || c == '?' || brace) {
        return Error(pos_, "a quantifier follows a quantifier (nothing to repeat)");
      }
    }
    concat.children.push_back(*std::move(atom));
  }
  if (concat.children.empty()) return RegexNode{};
  if (concat.children.size() == 1) return std::move(concat.children[0]);
  return concat;
}

absl::StatusOr<bool> Parser::Anchor() {
  const size_t at = pos_;
  const char c = Peek();
  const bool escaped = c == '\\' && (Peek(1) == 'A' || Peek(1) == 'z' || Peek(1) == 'Z');
  if (c != '^' && c != '$' && !escaped) return false;
  const size_t length = escaped ? 2 : 1;
  const bool start = c == '^' || (escaped && Peek(1) == 'A');
  if ((start && at != 0) || (!start && at + length != p_.size())) {
    return Error(at,
                 "anchors (^ $ \\A \\z \\Z) are supported only at the pattern's start and "
                 "end: the whole text is matched");
  }
  pos_ += length;
  return true;
}

absl::StatusOr<std::optional<RegexNode>> Parser::Atom(int depth) {
  RS_ASSIGN_OR_RETURN(const bool anchor, Anchor());
  if (anchor) return std::nullopt;
  const size_t at = pos_;
  const char c = Peek();
  if (c == '*' || c == '+' || c == '?') return Error(at, "nothing to repeat");
  if (c == '{') {
    int32_t min = 0;
    int32_t max = 0;
    RS_ASSIGN_OR_RETURN(const bool quantifier, BraceQuantifier(&min, &max));
    if (quantifier) return Error(at, "nothing to repeat");
  }
  if (c == '(') return Group(depth);
  if (c == '[') {
    RS_ASSIGN_OR_RETURN(CodePointSet set, Class());
    return SetNode(std::move(set));
  }
  if (c == '.') {
    ++pos_;
    return SetNode(AnyButNewline());
  }
  if (c == '\\') {
    bool single = false;
    uint32_t code_point = 0;
    RS_ASSIGN_OR_RETURN(CodePointSet set, Escape(/*in_class=*/false, &single, &code_point));
    return SetNode(std::move(set));
  }
  RS_ASSIGN_OR_RETURN(const uint32_t code_point, CodePoint());
  return SetNode(CodePointSet::Of(code_point));
}

absl::StatusOr<RegexNode> Parser::Group(int depth) {
  const size_t open = pos_++;
  if (Peek() == '?') {
    const char kind = Peek(1);
    const char next = Peek(2);
    if (kind == '=' || kind == '!' || (kind == '<' && (next == '=' || next == '!'))) {
      return Error(open, "lookaround is not supported");
    }
    if (kind == 'P' && next == '=') return Error(open, "backreferences are not supported");
    if (kind == ':') {
      pos_ += 2;
    } else if (kind == '<' || (kind == 'P' && next == '<')) {
      pos_ += kind == '<' ? 2 : 3;  // a named group: the name is only a label
      const size_t name = pos_;
      while (!AtEnd() && (absl::ascii_isalnum(Peek()) || Peek() == '_')) ++pos_;
      if (pos_ == name || Peek() != '>' || absl::ascii_isdigit(p_[name])) {
        return Error(open, "a group name must be a letter or '_', then letters, digits or '_'");
      }
      ++pos_;
    } else {
      return Error(open, "this group kind (inline flags, atomic, conditional) is not supported");
    }
  }
  RS_ASSIGN_OR_RETURN(RegexNode inner, Alternation(depth + 1));
  if (Peek() != ')' || AtEnd()) return Error(open, "missing ')'");
  ++pos_;
  return inner;
}

absl::StatusOr<bool> Parser::BraceQuantifier(int32_t* min, int32_t* max) {
  size_t at = pos_ + 1;
  const auto number = [&](std::optional<int64_t>* out) {
    int64_t value = 0;
    const size_t begin = at;
    while (at < p_.size() && absl::ascii_isdigit(p_[at])) {
      value = std::min<int64_t>(value * 10 + (p_[at] - '0'), int64_t{kMaxRepeat} + 1);
      ++at;
    }
    *out = at == begin ? std::nullopt : std::optional<int64_t>(value);
  };
  std::optional<int64_t> low;
  std::optional<int64_t> high;
  number(&low);
  const bool comma = at < p_.size() && p_[at] == ',';
  if (comma) {
    ++at;
    number(&high);
  }
  if (at >= p_.size() || p_[at] != '}' || (!low.has_value() && !high.has_value())) return false;
  const int64_t first = low.value_or(0);
  const int64_t last = comma ? high.value_or(RegexNode::kUnbounded) : first;
  if (first > kMaxRepeat || last > kMaxRepeat) {
    return Error(pos_, absl::StrCat("a repeat count above ", kMaxRepeat, " is not supported"));
  }
  if (last != RegexNode::kUnbounded && first > last) {
    return Error(pos_, "a repeat's minimum exceeds its maximum");
  }
  *min = static_cast<int32_t>(first);
  *max = static_cast<int32_t>(last);
  pos_ = at + 1;
  return true;
}

absl::StatusOr<bool> Parser::Quantifier(RegexNode& atom) {
  int32_t min = 0;
  int32_t max = 0;
  switch (Peek()) {
    case '*':
      max = RegexNode::kUnbounded;
      ++pos_;
      break;
    case '+':
      min = 1;
      max = RegexNode::kUnbounded;
      ++pos_;
      break;
    case '?':
      max = 1;
      ++pos_;
      break;
    case '{': {
      RS_ASSIGN_OR_RETURN(const bool brace, BraceQuantifier(&min, &max));
      if (!brace) return false;
      break;
    }
    default:
      return false;
  }
  if (AtEnd()) {
    // the pattern ends with the quantifier
  } else if (Peek() == '?') {
    ++pos_;  // lazy: the same texts match, and the model, not the regex, picks among them
  } else if (Peek() == '+') {
    return Error(pos_, "possessive quantifiers are not supported");
  }
  RegexNode repeat{.kind = RegexNode::Kind::kRepeat, .min = min, .max = max};
  repeat.children.push_back(std::move(atom));
  atom = std::move(repeat);
  return true;
}

absl::StatusOr<CodePointSet> Parser::Class() {
  const size_t open = pos_++;
  const bool negated = Peek() == '^' && !AtEnd();
  if (negated) ++pos_;
  CodePointSet set;
  bool first = true;
  for (;;) {
    if (AtEnd()) return Error(open, "unterminated character class");
    if (Peek() == ']' && !first) break;
    first = false;
    const size_t item = pos_;
    bool single = false;
    uint32_t low = 0;
    RS_ASSIGN_OR_RETURN(CodePointSet atom, ClassAtom(&single, &low));
    if (Peek() != '-' || Peek(1) == ']' || pos_ + 1 >= p_.size()) {
      set.Add(atom);
      continue;
    }
    ++pos_;  // the '-' of a range
    bool high_single = false;
    uint32_t high = 0;
    RS_RETURN_IF_ERROR(ClassAtom(&high_single, &high).status());
    if (!single || !high_single) {
      return Error(item, "a range's ends must be single characters");
    }
    if (low > high) return Error(item, "a range's ends are out of order");
    set.Add(CodePointSet::Range(low, high));
  }
  ++pos_;  // ']'
  return negated ? set.Complement() : set;
}

absl::StatusOr<CodePointSet> Parser::ClassAtom(bool* single, uint32_t* code_point) {
  if (Peek() == '\\') return Escape(/*in_class=*/true, single, code_point);
  RS_ASSIGN_OR_RETURN(*code_point, CodePoint());
  *single = true;
  return CodePointSet::Of(*code_point);
}

absl::StatusOr<CodePointSet> Parser::Escape(bool in_class, bool* single, uint32_t* code_point) {
  const size_t at = pos_++;
  if (AtEnd()) return Error(at, "a trailing backslash");
  const char c = Peek();
  *single = false;
  switch (c) {
    case 'd':
    case 'D':
    case 'w':
    case 'W':
    case 's':
    case 'S': {
      ++pos_;
      const char lower = absl::ascii_tolower(c);
      CodePointSet set = lower == 'd' ? Digits() : (lower == 'w' ? WordChars() : Spaces());
      return absl::ascii_isupper(c) ? set.Complement() : set;
    }
    case 'b':
      if (!in_class) return Error(at, "word boundaries (\\b) are not supported");
      *code_point = 0x08;  // [\b] is a backspace
      break;
    case 'B':
      return Error(at, "word boundaries (\\B) are not supported");
    case 'p':
    case 'P':
      return Error(at, "Unicode property classes (\\p, \\P) are not supported");
    case 'k':
      return Error(at, "backreferences are not supported");
    case 'n':
      *code_point = '\n';
      break;
    case 'r':
      *code_point = '\r';
      break;
    case 't':
      *code_point = '\t';
      break;
    case 'f':
      *code_point = '\f';
      break;
    case 'v':
      *code_point = '\v';
      break;
    case '0':
      if (absl::ascii_isdigit(Peek(1))) return Error(at, "octal escapes are not supported");
      *code_point = 0;
      break;
    case 'x': {
      ++pos_;
      RS_ASSIGN_OR_RETURN(*code_point, HexDigits(2));
      *single = true;
      return CodePointSet::Of(*code_point);
    }
    case 'u': {
      ++pos_;
      RS_ASSIGN_OR_RETURN(*code_point, UnicodeEscape());
      *single = true;
      return CodePointSet::Of(*code_point);
    }
    default: {
      if (absl::ascii_isdigit(c)) return Error(at, "backreferences are not supported");
      if (absl::ascii_isalpha(c)) {
        return Error(at, absl::StrCat("unknown escape \\", std::string(1, c)));
      }
      // Any other character escapes to itself (\. \* \/ \- ...).
      RS_ASSIGN_OR_RETURN(*code_point, CodePoint());
      *single = true;
      return CodePointSet::Of(*code_point);
    }
  }
  ++pos_;
  *single = true;
  return CodePointSet::Of(*code_point);
}

absl::StatusOr<uint32_t> Parser::HexDigits(size_t count) {
  uint32_t value = 0;
  for (size_t i = 0; i < count; ++i) {
    const int digit = HexValue(Peek());
    if (digit < 0 || AtEnd()) return Error(pos_, "expected a hexadecimal digit");
    value = value * 16 + static_cast<uint32_t>(digit);
    ++pos_;
  }
  return value;
}

// \uHHHH (a surrogate pair as two of them) or \u{H...}.
absl::StatusOr<uint32_t> Parser::UnicodeEscape() {
  const size_t at = pos_ - 2;
  if (Peek() == '{') {
    ++pos_;
    uint32_t value = 0;
    const size_t begin = pos_;
    while (!AtEnd() && HexValue(Peek()) >= 0 && value <= kMaxCodePoint) {
      value = value * 16 + static_cast<uint32_t>(HexValue(Peek()));
      ++pos_;
    }
    if (pos_ == begin || Peek() != '}' || value > kMaxCodePoint) {
      return Error(at, "\\u{...} must hold a code point in hexadecimal");
    }
    ++pos_;
    if (value >= 0xD800 && value <= 0xDFFF) return Error(at, "a lone surrogate");
    return value;
  }
  RS_ASSIGN_OR_RETURN(const uint32_t unit, HexDigits(4));
  if (unit < 0xD800 || unit > 0xDFFF) return unit;
  if (unit >= 0xDC00 || Peek() != '\\' || Peek(1) != 'u') return Error(at, "a lone surrogate");
  pos_ += 2;
  RS_ASSIGN_OR_RETURN(const uint32_t low, HexDigits(4));
  if (low < 0xDC00 || low > 0xDFFF) return Error(at, "a lone surrogate");
  return 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
}

// The UTF-8 character at pos_ (shortest form, no surrogates).
absl::StatusOr<uint32_t> Parser::CodePoint() {
  if (AtEnd()) return Error(pos_, "the pattern ends early");
  uint32_t value = 0;
  const size_t length = DecodeUtf8(p_, pos_, &value);
  if (length == 0) return Error(pos_, "not valid UTF-8");
  pos_ += length;
  return value;
}

}  // namespace

absl::StatusOr<RegexNode> ParseRegex(std::string_view pattern) { return Parser(pattern).Parse(); }

}  // namespace ringserve::grammar
