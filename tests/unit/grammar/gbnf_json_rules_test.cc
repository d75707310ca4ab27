// JSON values inside a context-free grammar (Grammar::FromGbnf's json_rules): the text around
// a value is the grammar's, the value is its schema's, and the two hand over at its edges.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "tests/unit/grammar/matcher_checks.h"
#include "worker/grammar/matcher.h"

namespace ringserve::grammar {
namespace {

using GrammarPtr = std::shared_ptr<const Grammar>;

GrammarPtr Schema(std::string_view schema) {
  auto grammar = Grammar::FromSchema(schema);
  EXPECT_TRUE(grammar.ok()) << grammar.status();
  return grammar.ok() ? *grammar : Grammar::AnyObject();
}

GrammarPtr WithJson(std::string_view text, std::vector<Grammar::JsonRule> rules) {
  auto grammar = Grammar::FromGbnf(text, rules);
  if (!grammar.ok()) {
    ADD_FAILURE() << grammar.status() << " for " << text;
    return *Grammar::FromRegex("x");
  }
  return *grammar;
}

constexpr std::string_view kCallSchema =
    R"({"type": "object", "properties": {"name": {"const": "f"}, "arguments": {"type": "object",
        "properties": {"n": {"type": "integer"}}, "required": ["n"]}},
        "required": ["name", "arguments"]})";

TEST(GbnfJsonRulesTest, TagsAroundAValueOfItsSchema) {
  const GrammarPtr grammar = WithJson(
      "root ::= call (\"\\n\" call)*\ncall ::= \"<tool_call>\\n\" body \"\\n</tool_call>\"\n",
      {{"body", Schema(kCallSchema)}});
  const std::string one =
      "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"n\": 12}}\n</tool_call>";
  EXPECT_TRUE(Accepts(grammar, one));
  EXPECT_TRUE(Accepts(grammar, one + "\n" + one));
  EXPECT_TRUE(
      Accepts(grammar, "<tool_call>\n{\"arguments\":{\"n\":-3},\"name\":\"f\"}\n</tool_call>"));
  // The schema holds inside the tags: the name is the const, n is required and an integer.
  EXPECT_FALSE(Prefix(grammar, "<tool_call>\n{\"name\": \"g"));
  EXPECT_FALSE(Accepts(grammar, "<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n</tool_call>"));
  EXPECT_FALSE(Prefix(grammar, "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"n\": 1.5"));
  // The value starts at once and the grammar's text resumes right after it.
  EXPECT_FALSE(Prefix(grammar, "<tool_call>\n {"));
  EXPECT_FALSE(Prefix(grammar, "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"n\": 1}} "));
  EXPECT_FALSE(Accepts(grammar, one + "\n"));

  Matcher matcher(grammar);
  ASSERT_TRUE(matcher.Advance("<tool_call>\n{\"name\": \"f\", \"arguments\": {\"n\": 1}}"));
  EXPECT_EQ(TakenBytes(matcher), std::vector<uint8_t>{'\n'});
  ASSERT_TRUE(matcher.Advance("\n</tool_call>"));
  EXPECT_TRUE(matcher.IsComplete());
  EXPECT_FALSE(matcher.IsFinished());  // another call may follow
}

TEST(GbnfJsonRulesTest, ValuesThatEndOnTheNextByte) {
  // A number ends where a byte that is not its own arrives, which the grammar then takes.
  const GrammarPtr grammar =
      WithJson("root ::= n (\",\" n)*\n", {{"n", Schema(R"({"type": "integer", "minimum": 0})")}});
  EXPECT_TRUE(Accepts(grammar, "1,22,333"));
  EXPECT_TRUE(Accepts(grammar, "0"));
  EXPECT_FALSE(Prefix(grammar, "01"));
  EXPECT_FALSE(Prefix(grammar, "-1"));
  EXPECT_FALSE(Prefix(grammar, "1,,"));
  Matcher matcher(grammar);
  ASSERT_TRUE(matcher.Advance("12"));
  EXPECT_TRUE(matcher.IsComplete());
  EXPECT_FALSE(matcher.IsFinished());

  // The whole text a tail call to a value: it ends as the value does.
  const GrammarPtr tail = WithJson("root ::= \"=\" v\n", {{"v", Schema(R"({"enum": [1, 10]})")}});
  Matcher one(tail);
  ASSERT_TRUE(one.Advance("=1"));
  EXPECT_TRUE(one.IsComplete());
  ASSERT_TRUE(one.Advance("0"));
  EXPECT_TRUE(one.IsFinished());
  EXPECT_FALSE(Prefix(tail, "=100"));
}

TEST(GbnfJsonRulesTest, RecursiveRulesAndSeveralSchemas) {
  const GrammarPtr grammar = WithJson(
      "root ::= \"(\" (root | a | b) \")\"\n",
      {{"a", Schema(R"({"type": "string", "maxLength": 2})")}, {"b", Grammar::AnyObject()}});
  EXPECT_TRUE(Accepts(grammar, "((\"xy\"))"));
  EXPECT_TRUE(Accepts(grammar, "({\"k\": [1, {\"z\": null}]})"));
  EXPECT_FALSE(Prefix(grammar, "(\"xyz"));
  EXPECT_FALSE(Prefix(grammar, "(1"));
  // A JSON rule the text never uses is allowed, as is a value's "$ref" to its own root.
  const GrammarPtr tree =
      WithJson("root ::= \"t=\" t\n",
               {{"unused", Grammar::AnyObject()},
                {"t", Schema(R"({"type": "array", "items": {"$ref": "#"}, "maxItems": 2})")}});
  EXPECT_TRUE(Accepts(tree, "t=[[], [[]]]"));
  EXPECT_FALSE(Prefix(tree, "t=[[], [], "));
}

TEST(GbnfJsonRulesTest, TheTextMayNotDefineAJsonRule) {
  const std::vector<Grammar::JsonRule> rules = {{"v", Grammar::AnyObject()}};
  auto grammar = Grammar::FromGbnf("root ::= v\nv ::= \"x\"\n", rules);
  ASSERT_FALSE(grammar.ok());
  EXPECT_EQ(grammar.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(grammar.status().message().find("rule 'v' is predefined"), std::string_view::npos)
      << grammar.status();
}

}  // namespace
}  // namespace ringserve::grammar
