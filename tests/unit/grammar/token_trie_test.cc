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

#include "worker/grammar/json_matcher.h"
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

std::vector<uint8_t> BruteForce(const JsonMatcher& matcher, const std::vector<std::string>& v) {
  std::vector<uint8_t> allowed(v.size(), 0);
  for (size_t id = 0; id < v.size(); ++id) {
    JsonMatcher copy = matcher;
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

TEST(TokenTrieTest, AllowsExactlyTheTokensTheMatcherTakesInAnyState) {
  const std::vector<std::string> vocab = JsonishVocabulary(7, 2000);
  const TokenTrie trie(vocab);
  EXPECT_EQ(trie.vocab_size(), static_cast<int32_t>(vocab.size()));
  auto schema = JsonGrammar::FromSchema(
      R"({"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"},)"
      R"("tags":{"type":"array","items":{"enum":["a","ab",true]}}},"required":["name"]})");
  ASSERT_TRUE(schema.ok()) << schema.status();
  const std::vector<std::pair<std::shared_ptr<const JsonGrammar>, std::string>> cases = {
      {JsonGrammar::AnyObject(), ""},
      {JsonGrammar::AnyObject(), " "},
      {JsonGrammar::AnyObject(), "{"},
      {JsonGrammar::AnyObject(), "{\"a"},
      {JsonGrammar::AnyObject(), "{\"a\\"},
      {JsonGrammar::AnyObject(), "{\"a\": 1"},
      {JsonGrammar::AnyObject(), "{\"a\": [tr"},
      {JsonGrammar::AnyObject(), "{\"a\": \"\xC3"},
      {JsonGrammar::AnyObject(), "{\"a\": {}"},
      {JsonGrammar::AnyObject(), "{\"a\": {}}"},
      {*schema, "{"},
      {*schema, "{\"name\": \"ab"},
      {*schema, "{\"age\": 12"},
      {*schema, "{\"tags\": [\"a"},
      {*schema, "{\"name\":\"x\",\"tags\":[true,"},
  };
  std::vector<JsonMatcher> scratch;
  TokenBits allowed;
  for (const auto& [grammar, prefix] : cases) {
    JsonMatcher matcher(grammar);
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

TEST(TokenTrieTest, EmptyAndControlTokensAreNeverAllowed) {
  const TokenTrie trie(std::vector<std::string>{"", "{", "", "\"}"});
  std::vector<JsonMatcher> scratch;
  TokenBits allowed;
  JsonMatcher matcher(JsonGrammar::AnyObject());
  EXPECT_EQ(trie.Allowed(matcher, scratch, &allowed), 1);
  EXPECT_EQ(Unpack(allowed, trie.vocab_size()), (std::vector<uint8_t>{0, 1, 0, 0}));
}

constexpr float kInf = std::numeric_limits<float>::infinity();

TEST(TokenConstraintTest, MasksRefusedTokensAndAllowsEndTokensOnceComplete) {
  // 0: end of sequence, 1 "{", 2 "}", 3 "\"k\":1", 4 "x".
  const TokenTrie trie(std::vector<std::string>{"", "{", "}", "\"k\":1", "x"});
  auto grammar = JsonGrammar::FromSchema(R"({"type":"object","properties":{"k":{}}})");
  ASSERT_TRUE(grammar.ok()) << grammar.status();
  TokenConstraint constraint(JsonMatcher(*grammar), &trie, {0});
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

// Inside a string without a maxLength every character leaves the same state, so its mask is
// walked once and then found cached, and gives what a walk gives.
TEST(TokenConstraintTest, ARecurringStateReusesItsMask) {
  const TokenTrie trie(std::vector<std::string>{"", "{\"a\": \"", "xy", "z", "\"}", "\\"});
  auto grammar = JsonGrammar::FromSchema(
      R"({"type":"object","properties":{"a":{"type":"string","minLength":2}},"required":["a"]})");
  ASSERT_TRUE(grammar.ok()) << grammar.status();
  TokenConstraint constraint(JsonMatcher(*grammar), &trie, {0});
  std::vector<float> logits(6);
  constraint.Mask(logits);
  constraint.Accept(1);
  // minLength 2: the close may not come before two code points.
  for (const int32_t pick : {3, 3, 2, 2, 3}) {
    logits.assign(6, 0.0F);
    constraint.Mask(logits);
    const bool may_close = JsonMatcher(constraint.matcher()).Advance("\"}");
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
  auto grammar = JsonGrammar::FromSchema(
      R"({"type":"object","properties":{"a":{"type":"string","minLength":100,"maxLength":200}},)"
      R"("required":["a"]})");
  ASSERT_TRUE(grammar.ok()) << grammar.status();
  TokenConstraint constraint(JsonMatcher(*grammar), &trie, {0});
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
  auto grammar = JsonGrammar::FromSchema(R"({"type":"integer"})");
  ASSERT_TRUE(grammar.ok()) << grammar.status();
  TokenConstraint constraint(JsonMatcher(*grammar), &trie, {0});
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
  TokenConstraint with_end(JsonMatcher(JsonGrammar::AnyObject()), &trie, {0});
  std::vector<float> logits = {0, 1, 2};
  with_end.Mask(logits);
  EXPECT_EQ(logits, (std::vector<float>{0, -kInf, -kInf}));
  TokenConstraint without_end(JsonMatcher(JsonGrammar::AnyObject()), &trie, {});
  logits = {0, 1, 2};
  without_end.Mask(logits);
  EXPECT_EQ(logits, (std::vector<float>{0, 1, 2}));
}

}  // namespace
}  // namespace ringserve::grammar
