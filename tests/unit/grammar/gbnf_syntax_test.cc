#include "worker/grammar/gbnf_syntax.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "worker/grammar/regex_syntax.h"
#include "worker/grammar/utf8_sequences.h"

namespace ringserve::grammar {
namespace {

using Kind = RegexNode::Kind;

GbnfRules Parse(std::string_view text) {
  absl::StatusOr<GbnfRules> rules = ParseGbnf(text);
  EXPECT_TRUE(rules.ok()) << rules.status() << " for\n" << text;
  return rules.ok() ? *std::move(rules) : GbnfRules{};
}

// Rule 0's body; kEmpty (after a failure) when `text` does not parse.
RegexNode Root(std::string_view text) {
  GbnfRules rules = Parse(text);
  return rules.bodies.empty() ? RegexNode{} : std::move(rules.bodies[0]);
}

bool Contains(const CodePointSet& set, uint32_t code_point) {
  return std::ranges::any_of(set.ranges(), [&](const CodePointRange& range) {
    return code_point >= range.first && code_point <= range.last;
  });
}

// The positions where a match of `node` that starts at `pos` can end: a reference
// interpreter of the trees, so that tests can check what a grammar means. It assumes no
// left recursion (a test grammar with some fails rather than looping).
std::set<size_t> Ends(const GbnfRules& rules, const RegexNode& node, std::u32string_view text,
                      size_t pos, int depth) {
  if (depth > 500) {
    ADD_FAILURE() << "recursion too deep";
    return {};
  }
  const auto follow = [&](const RegexNode& child, const std::set<size_t>& starts) {
    std::set<size_t> ends;
    for (const size_t start : starts) ends.merge(Ends(rules, child, text, start, depth + 1));
    return ends;
  };
  switch (node.kind) {
    case Kind::kEmpty:
      return {pos};
    case Kind::kSet:
      if (pos < text.size() && Contains(node.set, text[pos])) return {pos + 1};
      return {};
    case Kind::kConcat: {
      std::set<size_t> ends = {pos};
      for (const RegexNode& child : node.children) ends = follow(child, ends);
      return ends;
    }
    case Kind::kAlternate: {
      std::set<size_t> ends;
      for (const RegexNode& child : node.children) ends.merge(follow(child, {pos}));
      return ends;
    }
    case Kind::kRepeat: {
      std::set<size_t> ends;
      if (node.min == 0) ends.insert(pos);
      std::set<size_t> current = {pos};
      // Past text.size() + min rounds, further rounds can only match empty texts again.
      for (int32_t round = 1; node.max == RegexNode::kUnbounded || round <= node.max; ++round) {
        current = follow(node.children[0], current);
        if (current.empty() || round > node.min + static_cast<int32_t>(text.size()) + 1) break;
        if (round >= node.min) ends.insert(current.begin(), current.end());
      }
      return ends;
    }
    case Kind::kCall:
      return follow(rules.bodies.at(static_cast<size_t>(node.rule)), {pos});
  }
  return {};
}

bool Matches(const GbnfRules& rules, std::u32string_view text) {
  if (rules.bodies.empty()) return false;
  return Ends(rules, rules.bodies[0], text, 0, 0).contains(text.size());
}

TEST(GbnfSyntaxTest, BuildsOneSmallTreePerRule) {
  const GbnfRules rules = Parse(R"(root ::= greeting " " name
greeting ::= "hi" | "hello"
name ::= [A-Z] [a-z]*
)");
  ASSERT_EQ(rules.names, (std::vector<std::string>{"root", "greeting", "name"}));
  ASSERT_EQ(rules.bodies.size(), 3U);

  const RegexNode& root = rules.bodies[0];
  ASSERT_EQ(root.kind, Kind::kConcat);
  ASSERT_EQ(root.children.size(), 3U);
  EXPECT_EQ(root.children[0].kind, Kind::kCall);
  EXPECT_EQ(root.children[0].rule, 1);
  EXPECT_EQ(root.children[1].kind, Kind::kSet);
  EXPECT_EQ(root.children[1].set, CodePointSet::Of(' '));
  EXPECT_EQ(root.children[2].kind, Kind::kCall);
  EXPECT_EQ(root.children[2].rule, 2);

  const RegexNode& greeting = rules.bodies[1];
  ASSERT_EQ(greeting.kind, Kind::kAlternate);
  ASSERT_EQ(greeting.children.size(), 2U);
  ASSERT_EQ(greeting.children[0].kind, Kind::kConcat);
  ASSERT_EQ(greeting.children[0].children.size(), 2U);
  EXPECT_EQ(greeting.children[0].children[1].set, CodePointSet::Of('i'));
  EXPECT_EQ(greeting.children[1].children.size(), 5U);

  const RegexNode& name = rules.bodies[2];
  ASSERT_EQ(name.kind, Kind::kConcat);
  ASSERT_EQ(name.children.size(), 2U);
  EXPECT_EQ(name.children[0].set, CodePointSet::Range('A', 'Z'));
  const RegexNode& tail = name.children[1];
  EXPECT_EQ(tail.kind, Kind::kRepeat);
  EXPECT_EQ(tail.min, 0);
  EXPECT_EQ(tail.max, RegexNode::kUnbounded);
  ASSERT_EQ(tail.children.size(), 1U);
  EXPECT_EQ(tail.children[0].set, CodePointSet::Range('a', 'z'));
}

TEST(GbnfSyntaxTest, NumbersRulesByFirstAppearanceWithRootFirst) {
  const GbnfRules rules = Parse("b ::= c \"x\"\nroot ::= a b\na ::= \"y\"\nc ::= \"z\"\n");
  ASSERT_EQ(rules.names, (std::vector<std::string>{"root", "b", "c", "a"}));
  ASSERT_EQ(rules.bodies.size(), 4U);
  ASSERT_EQ(rules.bodies[0].children.size(), 2U);
  EXPECT_EQ(rules.bodies[0].children[0].rule, 3);
  EXPECT_EQ(rules.bodies[0].children[1].rule, 1);
  EXPECT_EQ(rules.bodies[1].children[0].rule, 2);
}

TEST(GbnfSyntaxTest, LiteralsAndGroupsKeepTreesSmall) {
  EXPECT_EQ(Root("root ::= \"\"").kind, Kind::kEmpty);
  EXPECT_EQ(Root("root ::=").kind, Kind::kEmpty);
  EXPECT_EQ(Root("root ::= ()").kind, Kind::kEmpty);

  const RegexNode one = Root("root ::= \"a\"");
  EXPECT_EQ(one.kind, Kind::kSet);
  EXPECT_EQ(one.set, CodePointSet::Of('a'));

  const RegexNode group = Root("root ::= ((\"a\"))");
  EXPECT_EQ(group.kind, Kind::kSet);

  // Multi-byte characters are one code point each.
  const RegexNode wide = Root("root ::= \"é日😀\"");
  ASSERT_EQ(wide.kind, Kind::kConcat);
  ASSERT_EQ(wide.children.size(), 3U);
  EXPECT_EQ(wide.children[0].set, CodePointSet::Of(0xE9));
  EXPECT_EQ(wide.children[1].set, CodePointSet::Of(0x65E5));
  EXPECT_EQ(wide.children[2].set, CodePointSet::Of(0x1F600));

  const RegexNode repeated = Root("root ::= (\"a\" | \"b\" |)+");
  ASSERT_EQ(repeated.kind, Kind::kRepeat);
  EXPECT_EQ(repeated.min, 1);
  ASSERT_EQ(repeated.children[0].kind, Kind::kAlternate);
  ASSERT_EQ(repeated.children[0].children.size(), 3U);
  EXPECT_EQ(repeated.children[0].children[2].kind, Kind::kEmpty);

  const RegexNode dot = Root("root ::= .");
  EXPECT_EQ(dot.set, CodePointSet::All());
}

TEST(GbnfSyntaxTest, EscapesNameCodePoints) {
  const struct {
    std::string escape;
    uint32_t code_point;
  } cases[] = {
      {"\\x41", 'A'},
      {"\\u00e9", 0xE9},
      {"\\U0001F600", 0x1F600},
      {"\\u00E9", 0xE9},
      {"\\x00", 0},
      {"\\n", '\n'},
      {"\\r", '\r'},
      {"\\t", '\t'},
      {"\\\\", '\\'},
      {"\\\"", '"'},
      {"\\'", '\''},
      {"\\[", '['},
      {"\\]", ']'},
      {"\\-", '-'},
      {"\\^", '^'},
      {"\\/", '/'},
      {"\\U0010FFFF", 0x10FFFF},
  };
  for (const auto& c : cases) {
    for (const std::string& text :
         {absl::StrCat("root ::= \"", c.escape, "\""), absl::StrCat("root ::= [", c.escape, "]")}) {
      const GbnfRules rules = Parse(text);
      ASSERT_EQ(rules.bodies.size(), 1U) << text;
      EXPECT_EQ(rules.bodies[0].kind, Kind::kSet) << text;
      EXPECT_EQ(rules.bodies[0].set, CodePointSet::Of(c.code_point)) << text;
    }
  }
  // Exactly two digits for \x: the next is a character of its own.
  const RegexNode two = Root("root ::= \"\\x414\"");
  ASSERT_EQ(two.children.size(), 2U);
  EXPECT_EQ(two.children[1].set, CodePointSet::Of('4'));
}

TEST(GbnfSyntaxTest, Classes) {
  const RegexNode ident = Root("root ::= [a-z0-9_-]");
  CodePointSet expected = CodePointSet::Range('a', 'z');
  expected.Add(CodePointSet::Range('0', '9'));
  expected.Add(CodePointSet::Of('_'));
  expected.Add(CodePointSet::Of('-'));
  EXPECT_EQ(ident.set, expected);

  CodePointSet dash_a = CodePointSet::Of('-');
  dash_a.Add(CodePointSet::Of('a'));
  EXPECT_EQ(Root("root ::= [-a]").set, dash_a);
  EXPECT_EQ(Root("root ::= [a-]").set, dash_a);
  EXPECT_EQ(Root("root ::= [\\-a]").set, dash_a);
  // '#', '"' and whitespace are members inside a class, not comments or delimiters.
  CodePointSet raw = CodePointSet::Of('#');
  raw.Add(CodePointSet::Of('"'));
  raw.Add(CodePointSet::Of(' '));
  EXPECT_EQ(Root("root ::= [# \"]").set, raw);
  EXPECT_EQ(Root("root ::= [\\x00-\\U0010FFFF]").set, CodePointSet::All());
  EXPECT_EQ(Root("root ::= [é-ë]").set, CodePointSet::Range(0xE9, 0xEB));

  const CodePointSet negated = Root(R"(root ::= [^"\\a-c])").set;
  for (const uint32_t member : {uint32_t{'d'}, uint32_t{0}, uint32_t{'\n'}, uint32_t{0x1F600}}) {
    EXPECT_TRUE(Contains(negated, member)) << member;
  }
  for (const uint32_t non_member : {uint32_t{'"'}, uint32_t{'\\'}, uint32_t{'a'}, uint32_t{'b'},
                                    uint32_t{'c'}, uint32_t{0xD800}}) {
    EXPECT_FALSE(Contains(negated, non_member)) << non_member;
  }
  // '^' after the first position is a member.
  CodePointSet caret = CodePointSet::Of('a');
  caret.Add(CodePointSet::Of('^'));
  EXPECT_EQ(Root("root ::= [a^]").set, caret);
  EXPECT_EQ(Root("root ::= [^^]").set, CodePointSet::Of('^').Complement());
}

TEST(GbnfSyntaxTest, Quantifiers) {
  const struct {
    std::string quantifier;
    int32_t min;
    int32_t max;
  } cases[] = {
      {"*", 0, RegexNode::kUnbounded},
      {"+", 1, RegexNode::kUnbounded},
      {"?", 0, 1},
      {"{3}", 3, 3},
      {"{0}", 0, 0},
      {"{2,}", 2, RegexNode::kUnbounded},
      {"{2,5}", 2, 5},
      {"{,4}", 0, 4},
      {"{ 2 , 5 }", 2, 5},
      {"{\n7\n}", 7, 7},
      {"{10000}", 10000, 10000},
      {"{0,10000}", 0, 10000},
      {" *", 0, RegexNode::kUnbounded},  // llama.cpp allows space before a quantifier
  };
  for (const auto& c : cases) {
    const std::string text = absl::StrCat("root ::= [a-z]", c.quantifier, " \"!\"");
    const GbnfRules rules = Parse(text);
    ASSERT_EQ(rules.bodies.size(), 1U) << text;
    const RegexNode& body = rules.bodies[0];
    ASSERT_EQ(body.kind, Kind::kConcat) << text;
    ASSERT_EQ(body.children.size(), 2U) << text;
    const RegexNode& repeat = body.children[0];
    EXPECT_EQ(repeat.kind, Kind::kRepeat) << text;
    EXPECT_EQ(repeat.min, c.min) << text;
    EXPECT_EQ(repeat.max, c.max) << text;
    ASSERT_EQ(repeat.children.size(), 1U) << text;
    EXPECT_EQ(repeat.children[0].set, CodePointSet::Range('a', 'z')) << text;
    EXPECT_EQ(body.children[1].set, CodePointSet::Of('!')) << text;
  }
}

TEST(GbnfSyntaxTest, BodiesContinueOverLinesAndCommentsAreSkipped) {
  const GbnfRules rules = Parse(R"(# a grammar
root ::= "a" # a comment with ::= and "quotes" and [brackets
  | "b"   # the second alternative
    "c"
# between rules
  item-2 ::= "#"
)");
  ASSERT_EQ(rules.names, (std::vector<std::string>{"root", "item-2"}));
  const RegexNode& root = rules.bodies[0];
  ASSERT_EQ(root.kind, Kind::kAlternate);
  ASSERT_EQ(root.children.size(), 2U);
  EXPECT_EQ(root.children[0].set, CodePointSet::Of('a'));
  ASSERT_EQ(root.children[1].kind, Kind::kConcat);
  EXPECT_EQ(root.children[1].children.size(), 2U);
  EXPECT_EQ(rules.bodies[1].set, CodePointSet::Of('#'));

  // CRLF line ends, and a definition that follows a comment line.
  const GbnfRules crlf = Parse("root ::= a\r\n  \"b\"\r\n# x\r\na ::= \"c\"\r\n");
  ASSERT_EQ(crlf.names.size(), 2U);
  EXPECT_EQ(crlf.bodies[0].kind, Kind::kConcat);
}

constexpr std::string_view kJsonGrammar = R"gbnf(# JSON text (RFC 8259)
root   ::= ws value ws
value  ::= object | array | string | number | ("true" | "false" | "null")
object ::= "{" ws ( member ( ws "," ws member )* )? ws "}"
member ::= string ws ":" ws value
array  ::= "[" ws ( value ( ws "," ws value )* )? ws "]"
string ::= "\"" (
             [^"\\\x00-\x1F] |
             "\\" ( ["\\/bfnrt] | "u" [0-9a-fA-F]{4} )
           )* "\""
number ::= "-"? ( "0" | [1-9] [0-9]* ) ( "." [0-9]+ )? ( [eE] [-+]? [0-9]+ )?
ws     ::= [ \t\n\r]*
)gbnf";

constexpr std::string_view kArithmeticGrammar = R"gbnf(
root   ::= ws expr ws
expr   ::= term ( ws ("+" | "-") ws term )*
term   ::= factor ( ws ("*" | "/") ws factor )*
factor ::= number | "(" ws expr ws ")" | "-" factor
number ::= [0-9]+ ( "." [0-9]+ )?
ws     ::= [ ]{0,3}
)gbnf";

TEST(GbnfSyntaxTest, JsonGrammarMeansJson) {
  const GbnfRules rules = Parse(kJsonGrammar);
  EXPECT_EQ(rules.names, (std::vector<std::string>{"root", "ws", "value", "object", "array",
                                                   "string", "number", "member"}));
  for (const std::u32string_view json :
       {U"{}", U" [ ] ", U"null", U"-0.5e+3", U"{\"a\": [1, 2.5E3, \"x\\u00e9\\n\"], \"b\":{}}",
        U"\"é日😀\"", U"[true,false,null]"}) {
    EXPECT_TRUE(Matches(rules, json)) << std::u32string(json).size();
  }
  for (const std::u32string_view not_json :
       {U"", U"{", U"01", U"[1,]", U"\"\n\"", U"\"\\x\"", U"{\"a\"}", U"nul", U"1.", U"+1"}) {
    EXPECT_FALSE(Matches(rules, not_json)) << std::u32string(not_json).size();
  }
}

TEST(GbnfSyntaxTest, RecursiveArithmeticGrammar) {
  const GbnfRules rules = Parse(kArithmeticGrammar);
  EXPECT_EQ(rules.names,
            (std::vector<std::string>{"root", "ws", "expr", "term", "factor", "number"}));
  // factor refers to expr: a cycle through rules.
  for (const std::u32string_view good : {U"1", U"1+2*3", U" (1 + 2) * -3.5 ", U"((4))/-(2-1)"}) {
    EXPECT_TRUE(Matches(rules, good));
  }
  for (const std::u32string_view bad : {U"", U"1+", U"(1", U"1 2", U"1.", U"()"}) {
    EXPECT_FALSE(Matches(rules, bad));
  }
}

TEST(GbnfSyntaxTest, AcceptsOtherValidGrammars) {
  const struct {
    std::string_view text;
    size_t num_rules;
  } cases[] = {
      {"root::=\"a\"", 1},
      {"  root ::= \"a\"", 1},
      {"root ::= x-y_Z9\nx-y_Z9 ::= \"a\"", 2},
      {"root ::= _p 2nd\n_p ::= \"a\"\n2nd ::= \"b\"", 3},
      {"root ::= \"a\" |", 1},
      {"root ::= unused-ok\nunused-ok ::= \"\"\nnever-used ::= \"b\"", 3},
      {"root ::= root2\nroot2 ::= \"a\" root2 | \"\"", 2},  // right recursion
      {"root ::= [\\]\\[]", 1},
      {"root ::= \"\n\"", 1},  // a raw newline in a literal is itself
      {"root ::= (\"a\"\n  | \"b\")\n", 1},
      {"root ::= \"a\" { 1 , }", 1},
      // A list, as in llama.cpp's grammars/list.gbnf.
      {"root ::= item+\n\n# Excludes various line break characters\nitem ::= \"- \" "
       "[^\\r\\n\\x0b\\x0c\\x85\\u2028\\u2029]+ \"\\n\"",
       2},
  };
  for (const auto& c : cases) {
    const absl::StatusOr<GbnfRules> rules = ParseGbnf(c.text);
    ASSERT_TRUE(rules.ok()) << rules.status() << " for " << c.text;
    EXPECT_EQ(rules->names.size(), c.num_rules) << c.text;
    EXPECT_EQ(rules->bodies.size(), c.num_rules) << c.text;
  }
}

TEST(GbnfSyntaxTest, RefusesInvalidGrammars) {
  const struct {
    std::string_view text;
    std::string_view message;  // a part of the error
  } cases[] = {
      {"", "grammar: no rule named 'root'"},
      {"# nothing\n", "grammar: no rule named 'root'"},
      {"a ::= \"x\"", "grammar: no rule named 'root'"},
      {"root ::= foo", "grammar: line 1, column 10: undefined rule 'foo'"},
      {"root ::= a\n  foo a\na ::= foo", "grammar: line 2, column 3: undefined rule 'foo'"},
      {"root = \"a\"", "grammar: line 1, column 6: expected '::=' after the rule name"},
      {"root ::= \"a\"\n\nroot ::= \"b\"", "line 3, column 1: rule 'root' is defined twice"},
      {"::= \"a\"", "line 1, column 1: expected a rule name"},
      {"root ::= \"a\" b ::= \"c\"", "line 1, column 14: a rule definition must start a line"},
      {"root ::= \"abc", "line 1, column 10: unterminated literal"},
      {"root ::= \"abc\\", "unterminated literal"},
      {"root ::= [abc", "line 1, column 10: unterminated class"},
      {"root ::= [a\\", "unterminated class"},
      {"root ::= \"a\")", "line 1, column 13: unbalanced ')'"},
      {"root ::= \"a\" |\n )", "line 2, column 2: unbalanced ')'"},
      {"root ::= (\"a\"", "expected ')' to close the '(' at line 1, column 10"},
      {"root ::= ( a ::= \"b\" )", "expected ')'"},
      {"root ::= \"a\" %", "line 1, column 14: unexpected character '%'"},
      {"root ::= :", "unexpected character ':'"},
      {"root ::= \x01", "unexpected character 'U+0001'"},
      {"root ::= }", "unexpected character '}'"},
      {"root ::= <think>", "token references (<...>) are not supported"},
      {"root ::= <[1000]>", "token references (<...>) are not supported"},
      {"root ::= [0-9]{10001}", "line 1, column 16: count over 10000"},
      {"root ::= [0-9]{1,99999999999999999999}", "count over 10000"},
      {"root ::= *", "line 1, column 10: quantifier without an item"},
      {"root ::= \"a\" | +", "quantifier without an item"},
      {"root ::= {2}", "quantifier without an item"},
      {"root ::= \"a\"**", "line 1, column 14: a quantifier follows a quantifier"},
      {"root ::= \"a\"* ?", "a quantifier follows a quantifier"},
      {"root ::= \"a\"{2}{3}", "a quantifier follows a quantifier"},
      {"root ::= \"a\"{3,2}", "the minimum count exceeds the maximum"},
      {"root ::= \"a\"{}", "expected a count"},
      {"root ::= \"a\"{,}", "expected a count"},
      {"root ::= \"a\"{x}", "expected a count"},
      {"root ::= \"a\"{-1}", "expected a count"},
      {"root ::= \"a\"{2", "expected '}'"},
      {"root ::= \"a\"{2 3}", "expected '}'"},
      {"root ::= []", "line 1, column 10: empty class"},
      {"root ::= [^]", "empty class"},
      {"root ::= [^\\x00-\\U0010FFFF]", "the class matches no character"},
      {"root ::= [z-a]", "line 1, column 11: range out of order"},
      {"root ::= \"\\q\"", "line 1, column 11: unknown escape '\\q'"},
      {"root ::= [\\d]", "unknown escape '\\d'"},
      {"root ::= \"\\é\"", "unknown escape '\\é'"},
      {"root ::= \"\\x4\"", "\\x needs exactly 2 hexadecimal digits"},
      {"root ::= \"\\u00e\"", "\\u needs exactly 4 hexadecimal digits"},
      {"root ::= \"\\U0001F60\"", "\\U needs exactly 8 hexadecimal digits"},
      {"root ::= \"\\uD800\"", "surrogate"},
      {"root ::= [\\uDFFF]", "surrogate"},
      {"root ::= \"\\U0000D800\"", "surrogate"},
      {"root ::= \"\\U00110000\"", "above U+10FFFF"},
      {"root ::= \"\\UFFFFFFFF\"", "above U+10FFFF"},
      {"root ::= \"\xff\"", "line 1, column 11: not valid UTF-8"},
      {"# \xc3\nroot ::= \"a\"", "line 1, column 3: not valid UTF-8"},
      {"root ::= \"\xc0\x80\"", "not valid UTF-8"},      // overlong
      {"root ::= \"\xed\xa0\x80\"", "not valid UTF-8"},  // a surrogate
      {"root ::= \"\xe6\x97\"", "not valid UTF-8"},      // truncated
  };
  for (const auto& c : cases) {
    const absl::StatusOr<GbnfRules> rules = ParseGbnf(c.text);
    ASSERT_FALSE(rules.ok()) << c.text;
    EXPECT_EQ(rules.status().code(), absl::StatusCode::kInvalidArgument) << c.text;
    const std::string message(rules.status().message());
    EXPECT_NE(message.find(c.message), std::string::npos)
        << message << " for " << c.text << ", expected " << c.message;
    EXPECT_TRUE(message.starts_with("grammar: ")) << message;
  }
}

TEST(GbnfSyntaxTest, Limits) {
  // Size.
  std::string text = "root ::= \"a\"\n";
  text.resize(kMaxGbnfBytes, ' ');
  EXPECT_TRUE(ParseGbnf(text).ok());
  text.push_back(' ');
  EXPECT_EQ(ParseGbnf(text).status().code(), absl::StatusCode::kInvalidArgument);

  // Group depth: 64 nested groups are fine, 65 are not.
  const auto nested = [](int depth) {
    return absl::StrCat("root ::= ", std::string(static_cast<size_t>(depth), '('), "\"a\"",
                        std::string(static_cast<size_t>(depth), ')'));
  };
  EXPECT_TRUE(ParseGbnf(nested(64)).ok());
  const absl::StatusOr<GbnfRules> deep = ParseGbnf(nested(65));
  ASSERT_FALSE(deep.ok());
  EXPECT_NE(deep.status().message().find("groups nest deeper than 64"), std::string::npos)
      << deep.status();

  // Rules: root and 1023 others are fine, one more is not.
  const auto many = [](int num_rules) {
    std::string grammar = "root ::= \"a\"\n";
    for (int i = 1; i < num_rules; ++i) absl::StrAppend(&grammar, "r", i, " ::= \"b\"\n");
    return grammar;
  };
  const absl::StatusOr<GbnfRules> most = ParseGbnf(many(1024));
  ASSERT_TRUE(most.ok()) << most.status();
  EXPECT_EQ(most->names.size(), 1024U);
  EXPECT_EQ(most->names.back(), "r1023");
  const absl::StatusOr<GbnfRules> too_many = ParseGbnf(many(1025));
  ASSERT_FALSE(too_many.ok());
  EXPECT_NE(too_many.status().message().find("line 1025, column 1: more than 1024 rules"),
            std::string::npos)
      << too_many.status();
}

}  // namespace
}  // namespace ringserve::grammar
