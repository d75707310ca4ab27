#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "tests/unit/grammar/matcher_checks.h"
#include "worker/grammar/matcher.h"

namespace ringserve::grammar {
namespace {

using json = nlohmann::json;
using GrammarPtr = std::shared_ptr<const Grammar>;

GrammarPtr Schema(std::string_view schema) {
  auto grammar = Grammar::FromSchema(schema);
  if (!grammar.ok()) {
    ADD_FAILURE() << grammar.status() << " for " << schema;
    return Grammar::AnyObject();
  }
  return *grammar;
}

// The index of the first byte the matcher refuses; -1 when it takes them all.
int FirstRefused(const GrammarPtr& grammar, std::string_view text) {
  Matcher matcher(grammar);
  for (size_t i = 0; i < text.size(); ++i) {
    if (!matcher.Advance(static_cast<uint8_t>(text[i]))) return static_cast<int>(i);
  }
  return -1;
}

enum Expect { kAccept, kPrefix, kReject };

struct Case {
  std::string text;
  Expect expect;
  int refused_at = -1;  // kReject: where, when the test pins it
};

void ExpectCases(const GrammarPtr& grammar, const std::vector<Case>& cases) {
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    switch (c.expect) {
      case kAccept:
        EXPECT_TRUE(Accepts(grammar, c.text));
        break;
      case kPrefix:
        EXPECT_TRUE(Prefix(grammar, c.text));
        EXPECT_FALSE(Accepts(grammar, c.text));
        break;
      case kReject:
        EXPECT_FALSE(Prefix(grammar, c.text));
        if (c.refused_at >= 0) {
          EXPECT_EQ(FirstRefused(grammar, c.text), c.refused_at);
        }
        break;
    }
  }
}

// --- Any object -----------------------------------------------------------------------------

TEST(AnyObjectTest, AcceptsValidObjects) {
  const std::vector<std::string> texts = {
      "{}",
      "{ }",
      R"({"a":1})",
      R"({"a":[1,2,{"b":null}],"c":{"d":true,"e":false}})",
      R"({"s":"esc \" \\ \/ \b \f \n \r \t \u00e9 \uD83D\uDE00 \u0000"})",
      "{\"u\":\"\xC3\xA9 \xE6\x97\xA5 \xF0\x9F\x98\x80 \xED\x9F\xBF \xF4\x8F\xBF\xBF\"}",
      R"({"n":[0,-0,1.5,-0.5e+10,1E5,2e-3,10.25E+0,123456789012345678901234567890]})",
      R"({"e":{},"f":[],"g":[[]],"h":[{}],"i":[[],{}]})",
      "\n\t {\n \"a\" : [ 1 , 2 ] , \"b\" : { }\n}",
      "{\n  \"a\": [\n    1,\n    2\n  ],\n\t\"b\": {}\n}",
      R"({"":""})",
      R"({"a":1,"a":2})",
      absl::StrCat("\n", std::string(kMaxIndent, ' '), "{}"),
      absl::StrCat("{\"a\":\n", std::string(kMaxIndent, '\t'), "1}"),
  };
  const GrammarPtr grammar = Grammar::AnyObject();
  for (const std::string& text : texts) {
    SCOPED_TRACE(text);
    ASSERT_TRUE(json::accept(text));  // the table itself is valid JSON
    Matcher matcher(grammar);
    EXPECT_TRUE(matcher.Advance(text));
    EXPECT_TRUE(matcher.IsComplete());
    EXPECT_TRUE(matcher.IsFinished());
  }
}

TEST(AnyObjectTest, RefusesInvalidTextAtTheRightByte) {
  const std::vector<Case> cases = {
      {R"({"a":1,})", kReject, 7},
      {R"({'a':1})", kReject, 1},
      {R"({"a":01})", kReject, 6},
      {R"({"a":-01})", kReject, 7},
      {"[1]", kReject, 0},
      {R"("str")", kReject, 0},
      {"1", kReject, 0},
      {"{\"a\":\"x\ny\"}", kReject, 7},
      {"{\"a\":\"\xC0\xAF\"}", kReject, 6},
      {"{\"a\":\"\xC1\xBF\"}", kReject, 6},
      {"{\"a\":\"\xED\xA0\x80\"}", kReject, 7},
      {"{\"a\":\"\xE0\x80\x80\"}", kReject, 7},
      {"{\"a\":\"\xF0\x80\x80\x80\"}", kReject, 7},
      {"{\"a\":\"\xF4\x90\x80\x80\"}", kReject, 7},
      {"{\"a\":\"\xF5\x80\x80\x80\"}", kReject, 6},
      {"{\"a\":\"\xFF\"}", kReject, 6},
      {"{\"a\":\"\x80\"}", kReject, 6},
      {"{\"a\":\"\xC3\"}", kReject, 7},
      {"{\"a\":\"\xE6\x97\"}", kReject, 8},
      {"{\"\x01\":1}", kReject, 2},
      {R"({"a":"\x"})", kReject, 7},
      {R"({"a":"\u12G4"})", kReject, 10},
      {R"({"a":"\u12"})", kReject, 10},
      {R"({"a":"\uDC00"})", kReject, 9},
      {R"({"a":"\uD800"})", kReject, 12},
      {R"({"a":"\uD800\u0041"})", kReject, 14},
      {R"({"a":"\uD800\uDBFF"})", kReject, 15},
      {"{} ", kReject, 2},
      {"{}{}", kReject, 2},
      {"{}\n", kReject, 2},
      {R"({"a":1 2})", kReject, 7},
      {R"({"a" 1})", kReject, 5},
      {R"({"a":tru})", kReject, 8},
      {R"({"a":True})", kReject, 5},
      {R"({"a":nul})", kReject, 8},
      {R"({"a":1.})", kReject, 7},
      {R"({"a":1.e5})", kReject, 7},
      {R"({"a":1e})", kReject, 7},
      {R"({"a":1e+})", kReject, 8},
      {R"({"a":-})", kReject, 6},
      {R"({"a":+1})", kReject, 5},
      {R"({"a":.5})", kReject, 5},
      {R"({"a":NaN})", kReject, 5},
      {R"({"a":Infinity})", kReject, 5},
      {"{,}", kReject, 1},
      {R"({"a"})", kReject, 4},
      {R"({"a":1}})", kReject, 7},
      {R"({"a":[1,]})", kReject, 8},
      {R"({"a":[,1]})", kReject, 6},
      {R"({"a":[1 2]})", kReject, 8},
      {R"({"a":{"b":1]})", kReject, 11},
      {R"({a:1})", kReject, 1},
      {R"({"a":1)", kPrefix},
      {R"({"a":[1,{"b":"c)", kPrefix},
      {"{", kPrefix},
      {" ", kPrefix},
      {"", kPrefix},
  };
  const GrammarPtr grammar = Grammar::AnyObject();
  ExpectCases(grammar, cases);
  for (const Case& c : cases) {
    if (c.expect == kReject) {
      EXPECT_FALSE(json::accept(c.text) && c.text.front() == '{' && c.text.back() == '}')
          << "the table rejects valid JSON: " << c.text;
    }
  }
}

// Valid JSON that the layout rule refuses: one space, or a newline and indentation, between
// tokens, so a model cannot pad its reply with whitespace.
TEST(AnyObjectTest, WhitespaceIsOneSpaceOrANewlineAndIndentation) {
  const std::vector<Case> cases = {
      {"\n" + std::string(kMaxIndent + 1, ' ') + "{}", kReject, 1 + kMaxIndent},
      {"{\"a\":\n" + std::string(kMaxIndent + 1, '\t') + "1}", kReject, 6 + kMaxIndent},
      {"  {}", kReject, 1},
      {" \n{}", kReject, 1},
      {"\t{}", kReject, 0},
      {"\r\n{}", kReject, 0},
      {"{\"a\"  :1}", kReject, 5},
      {"{\"a\":\n\n1}", kReject, 6},
      {"{\"a\":1,\n \n\"b\":2}", kReject, 9},
      {"{\"a\": [1, \n 2]}", kReject, 10},
  };
  ExpectCases(Grammar::AnyObject(), cases);
  for (const Case& c : cases) EXPECT_TRUE(json::accept(c.text)) << c.text;
}

TEST(AnyObjectTest, FailedAdvanceLeavesTheStateUnchanged) {
  Matcher matcher(Grammar::AnyObject());
  ASSERT_TRUE(matcher.Advance(R"({"a":)"));
  const Matcher before = matcher;
  EXPECT_FALSE(matcher.Advance('}'));
  EXPECT_FALSE(matcher.Advance(static_cast<uint8_t>(0xC0)));
  EXPECT_TRUE(matcher == before);
  // A multi-byte Advance takes all bytes or none.
  EXPECT_FALSE(matcher.Advance("12,}"));
  EXPECT_TRUE(matcher == before);
  EXPECT_TRUE(matcher.Advance("12"));
  EXPECT_FALSE(matcher == before);
  EXPECT_FALSE(matcher.IsComplete());
  EXPECT_TRUE(matcher.Advance('}'));
  EXPECT_TRUE(matcher.IsComplete());
  EXPECT_TRUE(matcher.IsFinished());
  for (int byte = 0; byte < 256; ++byte) {
    Matcher copy = matcher;
    EXPECT_FALSE(copy.Advance(static_cast<uint8_t>(byte))) << byte;
  }
}

TEST(AnyObjectTest, CompleteAndFinished) {
  Matcher matcher(Grammar::AnyObject());
  EXPECT_FALSE(matcher.IsComplete());
  EXPECT_FALSE(matcher.IsFinished());
  ASSERT_TRUE(matcher.Advance(R"({"a":[1,2],"b":"x"})"));
  EXPECT_TRUE(matcher.IsComplete());
  EXPECT_TRUE(matcher.IsFinished());
}

TEST(AnyObjectTest, NestsAtMost64Levels) {
  const GrammarPtr grammar = Grammar::AnyObject();
  const std::string deepest = R"({"a":)" + std::string(63, '[') + std::string(63, ']') + "}";
  EXPECT_TRUE(Accepts(grammar, deepest));
  const std::string too_deep = R"({"a":)" + std::string(64, '[');
  EXPECT_EQ(FirstRefused(grammar, too_deep), 5 + 63);
  // At the limit a scalar still fits, so the text can always be completed.
  EXPECT_TRUE(
      Accepts(grammar, R"({"a":)" + std::string(63, '[') + "1" + std::string(63, ']') + "}"));
}

TEST(AnyObjectTest, CopiesAndEquality) {
  const GrammarPtr grammar = Grammar::AnyObject();
  Matcher a(grammar);
  Matcher b(grammar);
  EXPECT_TRUE(a == b);
  ASSERT_TRUE(a.Advance(R"({"k":[true,)"));
  EXPECT_FALSE(a == b);
  b = a;
  EXPECT_TRUE(a == b);
  ASSERT_TRUE(b.Advance("null]}"));
  EXPECT_TRUE(b.IsFinished());
  EXPECT_FALSE(a.IsComplete());  // the copy is independent
  Matcher moved(std::move(b));
  EXPECT_TRUE(moved.IsFinished());
  b = std::move(a);
  EXPECT_TRUE(b.Advance("false]}"));
  // Another grammar object: never equal, even in the same state.
  const GrammarPtr other = Schema("{}");
  EXPECT_FALSE(Matcher(grammar) == Matcher(other));
  // Same bytes reached two ways (whitespace budget aside) compare equal.
  Matcher c(grammar);
  Matcher d(grammar);
  ASSERT_TRUE(c.Advance(R"({"a":1)"));
  ASSERT_TRUE(d.Advance(R"({"a":2)"));
  EXPECT_TRUE(c == d);
}

// --- Schemas: objects -----------------------------------------------------------------------

constexpr std::string_view kPerson = R"({
  "type": "object",
  "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
  "required": ["name", "age"]
})";

TEST(SchemaObjectTest, RequiredPropertiesAndNoExtras) {
  ExpectCases(Schema(kPerson), {
                                   {R"({"name":"Al","age":3})", kAccept},
                                   {R"({"age":3,"name":"Al"})", kAccept},
                                   {R"( { "name" : "x" , "age" : -0 })", kAccept},
                                   {R"({"name":"Al"})", kReject, 12},
                                   {"{}", kReject, 1},
                                   {R"({"name":"Al","name":"B")", kReject, 14},
                                   {R"({"nam":1})", kReject, 5},
                                   {R"({"names":1})", kReject, 6},
                                   {R"({"extra":1})", kReject, 2},
                                   {R"({"age":1.5})", kReject, 8},
                                   {R"({"age":"1"})", kReject, 7},
                                   {R"({"age":1,"name":"x",)", kReject, 19},
                                   {R"({"name":"Al",)", kPrefix},
                                   {R"({"a)", kPrefix},
                               });
}

TEST(SchemaObjectTest, OptionalPropertiesWithoutExtras) {
  const GrammarPtr grammar = Schema(R"({"properties": {"a": {"type": "boolean"},
                                                    "ab": {"type": "null"}}})");
  ExpectCases(grammar, {
                           {"{}", kAccept},
                           {R"({"a":true})", kAccept},
                           {R"({"ab":null})", kAccept},
                           {R"({"ab":null,"a":false})", kAccept},
                           {R"({"a":true,"ab":null,)", kReject, 19},
                           {R"({"a":true,"a":)", kReject, 12},
                           {R"({"abc":1})", kReject, 4},
                           {R"({"b":1})", kReject, 2},
                       });
}

TEST(SchemaObjectTest, AdditionalPropertiesTrue) {
  const GrammarPtr grammar = Schema(R"({"properties": {"a": {"type": "integer"}},
                                     "additionalProperties": true, "required": ["a"]})");
  ExpectCases(grammar, {
                           {R"({"b":"x","a":1})", kAccept},
                           {R"({"ab":"x","a":1,"c":[{}]})", kAccept},
                           {R"({"":null,"a":1})", kAccept},
                           {R"({"a":"x"})", kReject, 5},
                           {R"({"a":1,"a":2})", kReject, 9},
                           {R"({"b":1})", kReject, 6},
                           {R"({"a":1,"b":2,"c":3,)", kPrefix},
                       });
}

TEST(SchemaObjectTest, AdditionalPropertiesSchema) {
  const GrammarPtr grammar =
      Schema(R"({"type": "object", "additionalProperties": {"type": "number"}})");
  ExpectCases(grammar, {
                           {"{}", kAccept},
                           {R"({"x":1,"y":2.5e3})", kAccept},
                           {R"({"x":"s"})", kReject, 5},
                           {R"({"x":1,"x":2})", kAccept},
                       });
}

TEST(SchemaObjectTest, RequiredNameOutsidePropertiesUsesAdditionalSchema) {
  const GrammarPtr grammar =
      Schema(R"({"required": ["id"], "additionalProperties": {"type": "integer"}})");
  ExpectCases(grammar, {
                           {R"({"id":1})", kAccept},
                           {R"({"x":2,"id":1})", kAccept},
                           {R"({"x":2})", kReject, 6},
                           {R"({"id":"a"})", kReject, 6},
                       });
}

TEST(SchemaObjectTest, KeysAreSpelledAsCompactJson) {
  const GrammarPtr grammar = Schema(
      "{\"properties\": {\"q\\\"uote\": {\"type\": \"null\"}, \"\xC3\xBC\": {\"type\": "
      "\"null\"}}}");
  ExpectCases(grammar, {
                           {R"({"q\"uote":null})", kAccept},
                           {"{\"\xC3\xBC\":null}", kAccept},
                           {R"({"\u00fc":null})", kReject, 2},
                       });
}

// --- Schemas: values ------------------------------------------------------------------------

TEST(SchemaValueTest, EnumAndConst) {
  const GrammarPtr grammar =
      Schema(R"({"enum": ["red", "green", 1, 10, null, {"k": [1, 2]}, 2.5, true]})");
  ExpectCases(grammar, {
                           {R"("red")", kAccept},
                           {R"("green")", kAccept},
                           {"1", kAccept},
                           {"10", kAccept},
                           {"2.5", kAccept},
                           {"null", kAccept},
                           {"true", kAccept},
                           {R"({"k":[1,2]})", kAccept},
                           {R"("blue")", kReject, 1},
                           {R"("re")", kReject, 3},
                           {R"({"k": [1,2]})", kReject, 5},
                           {"100", kReject, 2},
                           {"2", kPrefix},
                           {"false", kReject, 0},
                       });
  Matcher one(grammar);
  ASSERT_TRUE(one.Advance("1"));
  EXPECT_TRUE(one.IsComplete());
  EXPECT_FALSE(one.IsFinished());  // "10" may still follow
  ASSERT_TRUE(one.Advance("0"));
  EXPECT_TRUE(one.IsFinished());

  ExpectCases(Schema(R"({"const": "x"})"), {{R"("x")", kAccept}, {R"("y")", kReject, 1}});
  ExpectCases(Schema(R"({"type": "string", "enum": ["a", 1]})"),
              {{R"("a")", kAccept}, {"1", kReject, 0}});
  ExpectCases(Schema(R"({"properties": {"c": {"enum": ["x", "y"]}}, "required": ["c"]})"),
              {{R"({"c":"y"})", kAccept}, {R"({"c":"z"})", kReject, 6}, {"{}", kReject, 1}});
}

TEST(SchemaValueTest, AnyOfTypeArraysAndAnyValue) {
  ExpectCases(Schema(R"({"anyOf": [{"type": "string"}, {"type": "null"}]})"),
              {{R"("x")", kAccept}, {"null", kAccept}, {"1", kReject, 0}, {"nul", kPrefix}});
  ExpectCases(Schema(R"({"oneOf": [{"type": "object", "properties": {"a": {"type": "integer"}},
                                    "required": ["a"]},
                                   {"type": "object", "properties": {"b": {"type": "string"}},
                                    "required": ["b"]}]})"),
              {{R"({"a":1})", kAccept},
               {R"({"b":"x"})", kAccept},
               {R"({"a":1,"b":"x"})", kReject, 6},
               {"{}", kReject, 1}});
  ExpectCases(Schema(R"({"type": ["integer", "string"]})"),
              {{"12", kAccept}, {R"("a")", kAccept}, {"1.5", kReject, 1}, {"null", kReject, 0}});
  ExpectCases(Schema(R"({"type": ["number", "integer"]})"), {{"1.5", kAccept}, {"7", kAccept}});
  ExpectCases(Schema(R"({"type": ["boolean", "null"]})"),
              {{"true", kAccept}, {"false", kAccept}, {"null", kAccept}, {"0", kReject, 0}});
  for (const char* any : {"true", "{}", R"({"title": "anything"})"}) {
    SCOPED_TRACE(any);
    ExpectCases(Schema(any), {{"1", kAccept},
                              {R"("x")", kAccept},
                              {"[1,{}]", kAccept},
                              {R"({"a":null})", kAccept},
                              {" false", kAccept},
                              {"nan", kReject, 1}});
  }
}

// minimum/maximum on integers, exclusive forms included: a digit is taken only while some
// integer in the range starts with the digits so far, and the number ends only in range.
// Beside enum/const only "type" (a filter) and annotations may stand.
TEST(SchemaValueTest, ConstWithTypeAndTitle) {
  ExpectCases(Schema(R"({"const": "x", "type": "string", "title": "Kind"})"),
              {{R"("x")", kAccept}, {R"("y")", kReject, 1}});
  ExpectCases(Schema(R"({"enum": ["a", 1, null], "type": ["string", "null"]})"),
              {{R"("a")", kAccept}, {"null", kAccept}, {"1", kReject, 0}});
}

// uuid, date, time and date-time as RFC 4122 and RFC 3339 write them, the calendar included.
TEST(SchemaValueTest, StringFormats) {
  ExpectCases(Schema(R"({"type": "string", "format": "uuid"})"),
              {{R"("123e4567-e89b-12d3-A456-426614174000")", kAccept},
               {R"("123e4567e89b)", kReject, 9},
               {R"("123e4567-e89b-12d3-a456-42661417400")", kReject, 36},
               {R"("123e4567-e89b-12d3-a456-4266141740001")", kReject, 37},
               {R"("123g)", kReject, 4}});
  ExpectCases(Schema(R"({"format": "date"})"),
              {{R"("2024-02-29")", kAccept},
               {R"("2000-02-29")", kAccept},
               {R"("2024-12-31")", kAccept},
               {R"("2023-02-29")", kReject, 10},  // not a leap year
               {R"("1900-02-29")", kReject, 10},
               {R"("2024-02-30")", kReject, 9},
               {R"("2024-04-31")", kReject, 10},
               {R"("2024-13-01")", kReject, 7},
               {R"("2024-00-01")", kReject, 7},
               {R"("2024-01-00")", kReject, 10},
               {R"("2024-1-01")", kReject, 7},
               {R"("2024-01-01T")", kReject, 11},
               {R"("2024-01-0)", kPrefix}});
  ExpectCases(Schema(R"({"type": "string", "format": "time"})"),
              {{R"("23:59:59Z")", kAccept},
               {R"("00:00:00.123+05:30")", kAccept},
               {R"("12:30:00-23:00")", kAccept},
               {R"("12:30:00")", kReject, 9},  // RFC 3339 wants an offset
               {R"("24:00:00Z")", kReject, 2},
               {R"("12:60:00Z")", kReject, 4},
               {R"("12:30:00.Z")", kReject, 10},
               {R"("12:30:00+24:00")", kReject, 11},
               {R"("12:30:00Zx")", kReject, 10}});
  ExpectCases(Schema(R"({"type": "string", "format": "date-time"})"),
              {{R"("2024-06-01T08:15:30.5Z")", kAccept},
               {R"("2024-06-01T08:15:30+01:00")", kAccept},
               {R"("2024-06-01 08:15:30Z")", kReject, 11},
               {R"("2024-06-31T08:15:30Z")", kReject, 10}});
  // An escape would spell the same text, but formatted strings are ASCII without escapes.
  ExpectCases(Schema(R"({"format": "date"})"), {{"\"\\u0032", kReject, 1}});
  // "format" on a type not in play is ignored, as JSON Schema does.
  ExpectCases(Schema(R"({"type": "integer", "format": "int32"})"), {{"12", kAccept}});
}

TEST(SchemaValueTest, RegularFormats) {
  ExpectCases(Schema(R"({"format": "ipv4"})"), {{R"("192.168.0.1")", kAccept},
                                                {R"("255.255.255.255")", kAccept},
                                                {R"("0.0.0.0")", kAccept},
                                                {R"("256.1.1.1")", kReject, 3},
                                                {R"("01.1.1.1")", kReject, 2},
                                                {R"("1.2.3")", kReject, 6},
                                                {R"("1.2.3.4.5")", kReject, 8}});
  ExpectCases(Schema(R"({"format": "ipv6"})"), {{R"("2001:db8:0:0:0:0:2:1")", kAccept},
                                                {R"("2001:db8::2:1")", kAccept},
                                                {R"("::1")", kAccept},
                                                {R"("::")", kAccept},
                                                {R"("fe80::")", kAccept},
                                                {R"("1:2:3:4:5:6:7::")", kAccept},
                                                {R"("1::2::3")", kReject, 6},
                                                {R"("12345::")", kReject, 5},
                                                {R"("1:2:3:4:5:6:7:8:9")", kReject, 16}});
  ExpectCases(Schema(R"({"format": "hostname"})"),
              {{R"("example.com")", kAccept},
               {R"("a-b.c")", kAccept},
               {R"("-ab.c")", kReject, 1},
               {R"("ab-.c")", kReject, 4},
               {R"("a..b")", kReject, 3},
               {"\"" + std::string(63, 'a') + "\"", kReject, 63},
               {R"("a.b.c.d.e")", kReject, 8}});
  ExpectCases(Schema(R"({"format": "email"})"), {{R"("ada.lovelace@example.com")", kAccept},
                                                 {R"("o'neil+x@mail.example.org")", kAccept},
                                                 {R"(".ada@example.com")", kReject, 1},
                                                 {R"("ada@@example.com")", kReject, 5},
                                                 {R"("ada lovelace@example.com")", kReject, 4},
                                                 {R"("ada@")", kReject, 5}});
  ExpectCases(Schema(R"({"format": "duration"})"),
              {{R"("P1Y2M3DT4H5M6S")", kAccept},
               {R"("P3W")", kAccept},
               {R"("PT0S")", kAccept},
               {R"("P1M")", kAccept},
               {R"("PT1H1S")", kReject, 6},  // RFC 3339: seconds follow minutes
               {R"("P")", kReject, 2},
               {R"("PT")", kReject, 3},
               {R"("P1W2D")", kReject, 4}});
}

TEST(SchemaValueTest, StringPatterns) {
  ExpectCases(Schema(R"({"type": "string", "pattern": "^[A-Z]{2}-\\d{3}$"})"),
              {{R"("AB-123")", kAccept},
               {R"("AB-12")", kReject, 6},
               {R"("AB-1234")", kReject, 7},
               {R"("ab-123")", kReject, 1},
               {R"("AB-1)", kPrefix}});
  // Written without escapes: an escape is refused even where it would spell a match, and
  // a quote or backslash the pattern allows is left out.
  ExpectCases(Schema(R"({"pattern": "[a-z\"\\\\]+"})"),
              {{R"("ab")", kAccept}, {R"("\u0061")", kReject, 1}, {R"("a\")", kReject, 2}});
  // Non-ASCII text, and "pattern" implying the string type.
  ExpectCases(Schema(R"({"pattern": "(café|日本)+"})"),
              {{R"("café日本")", kAccept}, {R"("cafe")", kReject, 4}, {"1", kReject, 0}});
  // Patterns in alternatives and in properties.
  ExpectCases(
      Schema(R"({"anyOf": [{"pattern": "a+"}, {"pattern": "b+"}, {"type": "integer"}]})"),
      {{R"("aaa")", kAccept}, {R"("bb")", kAccept}, {R"("ab")", kReject, 2}, {"12", kAccept}});
  ExpectCases(Schema(R"({"properties": {"zip": {"pattern": "\\d{5}"}}, "required": ["zip"]})"),
              {{R"({"zip": "12345"})", kAccept}, {R"({"zip": "1234"})", kReject, 13}});
  // "pattern" on a type not in play is ignored.
  ExpectCases(Schema(R"({"type": "integer", "pattern": "a"})"), {{"12", kAccept}});
  // A string the pattern cannot extend must close now: the only byte left is the quote.
  Matcher matcher(Schema(R"({"pattern": "ab?"})"));
  ASSERT_TRUE(matcher.Advance(std::string_view(R"("ab)")));
  EXPECT_FALSE(Matcher(matcher).Advance(static_cast<uint8_t>('b')));
  EXPECT_TRUE(matcher.Advance(static_cast<uint8_t>('"')));
  EXPECT_TRUE(matcher.IsFinished());
}

TEST(RegexTextTest, TheWholeReplyMatchesWithNothingAround) {
  const auto grammar = Grammar::FromRegex("(yes|no)(, because [a-z ]{1,20}\\.)?");
  ASSERT_TRUE(grammar.ok()) << grammar.status();
  ExpectCases(*grammar, {{"yes", kAccept},
                         {"no, because it rains.", kAccept},
                         {"no, because", kPrefix},
                         {" yes", kReject, 0},
                         {"yes.", kReject, 3},
                         {"\"yes\"", kReject, 0}});
  Matcher matcher(*grammar);
  ASSERT_TRUE(matcher.Advance(std::string_view("yes")));
  EXPECT_TRUE(matcher.IsComplete());
  EXPECT_FALSE(matcher.IsFinished());  // ", because ..." may follow
  ASSERT_TRUE(matcher.Advance(std::string_view(", because so.")));
  EXPECT_TRUE(matcher.IsFinished());
  // Newlines and any UTF-8 when the pattern says so.
  const auto lines = Grammar::FromRegex("(- [^\\n]+\\n){2}");
  ASSERT_TRUE(lines.ok()) << lines.status();
  ExpectCases(*lines, {{"- 日本\n- b\n", kAccept}, {"- a\n", kPrefix}, {"- \n", kReject, 2}});
  EXPECT_EQ(Grammar::FromRegex("a(?=b)").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(RegexTextTest, MaskKeysOfEqualStatesAreEqual) {
  const auto grammar = Grammar::FromRegex("(ab)*c");
  ASSERT_TRUE(grammar.ok()) << grammar.status();
  Matcher a(*grammar);
  Matcher b(*grammar);
  ASSERT_TRUE(b.Advance(std::string_view("abab")));
  EXPECT_TRUE(a.MaskKey(8) == b.MaskKey(8));
  ASSERT_TRUE(b.Advance(static_cast<uint8_t>('a')));
  EXPECT_FALSE(a.MaskKey(8) == b.MaskKey(8));
}

TEST(SchemaValueTest, IntegerRanges) {
  const GrammarPtr percent = Schema(R"({"type": "integer", "minimum": 0, "maximum": 100})");
  ExpectCases(percent, {{"0", kAccept},
                        {"7", kAccept},
                        {"100", kAccept},
                        {"10", kAccept},
                        {"101", kReject, 2},
                        {"1000", kReject, 3},
                        {"200", kReject, 2},
                        {"-1", kReject, 0},
                        {"00", kReject, 1}});
  Matcher edge(percent);
  ASSERT_TRUE(edge.Advance("100"));
  EXPECT_TRUE(edge.IsFinished());  // no digit may follow
  Matcher ten(percent);
  ASSERT_TRUE(ten.Advance("10"));
  EXPECT_TRUE(ten.IsComplete());
  EXPECT_FALSE(ten.IsFinished());  // "100" is still ahead

  const GrammarPtr band =
      Schema(R"({"type": "integer", "exclusiveMinimum": -20.5, "exclusiveMaximum": -3})");
  ExpectCases(band, {{"-20", kAccept},
                     {"-4", kAccept},
                     {"-3", kReject, 1},  // only "-3x" could follow, and each is below -20.5
                     {"-21", kReject, 2},
                     {"-1", kPrefix},  // -10..-19 lie ahead
                     {"5", kReject, 0},
                     {"0", kReject, 0}});
  Matcher one(band);
  ASSERT_TRUE(one.Advance("-1"));
  EXPECT_FALSE(one.IsComplete());  // -1 is out of range; -10..-19 are not

  // Inside an object the number must be in range before the next byte closes it.
  const GrammarPtr object = Schema(
      R"({"type":"object","properties":{"n":{"type":"integer","minimum":10}},"required":["n"]})");
  ExpectCases(object, {{R"({"n":10})", kAccept},
                       {R"({"n":123456789012})", kAccept},
                       {R"({"n":9})", kReject, 6},
                       {R"({"n":9)", kPrefix}});
  // Bounds at the edges of int64 and beyond.
  const GrammarPtr huge = Schema(R"({"type":"integer","minimum":9223372036854775800})");
  ExpectCases(huge, {{"9223372036854775807", kAccept},
                     {"9223372036854775808", kReject, 18},
                     {"9223372036854775799", kReject, 16}});
  EXPECT_FALSE(Grammar::FromSchema(R"({"type":"integer","maximum":-1e300})").ok());
  EXPECT_FALSE(Grammar::FromSchema(R"({"type":"integer","minimum":1e19})").ok());
  const GrammarPtr floats = Schema(R"({"type":"integer","maximum":1e300,"minimum":-2.5})");
  ExpectCases(floats, {{"9223372036854775807", kAccept}, {"-2", kAccept}, {"-3", kReject, 1}});
}

TEST(SchemaValueTest, IntegerMultiples) {
  ExpectCases(Schema(R"({"type": "integer", "multipleOf": 5})"),
              {{"0", kAccept},
               {"15", kAccept},
               {"-20", kAccept},
               {"1000000000000000000", kAccept},
               {"12", kPrefix},  // 120 and 125 are multiples
               {"-0", kAccept}});
  Matcher twelve(Schema(R"({"type": "integer", "multipleOf": 5})"));
  ASSERT_TRUE(twelve.Advance(std::string_view("12")));
  EXPECT_FALSE(twelve.IsComplete());
  // With a range: only multiples inside it.
  ExpectCases(Schema(R"({"type": "integer", "multipleOf": 7, "minimum": 10, "maximum": 30})"),
              {{"14", kAccept},
               {"28", kAccept},
               {"7", kReject, 0},   // 7 itself is below 10, and 70.. beyond 30
               {"35", kReject, 0},  // 3 leads to 3 and 30..39: only 30 is in range
               {"20", kReject, 1},  // 2x: 21 and 28 are, 20 is not
               {"4", kReject, 0}});
  ExpectCases(Schema(R"({"type": "integer", "multipleOf": 4, "maximum": -1})"),
              {{"-4", kAccept}, {"-12", kAccept}, {"0", kReject, 0}, {"-1", kPrefix}});
  ExpectCases(Schema(R"({"type": "integer", "multipleOf": 3.0})"), {{"9", kAccept}});
  // In an object: the number ends where the next byte goes to the object.
  ExpectCases(Schema(R"({"properties": {"n": {"type": "integer", "multipleOf": 3}},
                          "required": ["n"]})"),
              {{R"({"n": 9})", kAccept}, {R"({"n": 10})", kReject, 8}});
}

TEST(SchemaValueTest, NumberRanges) {
  // Plain decimals with at most 6 digits after the point, and their values in range.
  ExpectCases(Schema(R"({"type": "number", "minimum": 0, "maximum": 5})"),
              {{"0", kAccept},
               {"5", kAccept},
               {"4.5", kAccept},
               {"0.000001", kAccept},
               {"5.000000", kAccept},
               {"5.1", kReject, 2},  // 5.x: only 5.0... is in range
               {"-1", kReject, 0},
               {"6", kReject, 0},
               {"1e3", kReject, 1},
               {"1.1234567", kReject, 8},
               {"3.", kPrefix}});
  ExpectCases(Schema(R"({"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1})"),
              {{"0.5", kAccept},
               {"0.999999", kAccept},
               {"0", kPrefix},
               {"0.000000", kReject, 7},
               {"1", kReject, 0}});
  // Decimal bounds as written (0.1 is 0.1, not the double just above it).
  ExpectCases(Schema(R"({"type": "number", "minimum": 0.1, "maximum": 0.3})"),
              {{"0.1", kAccept}, {"0.3", kAccept}, {"0.30", kAccept}, {"0.300001", kReject, 7}});
  ExpectCases(Schema(R"({"type": "number", "minimum": -2.5, "exclusiveMaximum": -1})"),
              {{"-2.5", kAccept}, {"-1.000001", kAccept}, {"-1", kPrefix}, {"-2.6", kReject, 3}});
  // multipleOf on numbers: money in cents.
  ExpectCases(Schema(R"({"type": "number", "multipleOf": 0.01, "minimum": 0})"),
              {{"19.99", kAccept}, {"0.5", kAccept}, {"19.999", kReject, 5}});
  ExpectCases(Schema(R"({"type": "number", "multipleOf": 0.25, "maximum": 1})"),
              {{"0.75", kAccept}, {"-0.5", kAccept}, {"0.3", kReject, 2}});
  // Large magnitudes: at most 9 integer digits.
  ExpectCases(Schema(R"({"type": "number", "minimum": 0})"),
              {{"123456789.5", kAccept}, {"1234567890", kReject, 9}});
  // A top-level number at the edge of everything it may be is finished.
  Matcher edge(Schema(R"({"type": "number", "minimum": 0, "maximum": 1})"));
  ASSERT_TRUE(edge.Advance(std::string_view("1.000000")));
  EXPECT_TRUE(edge.IsFinished());
}

TEST(SchemaValueTest, IntegerAndNumber) {
  const GrammarPtr integer = Schema(R"({"type": "integer"})");
  ExpectCases(integer, {{"-12", kAccept},
                        {"0", kAccept},
                        {"1.0", kReject, 1},
                        {"1e3", kReject, 1},
                        {"01", kReject, 1},
                        {"-", kPrefix}});
  Matcher zero(integer);
  ASSERT_TRUE(zero.Advance("0"));
  EXPECT_TRUE(zero.IsFinished());
  Matcher twelve(integer);
  ASSERT_TRUE(twelve.Advance("12"));
  EXPECT_TRUE(twelve.IsComplete());
  EXPECT_FALSE(twelve.IsFinished());

  const GrammarPtr number = Schema(R"({"type": "number"})");
  ExpectCases(number, {{"1.0", kAccept},
                       {"-0.5e+10", kAccept},
                       {"3E-7", kAccept},
                       {"0", kAccept},
                       {"1.", kPrefix},
                       {"1e+", kPrefix},
                       {"1 ", kReject, 1},
                       {"00", kReject, 1}});
  Matcher number_zero(number);
  ASSERT_TRUE(number_zero.Advance("0"));
  EXPECT_TRUE(number_zero.IsComplete());
  EXPECT_FALSE(number_zero.IsFinished());  // "0.5" may follow
}

TEST(SchemaValueTest, PrefixItemsAreTuples) {
  // Pydantic's tuple[int, str]: exactly those two, in order.
  ExpectCases(Schema(R"({"type": "array", "prefixItems": [{"type": "integer"},
                          {"type": "string"}], "minItems": 2, "maxItems": 2})"),
              {{R"([1, "a"])", kAccept},
               {R"(["a", 1])", kReject, 1},
               {R"([1])", kReject, 2},
               {R"([1, "a", 2])", kReject, 7}});
  // Variable tail after the prefix, and "items": false capping it.
  ExpectCases(Schema(R"({"prefixItems": [{"const": "id"}], "items": {"type": "integer"}})"),
              {{R"([])", kAccept},
               {R"(["id"])", kAccept},
               {R"(["id", 1, 2, 3])", kAccept},
               {R"([1])", kReject, 1},
               {R"(["id", "x"])", kReject, 7}});
  ExpectCases(
      Schema(R"({"prefixItems": [{"type": "boolean"}, {"type": "null"}],
                          "items": false})"),
      {{R"([true, null])", kAccept}, {R"([true])", kAccept}, {R"([true, null, 1])", kReject, 11}});
}

TEST(SchemaValueTest, ArrayBounds) {
  ExpectCases(Schema(R"({"type": "array", "items": {"type": "integer"},
                         "minItems": 2, "maxItems": 3})"),
              {{"[1,2]", kAccept},
               {"[ 1 , 2 , 3 ]", kAccept},
               {"[1]", kReject, 2},
               {"[]", kReject, 1},
               {"[1,2,3,4]", kReject, 6},
               {"[1,\"a\"]", kReject, 3}});
  ExpectCases(Schema(R"({"type": "array", "maxItems": 0})"),
              {{"[]", kAccept}, {"[ ]", kAccept}, {"[1]", kReject, 1}});
  ExpectCases(Schema(R"({"type": "array", "items": false})"),
              {{"[]", kAccept}, {"[1]", kReject, 1}});
  ExpectCases(Schema(R"({"type": "array"})"), {{R"([1,"a",{"b":[]},null])", kAccept}});
}

TEST(SchemaValueTest, StringLengthsCountCodePoints) {
  const GrammarPtr grammar = Schema(R"({"type": "string", "minLength": 2, "maxLength": 3})");
  ExpectCases(grammar,
              {
                  {R"("ab")", kAccept},
                  {"\"\xE6\x97\xA5\xE6\x9C\xAC\"", kAccept},
                  {R"("\u00e9\n")", kAccept},
                  {R"("\uD83D\uDE00\t")", kAccept},  // a pair is one code point
                  {"\"\xF0\x9F\x98\x80\xF0\x9F\x98\x80\xF0\x9F\x98\x80\"", kAccept},
                  {R"("a")", kReject, 2},
                  {"\"\xE6\x97\xA5\"", kReject, 4},
                  {R"("abcd")", kReject, 4},
                  {R"("ab\n\t")", kReject, 5},
                  {"\"\xF0\x9F\x98\x80\xF0\x9F\x98\x80\xF0\x9F\x98\x80\xF0\"", kReject, 13},
              });
}

// --- Schemas: references --------------------------------------------------------------------

TEST(SchemaRefTest, DefsAndDefinitions) {
  ExpectCases(Schema(R"({"$defs": {"Color": {"enum": ["red", "blue"]}},
                         "type": "object", "properties": {"c": {"$ref": "#/$defs/Color"},
                                                          "d": {"$ref": "#/$defs/Color"}},
                         "required": ["c"]})"),
              {{R"({"c":"red"})", kAccept},
               {R"({"d":"blue","c":"red"})", kAccept},
               {R"({"c":"green"})", kReject, 6}});
  ExpectCases(Schema(R"({"definitions": {"a/b": {"type": "integer"}, "t~": {"type": "null"}},
                         "properties": {"x": {"$ref": "#/definitions/a~1b"},
                                        "y": {"$ref": "#/definitions/t~0"}}})"),
              {{R"({"x":5,"y":null})", kAccept}, {R"({"x":"5"})", kReject, 5}});
}

TEST(SchemaRefTest, RecursiveTree) {
  const GrammarPtr grammar = Schema(R"({
    "$defs": {"Node": {"type": "object",
                       "properties": {"value": {"type": "integer"},
                                      "children": {"type": "array",
                                                   "items": {"$ref": "#/$defs/Node"}}},
                       "required": ["value"]}},
    "$ref": "#/$defs/Node"})");
  ExpectCases(grammar,
              {{R"({"value":1,"children":[{"value":2},{"value":3,"children":[]}]})", kAccept},
               {R"({"children":[{"value":2,"children":[{"value":4}]}],"value":1})", kAccept},
               {R"({"value":1,"children":[{"children":[]}]})", kReject, 37},
               {R"({"value":1,"children":[1]})", kReject, 23}});
  ExpectCases(Schema(R"({"type": "object",
                         "properties": {"next": {"anyOf": [{"$ref": "#"}, {"type": "null"}]}}})"),
              {{R"({"next":{"next":{"next":null}}})", kAccept},
               {"{}", kAccept},
               {R"({"next":1})", kReject, 8}});
}

TEST(SchemaRefTest, PydanticStyle) {
  const GrammarPtr grammar = Schema(R"({
    "$defs": {"Color": {"enum": ["red", "green"], "title": "Color", "type": "string"},
              "Pet": {"properties": {"name": {"title": "Name", "type": "string"}},
                      "required": ["name"], "title": "Pet", "type": "object"}},
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "description": "A user of the shop.",
    "properties": {
      "name": {"title": "Name", "type": "string", "description": "full name"},
      "age": {"title": "Age", "type": "integer", "default": 0, "examples": [1]},
      "nickname": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": null,
                   "title": "Nickname"},
      "color": {"$ref": "#/$defs/Color"},
      "pets": {"items": {"$ref": "#/$defs/Pet"}, "title": "Pets", "type": "array",
               "default": [], "deprecated": false},
      "best": {"allOf": [{"$ref": "#/$defs/Pet"}], "description": "the favourite"}
    },
    "required": ["name", "color"],
    "title": "User", "type": "object"})");
  ExpectCases(
      grammar,
      {{R"({"name":"Ann","color":"green"})", kAccept},
       {R"({"pets":[{"name":"Rex"}],"nickname":null,"color":"red","age":30,"name":"A"})", kAccept},
       {R"({"name":"Ann","color":"blue"})", kReject, 23},
       {R"({"name":"Ann","color":"red","pets":[{}]})", kReject, 37},
       {R"({"name":"Ann","color":"red","best":{"name":"Rex"}})", kAccept},
       {R"({"name":"Ann","color":"red","best":{}})", kReject, 36}});
}

// --- Schema errors --------------------------------------------------------------------------

TEST(SchemaErrorTest, RejectsWhatItCannotHonour) {
  std::string many_properties = R"({"properties": {)";
  for (int i = 0; i <= Grammar::kMaxProperties; ++i) {
    if (i > 0) many_properties += ',';
    many_properties += absl::StrCat("\"p", i, "\": {}");
  }
  many_properties += "}}";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"{", "not valid JSON"},
      {"", "not valid JSON"},
      {R"({"type":"object","properties":{"w":{"type":"number","multipleOf":0.0000001}}})",
       R"(schema /properties/w: a "multipleOf" with more than 6 decimals is not supported)"},
      {R"({"type":"number","exclusiveMinimum":0,"exclusiveMaximum":0.000001})",
       R"(schema (root): no number lies within "minimum" and "maximum")"},
      {R"({"type":"number","minimum":2,"maximum":1})", "no number lies within"},
      {R"({"type":"number","multipleOf":-0.5})", "\"multipleOf\" must be greater than 0"},
      {R"({"type":"integer","minimum":5,"exclusiveMaximum":5})",
       R"(schema (root): no integer lies within "minimum" and "maximum")"},
      {R"({"type":"integer","maximum":"9"})", R"(schema (root): "maximum" must be a number)"},
      {R"({"propertyNames":{}})", R"(schema (root): unsupported keyword "propertyNames")"},
      {R"({"pattern":"a","format":"date"})", R"("pattern" alongside "format" is not supported)"},
      {R"({"pattern":"a","maxLength":3})",
       R"("minLength"/"maxLength" alongside "pattern" is not supported)"},
      {R"({"pattern":3})", R"(schema (root): "pattern" must be a string)"},
      {R"x({"properties":{"x":{"pattern":"a(?=b)"}}})x",
       R"(schema /properties/x: "pattern": regex at byte 1: lookaround is not supported)"},
      {R"({"pattern":"a\"b"})",
       R"("pattern": regex: matches no text without quotes, backslashes or control characters)"},
      {R"({"pattern":"(a|b)*a(a|b){20}"})", R"("pattern": regex: too complex)"},
      {R"({"allOf":[{"type":"string"},{"maxLength":3}]})", "an intersection of several"},
      {R"({"allOf":[{}],"anyOf":[{}]})", R"(only one of "anyOf", "oneOf" and "allOf")"},
      {R"({"allOf":[{}],"type":"string"})", R"("allOf" alongside "type")"},
      {R"({"type":"string","format":"uri"})",
       R"(schema (root): "format": "uri" is not supported (uuid, date, time, date-time, )"
       R"(duration, email, hostname, ipv4 and ipv6 are))"},
      {R"({"format":"ipv4","minLength":7})",
       R"(schema (root): "minLength"/"maxLength" alongside "format" is not supported)"},
      {R"({"format":"uuid","maxLength":40})",
       R"(schema (root): "minLength"/"maxLength" alongside "format" is not supported)"},
      {R"({"type":"string","format":3})", R"(schema (root): "format" must be a string)"},
      {R"({"if":{}})", R"(unsupported keyword "if")"},
      {R"({"type":"strin"})", R"(unknown type "strin")"},
      {R"({"type":[]})", "empty array"},
      {R"({"type":3})", "\"type\" must be"},
      {R"({"items":{"type":"nope"}})", R"(schema /items: unknown type "nope")"},
      {R"({"properties":{"a":{}},"required":["b"]})", R"(required property "b")"},
      {R"({"properties":{"a":{}},"required":["b"],"additionalProperties":false})",
       R"(required property "b")"},
      {R"({"required":"a"})", "\"required\" must be an array of strings"},
      {R"({"type":"array","minItems":3,"maxItems":2})", R"("minItems" exceeds "maxItems")"},
      {R"({"minLength":3,"maxLength":2})", R"("minLength" exceeds "maxLength")"},
      {R"({"minItems":-1})", "\"minItems\" must be a non-negative integer"},
      {R"({"maxLength":1.5})", "\"maxLength\" must be a non-negative integer"},
      {R"({"$ref":"#/$defs/missing"})", R"(unresolved "$ref" "#/$defs/missing")"},
      {R"({"$ref":"http://example.com/s.json"})", "unresolved \"$ref\""},
      {R"({"$defs":{"A":{"properties":{}}},"$ref":"#/$defs/A/properties"})", "unresolved"},
      {R"({"$ref":5})", "\"$ref\" must be a string"},
      {R"({"$defs":{"A":{"$ref":"#/$defs/A"}},"$ref":"#/$defs/A"})", "cycle"},
      {R"({"$defs":{"A":{"$ref":"#/$defs/B"},"B":{"anyOf":[{"$ref":"#/$defs/A"}]}},
           "$ref":"#/$defs/A"})",
       "cycle"},
      {R"({"$ref":"#"})", "cycle"},
      {R"({"anyOf":[{"$ref":"#"},{"type":"null"}]})", "cycle"},
      {"false", "no text could match"},
      {R"({"properties":{"a":false}})", "schema /properties/a: false"},
      {R"({"enum":[]})", "\"enum\" must be a non-empty array"},
      {R"({"anyOf":[]})", "\"anyOf\" must be a non-empty array"},
      {R"({"anyOf":{}})", "\"anyOf\" must be a non-empty array"},
      {R"({"type":"string","enum":[1]})", "no value of \"enum\""},
      {R"({"properties":[]})", "\"properties\" must be an object"},
      {R"({"additionalProperties":1})", "\"additionalProperties\" must be a schema"},
      {R"({"items":[{}]})", "\"items\" must be a schema"},
      {"[1]", "a schema must be an object or a boolean"},
      {"1", "a schema must be an object or a boolean"},
      {R"({"anyOf":[{}],"type":"string"})", "alongside \"type\""},
      {R"({"anyOf":[{}],"oneOf":[{}]})", "only one of"},
      {R"({"$ref":"#","type":"string"})", "alongside \"type\""},
      {R"({"anyOf":[{"type":"string"},{"uniqueItems":true}]})",
       R"(schema /anyOf/1: unsupported keyword "uniqueItems")"},
      {R"({"type":"integer","multipleOf":0.5})", "a fractional \"multipleOf\" is not supported"},
      {R"({"type":"integer","multipleOf":0})", "\"multipleOf\" must be greater than 0"},
      {R"({"type":"integer","multipleOf":-3})", "\"multipleOf\" must be greater than 0"},
      {R"({"type":"integer","multipleOf":"3"})", "\"multipleOf\" must be a number"},
      {R"({"type":"integer","multipleOf":7,"minimum":1,"maximum":6})",
       "no multiple of \"multipleOf\" lies within"},
      {R"({"type":"integer","multipleOf":7,"minimum":-6,"maximum":-1})",
       "no multiple of \"multipleOf\" lies within"},
      {R"({"enum":[1,2,300],"maximum":100})",
       R"(schema (root): "maximum" alongside "enum"/"const" is not supported)"},
      {R"({"$defs":{"A":{"type":"object","properties":{"x/y":{"format":"uri"}}}},
           "$ref":"#/$defs/A"})",
       R"(schema /$defs/A/properties/x~1y: "format": "uri" is not supported)"},
      {R"({"type":"array","items":false,"minItems":1})", "\"items\" is false"},
      {R"({"prefixItems":[{},{}],"items":false,"minItems":3})",
       R"(schema (root): "minItems" > 2 but "items" is false)"},
      {R"({"prefixItems":[]})", "\"prefixItems\" must be a non-empty array"},
      {R"({"prefixItems":[{"type":"nope"}]})", R"(schema /prefixItems/0: unknown type "nope")"},
      {many_properties, "more than 64"},
  };
  for (const auto& [schema, message] : cases) {
    SCOPED_TRACE(schema);
    const auto grammar = Grammar::FromSchema(schema);
    ASSERT_FALSE(grammar.ok());
    EXPECT_EQ(grammar.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(grammar.status().message().find(message), std::string_view::npos)
        << grammar.status().message();
  }
}

TEST(SchemaErrorTest, DeeplyNestedSchemaIsAnErrorNotACrash) {
  std::string schema;
  for (int i = 0; i < 1000; ++i) schema += R"({"items":)";
  schema += "{}";
  schema += std::string(1000, '}');
  const auto grammar = Grammar::FromSchema(schema);
  ASSERT_FALSE(grammar.ok());
  EXPECT_NE(grammar.status().message().find("nested deeper"), std::string_view::npos);
}

TEST(SchemaErrorTest, IgnoresKeywordsOfTypesNotInPlay) {
  ExpectCases(Schema(R"({"type": "string", "minItems": 1, "properties": {"a": {}}})"),
              {{R"("x")", kAccept}, {"[]", kReject, 0}});
}

// A key that no listed name matches any more is free text: its state recurs from byte to
// byte (so the token mask's cache serves it), while a key still spelling a listed name
// counts its bytes.
TEST(SchemaObjectTest, FreeKeysRecurAndListedNamesCount) {
  Matcher short_key(Grammar::AnyObject());
  Matcher long_key(Grammar::AnyObject());
  ASSERT_TRUE(short_key.Advance("{\"ab"));
  ASSERT_TRUE(long_key.Advance("{\"abcdefgh"));
  EXPECT_TRUE(short_key == long_key);

  const GrammarPtr grammar = Schema(
      R"({"properties": {"name": {"type": "string"}}, "additionalProperties": {"type": "integer"}})");
  Matcher na(grammar);
  Matcher nx(grammar);
  Matcher nxyz(grammar);
  ASSERT_TRUE(na.Advance("{\"na"));
  ASSERT_TRUE(nx.Advance("{\"nx"));
  ASSERT_TRUE(nxyz.Advance("{\"nxyz"));
  EXPECT_FALSE(na == nx);
  EXPECT_TRUE(nx == nxyz);
  // The listed name still completes and takes its own schema; a free key takes the other.
  EXPECT_TRUE(Accepts(grammar, R"({"name": "Ada", "nxyz": 3})"));
  EXPECT_FALSE(Prefix(grammar, R"({"nxyz": ")"));
  EXPECT_FALSE(Prefix(grammar, R"({"name": 3)"));
}

// --- Random walks: viability ----------------------------------------------------------------

// Tracks whether the walk is inside a string, to steer it away from number exponents
// (nlohmann refuses numbers that overflow a double, which JSON allows).
struct Lexer {
  bool in_string = false;
  bool escaped = false;
  void Take(uint8_t byte) {
    if (escaped) {
      escaped = false;
    } else if (in_string && byte == '\\') {
      escaped = true;
    } else if (byte == '"') {
      in_string = !in_string;
    }
  }
};

using Check = void (*)(const std::string& text);

// Walks random byte paths the matcher takes; every step must offer at least one byte
// unless the matcher is finished, and every complete text must pass `check`. With
// `complete_iff_valid`, a text must be complete exactly when it is valid JSON.
int RandomWalks(const GrammarPtr& grammar, Check check, uint32_t seed, bool complete_iff_valid) {
  std::mt19937 rng(seed);
  const std::string_view preferred = "{}[]\":,0123456789-.truefalsn \\u";
  const std::string_view closers = "\"}]";
  int completions = 0;
  for (int walk = 0; walk < 200; ++walk) {
    Matcher matcher(grammar);
    std::string text;
    Lexer lexer;
    while (text.size() < 300) {
      std::vector<uint8_t> taken = TakenBytes(matcher);
      EXPECT_EQ(taken.empty(), matcher.IsFinished()) << text;
      if (taken.empty()) break;
      const bool after_digit =
          !lexer.in_string && !text.empty() && text.back() >= '0' && text.back() <= '9';
      std::erase_if(taken, [&](uint8_t b) { return after_digit && (b == 'e' || b == 'E'); });
      EXPECT_FALSE(taken.empty()) << text;
      if (taken.empty()) break;
      std::vector<uint8_t> choice;
      const std::string_view wanted = text.size() > 150 ? closers : preferred;
      for (const uint8_t b : taken) {
        if (wanted.find(static_cast<char>(b)) != std::string_view::npos) choice.push_back(b);
      }
      if (choice.empty() || rng() % 5 == 0) choice = taken;
      const uint8_t byte = choice[rng() % choice.size()];
      EXPECT_TRUE(matcher.Advance(byte));
      text += static_cast<char>(byte);
      lexer.Take(byte);
      if (complete_iff_valid) {
        EXPECT_EQ(matcher.IsComplete(), json::accept(text)) << text;
      }
      if (matcher.IsComplete()) {
        ++completions;
        check(text);
      }
      if (::testing::Test::HasFailure()) return completions;
    }
  }
  return completions;
}

TEST(RandomWalkTest, AnyObject) {
  const int completions = RandomWalks(
      Grammar::AnyObject(),
      [](const std::string& text) {
        const json value = json::parse(text, nullptr, /*allow_exceptions=*/false);
        ASSERT_FALSE(value.is_discarded()) << text;
        EXPECT_TRUE(value.is_object()) << text;
      },
      1234, /*complete_iff_valid=*/true);
  EXPECT_GT(completions, 50);
}

TEST(RandomWalkTest, SchemaWithRequiredProperties) {
  const GrammarPtr grammar = Schema(R"({
    "type": "object",
    "properties": {
      "name": {"type": "string", "maxLength": 8},
      "age": {"type": "integer"},
      "tags": {"type": "array", "items": {"enum": ["a", "b", 1, 10]}, "maxItems": 3},
      "level": {"type": "integer", "minimum": -50, "exclusiveMaximum": 1235, "multipleOf": 3},
      "when": {"type": "string", "format": "date-time"},
      "id": {"format": "uuid"},
      "kind": {"anyOf": [{"type": "null"},
                         {"type": "object", "properties": {"x": {"type": "number"}},
                          "required": ["x"]}]}
    },
    "required": ["name", "age"]})");
  const int completions = RandomWalks(
      grammar,
      [](const std::string& text) {
        const json value = json::parse(text, nullptr, /*allow_exceptions=*/false);
        ASSERT_FALSE(value.is_discarded()) << text;
        ASSERT_TRUE(value.is_object()) << text;
        ASSERT_TRUE(value.contains("name") && value["name"].is_string()) << text;
        ASSERT_LE(value["name"].get<std::string>().size(), 8 * 4u) << text;
        ASSERT_TRUE(value.contains("age") && value["age"].is_number()) << text;
        // Past 64 bits nlohmann reads an integer as a double: integral, then.
        const double age = value["age"].get<double>();
        ASSERT_TRUE(value["age"].is_number_integer() || std::floor(age) == age) << text;
        for (const auto& [key, item] : value.items()) {
          if (key == "tags") {
            ASSERT_TRUE(item.is_array() && item.size() <= 3) << text;
            for (const json& tag : item) {
              ASSERT_TRUE(tag == "a" || tag == "b" || tag == 1 || tag == 10) << text;
            }
          } else if (key == "when") {
            ASSERT_TRUE(item.is_string() && item.get<std::string>().size() >= 20) << text;
            ASSERT_EQ(item.get<std::string>()[10], 'T') << text;
          } else if (key == "id") {
            ASSERT_TRUE(item.is_string() && item.get<std::string>().size() == 36) << text;
          } else if (key == "level") {
            ASSERT_TRUE(item.is_number_integer()) << text;
            ASSERT_GE(item.get<int64_t>(), -50) << text;
            ASSERT_LE(item.get<int64_t>(), 1234) << text;
            ASSERT_EQ(item.get<int64_t>() % 3, 0) << text;
          } else if (key == "kind") {
            ASSERT_TRUE(item.is_null() || (item.is_object() && item.size() == 1 &&
                                           item.contains("x") && item["x"].is_number()))
                << text;
          } else {
            ASSERT_TRUE(key == "name" || key == "age") << text;
          }
        }
      },
      99, /*complete_iff_valid=*/false);
  EXPECT_GT(completions, 50);
}

// Independent checks of the formats: every address a random walk completes parses with
// inet_pton.
void ExpectAddresses(const std::string& text, int family) {
  const json value = json::parse(text, nullptr, /*allow_exceptions=*/false);
  ASSERT_TRUE(value.is_array()) << text;
  for (const json& address : value) {
    std::array<unsigned char, 16> out{};
    ASSERT_EQ(inet_pton(family, address.get<std::string>().c_str(), out.data()), 1) << address;
  }
}

// Numbers with ranges, parsed as doubles (as a validator would) and checked.
TEST(RandomWalkTest, NumbersWithRangesAreInRange) {
  const int completions = RandomWalks(
      Schema(R"({"type": "object", "properties": {
                   "rating": {"type": "number", "minimum": 0, "maximum": 5},
                   "delta": {"type": "number", "exclusiveMinimum": -0.5, "exclusiveMaximum": 0.5},
                   "price": {"type": "number", "multipleOf": 0.01, "minimum": 0.99}},
                 "required": ["rating", "delta", "price"]})"),
      [](const std::string& text) {
        const json value = json::parse(text, nullptr, /*allow_exceptions=*/false);
        ASSERT_TRUE(value.is_object()) << text;
        const double rating = value["rating"].get<double>();
        const double delta = value["delta"].get<double>();
        const double price = value["price"].get<double>();
        ASSERT_TRUE(rating >= 0 && rating <= 5) << text;
        ASSERT_TRUE(delta > -0.5 && delta < 0.5) << text;
        ASSERT_GE(price, 0.99) << text;
        ASSERT_NEAR(price * 100, std::round(price * 100), 1e-6) << text;
      },
      41, /*complete_iff_valid=*/false);
  EXPECT_GT(completions, 20);
}

TEST(RandomWalkTest, IpAddressesParse) {
  const int ipv4 = RandomWalks(
      Schema(R"({"type":"array","items":{"format":"ipv4"}})"),
      [](const std::string& text) { ExpectAddresses(text, AF_INET); }, 31,
      /*complete_iff_valid=*/false);
  EXPECT_GT(ipv4, 20);
  const int ipv6 = RandomWalks(
      Schema(R"({"type":"array","items":{"format":"ipv6"}})"),
      [](const std::string& text) { ExpectAddresses(text, AF_INET6); }, 37,
      /*complete_iff_valid=*/false);
  EXPECT_GT(ipv6, 20);
}

constexpr char kSkuPattern[] = R"([A-Z]{3}-\d{2,4}(-[a-z]+)?)";
constexpr char kPhonePattern[] = R"(\+?\d{1,3} \(\d{3}\) \d{3}-\d{4})";

TEST(RandomWalkTest, PatternStringsMatchTheirPatterns) {
  const std::string sku = kSkuPattern;
  const std::string phone = kPhonePattern;
  const GrammarPtr grammar = Schema(json{
      {"type", "object"},
      {"properties",
       {{"sku", {{"pattern", absl::StrCat("^", sku, "$")}}},
        {"phone", {{"type", "string"}, {"pattern", phone}}}}},
      {"required", {"sku", "phone"}}}.dump());
  const int completions = RandomWalks(
      grammar,
      [](const std::string& text) {
        static const std::regex sku_regex(kSkuPattern, std::regex::ECMAScript);
        static const std::regex phone_regex(kPhonePattern, std::regex::ECMAScript);
        const json value = json::parse(text, nullptr, /*allow_exceptions=*/false);
        ASSERT_FALSE(value.is_discarded()) << text;
        ASSERT_TRUE(std::regex_match(value["sku"].get<std::string>(), sku_regex)) << text;
        ASSERT_TRUE(std::regex_match(value["phone"].get<std::string>(), phone_regex)) << text;
      },
      5, /*complete_iff_valid=*/false);
  EXPECT_GT(completions, 20);
}

TEST(RandomWalkTest, SchemaWithExtraKeys) {
  const GrammarPtr grammar = Schema(R"({
    "properties": {"n": {"type": "array", "minItems": 1, "items": {"type": "string",
                                                                    "minLength": 1}}},
    "additionalProperties": {"type": ["boolean", "null"]}})");
  const int completions = RandomWalks(
      grammar,
      [](const std::string& text) {
        const json value = json::parse(text, nullptr, /*allow_exceptions=*/false);
        ASSERT_FALSE(value.is_discarded()) << text;
        ASSERT_TRUE(value.is_object()) << text;
        for (const auto& [key, item] : value.items()) {
          if (key == "n") {
            ASSERT_TRUE(item.is_array() && !item.empty()) << text;
            for (const json& s : item) {
              ASSERT_TRUE(s.is_string() && !s.empty()) << text;
            }
          } else {
            ASSERT_TRUE(item.is_boolean() || item.is_null()) << text;
          }
        }
      },
      7, /*complete_iff_valid=*/false);
  EXPECT_GT(completions, 20);
}

}  // namespace
}  // namespace ringserve::grammar
