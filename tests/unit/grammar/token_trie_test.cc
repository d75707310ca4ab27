// The token trie's mask against the definition (a token is allowed when the matcher takes
// all of its bytes) on vocabularies built to share prefixes, and the constraint's handling
// of end tokens, stuck states and picks.
#include "worker/grammar/token_trie.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "worker/grammar/matcher.h"
#include "worker/grammar/token_constraint.h"

namespace ringserve::grammar {
namespace {

// Pieces a JSON-producing vocabulary has, with shared prefixes, duplicates and bytes that
// are never JSON; id 0 and the last id are control tokens (no bytes).
std::vector<std::string> JsonishVocabulary(uint64_t seed, int num_random) {
  std::vector<std::string> v = {
      "",     "{",    "}",    "[",    "]",   "\"",     ":",  ",",   " ",   "\n",
      "{\"",  "\":",  "\": ", "\",",  "\"}", "true",   "tr", "t",   "ue",  "false",
      "null", "nu",   "0",    "1",    "12",  "-",      ".",  "e",   "E",   "+",
      "a",    "ab",   "abc",  "name", "age", "\"name", "\\", "\\n", "\\u", "00e9",
      "é",    "\xC3", "\xA9", "\xFF", "  ",  "    ",   "{}", "[]",  "a",   "}"};
  std::mt19937_64 rng(seed);
  const std::string alphabet = "{}[]\":, \nabcdeflnrstu0123456789.-+\\";
  for (int i = 0; i < num_random; ++i) {
    std::string piece;
    const int size = 1 + static_cast<int>(rng() % 6);
    for (int k = 0; k < size; ++k) piece += alphabet[rng() % alphabet.size()];
    v.push_back(piece);
  }
  v.emplace_back();
  return v;
}

std::vector<uint8_t> BruteForce(const Matcher& matcher, const std::vector<std::string>& v) {
  std::vector<uint8_t> allowed(v.size(), 0);
  for (size_t id = 0; id < v.size(); ++id) {
    Matcher copy = matcher;
    allowed[id] = !v[id].empty() && copy.Advance(v[id]) ? 1 : 0;
  }
  return allowed;
}

std::vector<uint8_t> Unpack(const TokenBits& bits, int32_t vocab_size) {
  std::vector<uint8_t> out;
  for (int32_t id = 0; id < vocab_size; ++id) out.push_back(HasToken(bits, id) ? 1 : 0);
  // Bits past the vocabulary stay clear.
  for (int32_t id = vocab_size; id < static_cast<int32_t>(bits.size() * 64); ++id) {
    EXPECT_FALSE(HasToken(bits, id)) << id;
  }
  return out;
}

using Cases = std::vector<std::pair<std::shared_ptr<const Grammar>, std::string>>;

// For each (grammar, text so far): the trie's mask is the definition's (a token is allowed
// when the matcher takes all of its bytes), and only a finished text allows nothing.
void ExpectTheDefinitionsMasks(const TokenTrie& trie, const std::vector<std::string>& vocab,
                               const Cases& cases) {
  std::vector<Matcher> scratch;
  TokenBits allowed;
  for (const auto& [grammar, prefix] : cases) {
    Matcher matcher(grammar);
    ASSERT_TRUE(matcher.Advance(prefix)) << prefix;
    const int32_t num_allowed = trie.Allowed(matcher, scratch, &allowed);
    const std::vector<uint8_t> expected = BruteForce(matcher, vocab);
    ASSERT_EQ(Unpack(allowed, trie.vocab_size()), expected) << "after '" << prefix << "'";
    int32_t count = 0;
    for (const uint8_t a : expected) count += a;
    EXPECT_EQ(num_allowed, count) << prefix;
    EXPECT_EQ(num_allowed == 0, matcher.IsFinished()) << prefix;
  }
}

TEST(TokenTrieTest, AllowsExactlyTheTokensTheMatcherTakesInAnyState) {
  const std::vector<std::string> vocab = JsonishVocabulary(7, 2000);
  const TokenTrie trie(vocab);
  EXPECT_EQ(trie.vocab_size(), static_cast<int32_t>(vocab.size()));
  auto schema = Grammar::FromSchema(
      R"({"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"},)"
      R"("tags":{"type":"array","items":{"enum":["a","ab",true]}}},"required":["name"]})");
  ASSERT_TRUE(schema.ok()) << schema.status();
  const Cases cases = {
      {Grammar::AnyObject(), ""},
      {Grammar::AnyObject(), " "},
      {Grammar::AnyObject(), "{"},
      {Grammar::AnyObject(), "{\"a"},
      {Grammar::AnyObject(), "{\"a\\"},
      {Grammar::AnyObject(), "{\"a\": 1"},
      {Grammar::AnyObject(), "{\"a\": [tr"},
      {Grammar::AnyObject(), "{\"a\": \"\xC3"},
      {Grammar::AnyObject(), "{\"a\": {}"},
      {Grammar::AnyObject(), "{\"a\": {}}"},
      {*schema, "{"},
      {*schema, "{\"name\": \"ab"},
      {*schema, "{\"age\": 12"},
      {*schema, "{\"tags\": [\"a"},
      {*schema, "{\"name\":\"x\",\"tags\":[true,"},
  };
  ExpectTheDefinitionsMasks(trie, vocab, cases);
}

// Inside a plain string the trie allows its plain-text tokens without walking them; the mask
// must still be exactly the definition's, at and near every bound and in every state that
// may not take the shortcut (mid-character, mid-escape, a format, an enum beside a string).
TEST(TokenTrieTest, PlainStringTextIsAllowedExactlyWhereTheMatcherTakesIt) {
  std::vector<std::string> vocab = JsonishVocabulary(11, 2000);
  for (const char* piece : {"hello", "h\xC3\xA9llo", "\xE2\x82\xAC", "\xF0\x9F\x98\x80x",
                            "\xE2\x82", "\x82\xAC", "tab\there", "a\"b", "longer piece"}) {
    vocab.emplace_back(piece);
  }
  const TokenTrie trie(vocab);
  EXPECT_GT(trie.num_plain_tokens(), 0);
  EXPECT_LT(trie.num_special_nodes(), trie.num_nodes());
  const auto grammar = [](const char* schema) {
    auto compiled = Grammar::FromSchema(schema);
    EXPECT_TRUE(compiled.ok()) << compiled.status();
    return *compiled;
  };
  const auto bounded = grammar(R"({"type":"string","minLength":2,"maxLength":40})");
  const auto tight = grammar(R"({"type":"string","maxLength":4})");
  const auto dated = grammar(R"({"type":"string","format":"date"})");
  const auto mixed = grammar(R"({"anyOf":[{"type":"string"},{"enum":["abc","xyz"]}]})");
  const auto two = grammar(R"({"anyOf":[{"type":"string","maxLength":30},{"type":"string"}]})");
  const Cases cases = {
      {Grammar::AnyObject(), "{\"a\": \""},
      {Grammar::AnyObject(), "{\"a\": \"x y"},
      {Grammar::AnyObject(), "{\"a\": \"x\\"},
      {Grammar::AnyObject(), "{\"a\": \"x\\u00"},
      {Grammar::AnyObject(), "{\"a\": \"\xE2\x82"},
      {Grammar::AnyObject(), "{\"a"},
      {bounded, "\""},
      {bounded, "\"abcdefghijklmnopqrstuvwxyz01"},
      {bounded, "\"abcdefghijklmnopqrstuvwxyz0123456789"},
      {tight, "\""},
      {tight, "\"abc"},
      {dated, "\"2024-0"},
      {mixed, "\"ab"},
      {two, "\"ab"},
      {two, "\"abcdefghijklmnopqrstuvwxyz"},
  };
  ExpectTheDefinitionsMasks(trie, vocab, cases);
  int shortcuts = 0;
  for (const auto& [compiled, prefix] : cases) {
    Matcher matcher(compiled);
    ASSERT_TRUE(matcher.Advance(prefix)) << prefix;
    shortcuts += matcher.PlainStringRoom().has_value() ? 1 : 0;
  }
  EXPECT_EQ(shortcuts, 9);  // every case at a plain string's character boundary
}

// Random replies under `grammar`: at every token the trie's mask is the definition's, and
// a pick among the allowed tokens advances the matcher. Returns the steps at which the
// matcher was inside an automaton (Matcher::Automaton).
int RandomRepliesHaveTheDefinitionsMasks(const TokenTrie& trie,
                                         const std::vector<std::string>& vocab,
                                         const std::shared_ptr<const Grammar>& grammar,
                                         int num_steps, std::mt19937_64& rng) {
  std::vector<Matcher> scratch;
  TokenBits allowed;
  int automaton_steps = 0;
  for (int reply = 0; reply < 12; ++reply) {
    Matcher matcher(grammar);
    std::string text;
    for (int step = 0; step < num_steps && !matcher.IsFinished(); ++step) {
      automaton_steps += matcher.Automaton().has_value() ? 1 : 0;
      const int32_t num_allowed = trie.Allowed(matcher, scratch, &allowed);
      const std::vector<uint8_t> expected = BruteForce(matcher, vocab);
      EXPECT_EQ(Unpack(allowed, trie.vocab_size()), expected) << "after " << text;
      std::vector<int32_t> choices;
      for (size_t id = 0; id < expected.size(); ++id) {
        if (expected[id] != 0) choices.push_back(static_cast<int32_t>(id));
      }
      EXPECT_EQ(num_allowed, static_cast<int32_t>(choices.size()));
      if (choices.empty() || ::testing::Test::HasFailure()) break;
      const int32_t pick = choices[rng() % choices.size()];
      EXPECT_TRUE(matcher.Advance(vocab[static_cast<size_t>(pick)]));
      text += vocab[static_cast<size_t>(pick)];
    }
  }
  return automaton_steps;
}

// Random replies under string-heavy schemas: at every token the mask is the definition's.
TEST(TokenTrieTest, MasksAlongRandomRepliesAreTheDefinitions) {
  std::vector<std::string> vocab = JsonishVocabulary(13, 1500);
  std::mt19937_64 rng(17);
  const std::vector<std::string> letters = {"a", "b", " ", "\xC3\xA9", "\xE2\x82\xAC", "z"};
  for (int i = 0; i < 600; ++i) {  // plain pieces of 1 to 12 code points
    std::string piece;
    for (int k = 1 + static_cast<int>(rng() % 12); k > 0; --k) {
      piece += letters[rng() % letters.size()];
    }
    vocab.push_back(piece);
  }
  const TokenTrie trie(vocab);
  const std::vector<std::string> schemas = {
      R"({"type":"object","properties":{"a":{"type":"string","maxLength":7},)"
      R"("b":{"type":"string","minLength":3,"maxLength":20}},"required":["a","b"]})",
      R"({"type":"array","items":{"anyOf":[{"type":"string","maxLength":3},)"
      R"({"type":"string","maxLength":9},{"enum":["ab","abc"]}]},"maxItems":4})",
      R"({"type":"object","additionalProperties":{"type":"string","maxLength":5}})",
  };
  for (const std::string& schema : schemas) {
    auto grammar = Grammar::FromSchema(schema);
    ASSERT_TRUE(grammar.ok()) << grammar.status();
    RandomRepliesHaveTheDefinitionsMasks(trie, vocab, *grammar, 60, rng);
    ASSERT_FALSE(HasFailure()) << schema;
  }
}

// Regex replies and pattern strings, where the walk follows the automaton and hands a
// pattern string's closing quote back to the matcher: along random replies the mask is the
// definition's.
TEST(TokenTrieTest, AutomatonWalksAreTheDefinitions) {
  std::vector<std::string> vocab = JsonishVocabulary(19, 1500);
  for (const char* piece : {"ab\"", "a\"", "1\"}", "12\",", "\"}", "b\",\"", "!", "?", "a\"b",
                            "ab\n", "\xC3\xA9", "\xC3\xA9\"", "c ", " c", "9"}) {
    vocab.emplace_back(piece);
  }
  const TokenTrie trie(vocab);
  std::vector<std::shared_ptr<const Grammar>> grammars;
  for (const char* regex : {"[a-c ]{0,12}(!|\\?)", "(ab|a\"b)+\n?", "(é|e)\\d{2,3}"}) {
    auto grammar = Grammar::FromRegex(regex);
    ASSERT_TRUE(grammar.ok()) << grammar.status();
    grammars.push_back(*grammar);
  }
  for (const char* schema :
       {R"({"properties":{"p":{"pattern":"[ab]{1,6}"},"q":{"pattern":"\\d+"}},)"
        R"("required":["p","q"]})",
        R"({"type":"array","items":{"anyOf":[{"pattern":"a+"},{"pattern":"[ab]c?"}]}})",
        R"({"type":"array","items":{"pattern":"é?[a-c]{0,3}"},"maxItems":3})"}) {
    auto grammar = Grammar::FromSchema(schema);
    ASSERT_TRUE(grammar.ok()) << grammar.status();
    grammars.push_back(*grammar);
  }
  std::mt19937_64 rng(23);
  int automaton_steps = 0;
  for (const auto& grammar : grammars) {
    automaton_steps += RandomRepliesHaveTheDefinitionsMasks(trie, vocab, grammar, 40, rng);
    ASSERT_FALSE(HasFailure());
  }
  EXPECT_GT(automaton_steps, 200);
}

// Grammars whose rules call one another: the walk follows a rule's automaton and hands its
// subtree back to the matcher where the rule may call or return. Along random replies the
// mask is the definition's.
TEST(TokenTrieTest, GrammarWalksAreTheDefinitions) {
  std::vector<std::string> vocab = JsonishVocabulary(29, 1500);
  for (const char* piece : {"(", ")", "((", "))", "(1", "1)", "+", "*", "+(", ")*", "12+", "2*("}) {
    vocab.emplace_back(piece);
  }
  const TokenTrie trie(vocab);
  std::mt19937_64 rng(31);
  int automaton_steps = 0;
  for (const char* gbnf :
       {"root ::= expr\nexpr ::= term ((\"+\" | \"-\") term)*\n"
        "term ::= factor (\"*\" factor)*\nfactor ::= [0-9]+ | \"(\" expr \")\"\n",
        "root ::= value\nvalue ::= \"[\" (value (\", \" value)*)? \"]\" | \"{\" "
        "(\"\\\"\" [a-z]+ \"\\\": \" value)? \"}\" | [0-9]+ | \"true\"\n"}) {
    auto grammar = Grammar::FromGbnf(gbnf);
    ASSERT_TRUE(grammar.ok()) << grammar.status();
    automaton_steps += RandomRepliesHaveTheDefinitionsMasks(trie, vocab, *grammar, 40, rng);
    ASSERT_FALSE(HasFailure()) << gbnf;
  }
  // Most steps follow a rule's automaton and hand back to the matcher at calls and returns.
  EXPECT_GT(automaton_steps, 400);

  // Tags around JSON values (a tool call's shape): the walk hands over to the value's frames
  // and back to the rule's automaton after it.
  auto arguments = Grammar::FromSchema(
      R"({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string",
          "maxLength": 3}}, "required": ["a"]})");
  ASSERT_TRUE(arguments.ok()) << arguments.status();
  const std::vector<Grammar::JsonRule> json_rules = {{"args", *arguments}};
  auto tagged =
      Grammar::FromGbnf("root ::= call (\"+\" call)*\ncall ::= \"((\" args \")\"\n", json_rules);
  ASSERT_TRUE(tagged.ok()) << tagged.status();
  RandomRepliesHaveTheDefinitionsMasks(trie, vocab, *tagged, 40, rng);

  // Near the nesting limit the automaton's own bytes stop where the matcher's do: a rule
  // frame 64 deep takes "a" (it can end with "d") but not "ab" (that needs a 65th frame).
  auto nest = Grammar::FromGbnf("root ::= \"a\" (\"b\" root \"c\" | \"d\")\n");
  ASSERT_TRUE(nest.ok()) << nest.status();
  Cases cases;
  for (const int levels : {0, 1, 62, 63}) {
    std::string prefix;
    for (int i = 0; i < levels; ++i) prefix += "ab";
    cases.emplace_back(*nest, prefix);
    cases.emplace_back(*nest, prefix + "a");
  }
  ExpectTheDefinitionsMasks(trie, vocab, cases);
  Matcher deepest(*nest);
  for (int i = 0; i < 63; ++i) ASSERT_TRUE(deepest.Advance("ab"));
  ASSERT_TRUE(deepest.Advance("a"));
  EXPECT_FALSE(Matcher(deepest).Advance('b'));
  ASSERT_TRUE(deepest.Automaton().has_value());
  EXPECT_EQ(deepest.Automaton()->depth_room, 0);
}

TEST(TokenTrieTest, PlainStringTextIsCompleteUtf8WithoutQuotesEscapesOrControls) {
  EXPECT_TRUE(IsPlainStringText("hello world"));
  EXPECT_TRUE(IsPlainStringText("\xC3\xA9t\xC3\xA9"));
  EXPECT_TRUE(IsPlainStringText("\xF0\x9F\x98\x80"));
  EXPECT_FALSE(IsPlainStringText(""));
  EXPECT_FALSE(IsPlainStringText("a\"b"));
  EXPECT_FALSE(IsPlainStringText("a\\n"));
  EXPECT_FALSE(IsPlainStringText("a\tb"));
  EXPECT_FALSE(IsPlainStringText("\xC3"));              // cut short
  EXPECT_FALSE(IsPlainStringText("\xA9"));              // a continuation first
  EXPECT_FALSE(IsPlainStringText("\xC0\xAF"));          // overlong
  EXPECT_FALSE(IsPlainStringText("\xED\xA0\x80"));      // a surrogate
  EXPECT_FALSE(IsPlainStringText("\xF5\x80\x80\x80"));  // past U+10FFFF
}

TEST(TokenTrieTest, EmptyAndControlTokensAreNeverAllowed) {
  const TokenTrie trie(std::vector<std::string>{"", "{", "", "\"}"});
  std::vector<Matcher> scratch;
  TokenBits allowed;
  Matcher matcher(Grammar::AnyObject());
  EXPECT_EQ(trie.Allowed(matcher, scratch, &allowed), 1);
  EXPECT_EQ(Unpack(allowed, trie.vocab_size()), (std::vector<uint8_t>{0, 1, 0, 0}));
}

constexpr float kInf = std::numeric_limits<float>::infinity();

TEST(TokenConstraintTest, MasksRefusedTokensAndAllowsEndTokensOnceComplete) {
  // 0: end of sequence, 1 "{", 2 "}", 3 "\"k\":1", 4 "x".
  const TokenTrie trie(std::vector<std::string>{"", "{", "}", "\"k\":1", "x"});
  auto grammar = Grammar::FromSchema(R"({"type":"object","properties":{"k":{}}})");
  ASSERT_TRUE(grammar.ok()) << grammar.status();
  TokenConstraint constraint(Matcher(*grammar), &trie, {0});
  std::vector<float> logits = {1, 2, 3, 4, 5};
  constraint.Mask(logits);
  EXPECT_EQ(logits, (std::vector<float>{-kInf, 2, -kInf, -kInf, -kInf}));
  constraint.Accept(1);
  logits = {1, 2, 3, 4, 5};
  constraint.Mask(logits);
  EXPECT_EQ(logits, (std::vector<float>{-kInf, -kInf, 3, 4, -kInf}));
  constraint.Accept(3);
  EXPECT_FALSE(constraint.finished());
  logits = {1, 2, 3, 4, 5};
  constraint.Mask(logits);  // "k" is used: only the close
  EXPECT_EQ(logits, (std::vector<float>{-kInf, -kInf, 3, -kInf, -kInf}));
  constraint.Accept(4);  // refused by the mask: ignored
  constraint.Accept(2);
  EXPECT_TRUE(constraint.finished());
}

// A triggered constraint masks nothing until its trigger appears (across tokens too), then
// holds the text from the trigger to the end of the grammar's, then lets go until the next.
TEST(TokenConstraintTest, ATriggerBindsFromEachAppearanceToTheEndOfTheGrammarsText) {
  // 0: end, 1 "<t", 2 "ag>", 3 "x", 4 "1", 5 "2", 6 "</tag>", 7 "a<tag>1".
  const TokenTrie trie(
      std::vector<std::string>{"", "<t", "ag>", "x", "1", "2", "</tag>", "a<tag>1"});
  auto grammar = Grammar::FromRegex("<tag>[12]+</tag>");
  ASSERT_TRUE(grammar.ok()) << grammar.status();
  TokenConstraint constraint(Matcher(*grammar), &trie, {0}, Trigger{.text = "<tag>"});
  const auto allowed = [&] {
    std::vector<float> logits(8, 0.0F);
    constraint.Mask(logits);
    std::vector<int> ids;
    for (int id = 0; id < 8; ++id) {
      if (logits[static_cast<size_t>(id)] == 0.0F) ids.push_back(id);
    }
    return ids;
  };
  const std::vector<int> all = {0, 1, 2, 3, 4, 5, 6, 7};
  EXPECT_FALSE(constraint.active());
  EXPECT_EQ(allowed(), all);
  for (const int32_t pick : {3, 1}) constraint.Accept(pick);  // "x<t": not yet
  EXPECT_EQ(allowed(), all);
  constraint.Accept(2);  // "ag>" completes it
  EXPECT_TRUE(constraint.active());
  EXPECT_EQ(allowed(), (std::vector<int>{4, 5}));
  constraint.Accept(4);
  EXPECT_EQ(allowed(), (std::vector<int>{4, 5, 6}));
  constraint.Accept(6);
  EXPECT_FALSE(constraint.active());
  EXPECT_FALSE(constraint.finished());  // the reply goes on
  EXPECT_EQ(allowed(), all);
  // A token holding text, the whole trigger and the stretch's first byte.
  constraint.Accept(7);
  EXPECT_TRUE(constraint.active());
  EXPECT_EQ(allowed(), (std::vector<int>{4, 5, 6}));

  // At the start only: whitespace may come first, other text ends the watch.
  auto object = Grammar::FromRegex("\\{[12]\\}");
  ASSERT_TRUE(object.ok()) << object.status();
  const TokenTrie braces(std::vector<std::string>{"", " ", "{", "1", "}", "x"});
  TokenConstraint opening(Matcher(*object), &braces, {0}, Trigger{.text = "{", .at_start = true});
  opening.Accept(1);
  EXPECT_FALSE(opening.active());
  opening.Accept(2);
  EXPECT_TRUE(opening.active());
  TokenConstraint late(Matcher(*object), &braces, {0}, Trigger{.text = "{", .at_start = true});
  late.Accept(5);
  late.Accept(2);
  EXPECT_FALSE(late.active());

  // With `after`, a trigger before that text does not count (a call inside a thought).
  TokenConstraint gated(Matcher(*grammar), &trie, {0},
                        Trigger{.text = "<tag>", .at_start = false, .after = "ag>x"});
  gated.Accept(7);  // "a<tag>1": before the gate
  EXPECT_FALSE(gated.active());
  gated.Accept(1);
  gated.Accept(2);  // "<tag>" completes the gate's "ag>", and "x" follows it
  EXPECT_FALSE(gated.active());
  gated.Accept(3);
  for (const int32_t pick : {1, 2}) gated.Accept(pick);  // now it binds
  EXPECT_TRUE(gated.active());

  // Binding once: the first stretch's end finishes the reply.
  TokenConstraint once(Matcher(*grammar), &trie, {0},
                       Trigger{.text = "<tag>", .at_start = false, .after = "", .once = true});
  for (const int32_t pick : {3, 1, 2, 4}) once.Accept(pick);  // "x<tag>1"
  EXPECT_TRUE(once.active());
  EXPECT_FALSE(once.finished());
  once.Accept(6);
  EXPECT_FALSE(once.active());
  EXPECT_TRUE(once.finished());
  once.Accept(7);  // nothing binds again
  EXPECT_FALSE(once.active());

  // A token trigger (a control token with no text) binds when that token is the first pick.
  const TokenTrie marked(std::vector<std::string>{"", "", "{", "1", "}", "x"});  // 1: marker
  TokenConstraint token(
      Matcher(*object), &marked, {0},
      Trigger{.text = "", .at_start = true, .after = "", .once = true, .token = 1});
  EXPECT_FALSE(token.active());
  token.Accept(1);
  EXPECT_TRUE(token.active());
  for (const int32_t pick : {2, 3, 4}) token.Accept(pick);
  EXPECT_TRUE(token.finished());
  TokenConstraint late_token(
      Matcher(*object), &marked, {0},
      Trigger{.text = "", .at_start = true, .after = "", .once = true, .token = 1});
  late_token.Accept(5);
  late_token.Accept(1);  // not the first token: the reply is text
  EXPECT_FALSE(late_token.active());
  EXPECT_FALSE(late_token.finished());

  // Anywhere (Mistral v11's [ARGS]): each appearance binds a stretch, text free between.
  TokenConstraint each(
      Matcher(*object), &marked, {0},
      Trigger{.text = "", .at_start = false, .after = "", .once = false, .token = 1});
  each.Accept(5);
  EXPECT_FALSE(each.active());
  each.Accept(1);
  EXPECT_TRUE(each.active());
  std::vector<float> logits(6);
  each.Mask(logits);
  EXPECT_EQ(logits[5], -std::numeric_limits<float>::infinity());  // the object must open
  for (const int32_t pick : {2, 3, 4}) each.Accept(pick);
  EXPECT_FALSE(each.active());
  EXPECT_FALSE(each.finished());
  each.Accept(5);
  each.Accept(1);  // the next call's arguments
  EXPECT_TRUE(each.active());
}

// Inside a string without a maxLength every character leaves the same state, so its mask is
// walked once and then found cached, and gives what a walk gives.
TEST(TokenConstraintTest, ARecurringStateReusesItsMask) {
  const TokenTrie trie(std::vector<std::string>{"", "{\"a\": \"", "xy", "z", "\"}", "\\"});
  auto grammar = Grammar::FromSchema(
      R"({"type":"object","properties":{"a":{"type":"string","minLength":2}},"required":["a"]})");
  ASSERT_TRUE(grammar.ok()) << grammar.status();
  TokenConstraint constraint(Matcher(*grammar), &trie, {0});
  std::vector<float> logits(6);
  constraint.Mask(logits);
  constraint.Accept(1);
  // minLength 2: the close may not come before two code points.
  for (const int32_t pick : {3, 3, 2, 2, 3}) {
    logits.assign(6, 0.0F);
    constraint.Mask(logits);
    const bool may_close = Matcher(constraint.matcher()).Advance("\"}");
    EXPECT_EQ(logits[4] == 0.0F, may_close);
    EXPECT_EQ(logits[2], 0.0F);
    EXPECT_EQ(logits[0], -kInf);  // incomplete: no end yet
    constraint.Accept(pick);
  }
  // States: the start, 0, 1 and 2+ code points (the count stops at minLength).
  EXPECT_EQ(constraint.num_walks(), 4);
  EXPECT_EQ(constraint.num_cache_hits(), 2);
  logits.assign(6, 0.0F);
  constraint.Mask(logits);
  EXPECT_EQ(logits[4], 0.0F);
  constraint.Accept(4);
  EXPECT_TRUE(constraint.finished());
}

// With minLength and maxLength, a count no token can carry to a bound is one class: the
// mask is walked once below reach of minLength, once per count within a token of it, and
// once between the bounds; each cached mask equals a fresh walk's.
TEST(TokenConstraintTest, StringLengthsFarFromTheirBoundsShareAMask) {
  const TokenTrie trie(std::vector<std::string>{"", "{\"a\": \"", "z", "zz", "\"}", "\xC3\xA9"});
  ASSERT_EQ(trie.max_token_bytes(), 7);
  auto grammar = Grammar::FromSchema(
      R"({"type":"object","properties":{"a":{"type":"string","minLength":100,"maxLength":200}},)"
      R"("required":["a"]})");
  ASSERT_TRUE(grammar.ok()) << grammar.status();
  TokenConstraint constraint(Matcher(*grammar), &trie, {0});
  std::vector<float> logits(6, 0.0F);
  constraint.Mask(logits);
  constraint.Accept(1);
  for (int count = 0; count < 150; ++count) {
    logits.assign(6, 0.0F);
    constraint.Mask(logits);
    TokenConstraint fresh(constraint.matcher(), &trie, {0});
    std::vector<float> walked(6, 0.0F);
    fresh.Mask(walked);
    ASSERT_EQ(logits, walked) << "after " << count << " code points";
    EXPECT_EQ(logits[4] == 0.0F, count >= 100) << count;  // the close
    constraint.Accept(2);
  }
  // The start, counts 0-92 (7 bytes cannot reach 100), 93-99 one by one, 100-149.
  EXPECT_EQ(constraint.num_walks(), 1 + 1 + 7 + 1);
  EXPECT_EQ(constraint.num_cache_hits(), 92 + 49);
}

TEST(TokenConstraintTest, AnOpenNumberAllowsTheEndTokenAndMoreDigits) {
  const TokenTrie trie(std::vector<std::string>{"", "1", "a"});
  auto grammar = Grammar::FromSchema(R"({"type":"integer"})");
  ASSERT_TRUE(grammar.ok()) << grammar.status();
  TokenConstraint constraint(Matcher(*grammar), &trie, {0});
  std::vector<float> logits = {0, 0, 0};
  constraint.Mask(logits);
  EXPECT_EQ(logits, (std::vector<float>{-kInf, 0, -kInf}));
  constraint.Accept(1);
  logits = {0, 0, 0};
  constraint.Mask(logits);
  EXPECT_EQ(logits, (std::vector<float>{0, 0, -kInf}));
  EXPECT_FALSE(constraint.finished());
}

TEST(TokenConstraintTest, AVocabularyThatCannotGoOnEndsTheJobInsteadOfBreakingTheFormat) {
  // No token spells '{': only the end token may come.
  const TokenTrie trie(std::vector<std::string>{"", "x", "}"});
  TokenConstraint with_end(Matcher(Grammar::AnyObject()), &trie, {0});
  std::vector<float> logits = {0, 1, 2};
  with_end.Mask(logits);
  EXPECT_EQ(logits, (std::vector<float>{0, -kInf, -kInf}));
  TokenConstraint without_end(Matcher(Grammar::AnyObject()), &trie, {});
  logits = {0, 1, 2};
  without_end.Mask(logits);
  EXPECT_EQ(logits, (std::vector<float>{0, 1, 2}));
}

}  // namespace
}  // namespace ringserve::grammar
