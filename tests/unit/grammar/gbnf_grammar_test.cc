// Context-free grammars (Grammar::FromGbnf) through the matcher: against independent
// recognizers on exhaustive short texts, random walks that must always be completable, the
// nesting limit, tail calls, nullable rules, and the grammars refused.
#include <gtest/gtest.h>
#include <pthread.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "tests/unit/grammar/matcher_checks.h"
#include "worker/grammar/grammar_nodes.h"
#include "worker/grammar/matcher.h"
#include "worker/grammar/regex.h"

namespace ringserve::grammar {
namespace {

using GrammarPtr = std::shared_ptr<const Grammar>;

GrammarPtr Gbnf(std::string_view text) {
  auto grammar = Grammar::FromGbnf(text);
  if (!grammar.ok()) {
    ADD_FAILURE() << grammar.status() << " for " << text;
    return *Grammar::FromRegex("x");
  }
  return *grammar;
}

std::string Refusal(std::string_view text) {
  auto grammar = Grammar::FromGbnf(text);
  if (grammar.ok()) return "accepted";
  EXPECT_EQ(grammar.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(grammar.status().message());
}

// Every text over `alphabet` up to `max_size` bytes.
void ForAllTexts(std::string_view alphabet, size_t max_size,
                 const std::function<void(const std::string&)>& visit) {
  std::string text;
  const std::function<void()> extend = [&] {
    visit(text);
    if (text.size() == max_size) return;
    for (const char c : alphabet) {
      text.push_back(c);
      extend();
      text.pop_back();
    }
  };
  extend();
}

// Walks random byte paths the matcher takes: every step must offer a byte unless the
// matcher is finished; `check` sees every complete text. Returns how many there were.
int RandomWalks(const GrammarPtr& grammar, uint32_t seed, size_t max_size,
                const std::function<void(const std::string&)>& check) {
  std::mt19937 rng(seed);
  int completions = 0;
  for (int walk = 0; walk < 100; ++walk) {
    Matcher matcher(grammar);
    std::string text;
    while (text.size() < max_size) {
      std::vector<uint8_t> taken = TakenBytes(matcher);
      EXPECT_EQ(taken.empty(), matcher.IsFinished()) << text;
      if (taken.empty()) break;
      const uint8_t byte = taken[rng() % taken.size()];
      EXPECT_TRUE(matcher.Advance(byte));
      text += static_cast<char>(byte);
      if (matcher.IsComplete()) {
        ++completions;
        check(text);
      }
      if (::testing::Test::HasFailure()) return completions;
    }
  }
  return completions;
}

// --- Arithmetic: recursion through three rules --------------------------------------------

constexpr std::string_view kArithmetic = R"g(
# Integer arithmetic with precedence and parentheses.
root   ::= expr
expr   ::= term (("+" | "-") term)*
term   ::= factor (("*" | "/") factor)*
factor ::= [0-9]+ | "(" expr ")" | "-" factor
)g";

// A recursive-descent recognizer of the same language.
class ArithmeticParser {
 public:
  explicit ArithmeticParser(std::string_view text) : text_(text) {}
  bool Whole() { return Expr() && at_ == text_.size(); }

 private:
  bool Peek(char c) const { return at_ < text_.size() && text_[at_] == c; }
  bool Expr() {
    if (!Term()) return false;
    while (Peek('+') || Peek('-')) {
      ++at_;
      if (!Term()) return false;
    }
    return true;
  }
  bool Term() {
    if (!Factor()) return false;
    while (Peek('*') || Peek('/')) {
      ++at_;
      if (!Factor()) return false;
    }
    return true;
  }
  bool Factor() {
    if (Peek('-')) {
      ++at_;
      return Factor();
    }
    if (Peek('(')) {
      ++at_;
      if (!Expr() || !Peek(')')) return false;
      ++at_;
      return true;
    }
    const size_t start = at_;
    while (at_ < text_.size() && text_[at_] >= '0' && text_[at_] <= '9') ++at_;
    return at_ > start;
  }

  std::string_view text_;
  size_t at_ = 0;
};

TEST(GbnfGrammarTest, ArithmeticAgreesWithARecursiveDescentParserOnEveryShortText) {
  const GrammarPtr grammar = Gbnf(kArithmetic);
  int accepted = 0;
  ForAllTexts("1+-*()", 7, [&](const std::string& text) {
    const bool expected = ArithmeticParser(text).Whole();
    accepted += expected ? 1 : 0;
    ASSERT_EQ(Accepts(grammar, text), expected) << text;
  });
  EXPECT_GT(accepted, 500);
}

TEST(GbnfGrammarTest, ArithmeticRandomWalksParse) {
  const GrammarPtr grammar = Gbnf(kArithmetic);
  const int completions = RandomWalks(grammar, 3, 60, [](const std::string& text) {
    EXPECT_TRUE(ArithmeticParser(text).Whole()) << text;
  });
  EXPECT_GT(completions, 100);
}

// --- JSON written as a grammar -----------------------------------------------------------

constexpr std::string_view kJson = R"g(
root   ::= value
value  ::= object | array | string | number | "true" | "false" | "null"
object ::= "{" ws ( member ( "," ws member )* )? "}"
member ::= string ws ":" ws value ws
array  ::= "[" ws ( value ws ( "," ws value ws )* )? "]"
string ::= "\"" ( [^"\\\x00-\x1f] | "\\" ["\\/bfnrt] )* "\""
number ::= "-"? ( "0" | [1-9] [0-9]{0,8} ) ( "." [0-9]{1,8} )?
ws     ::= [ \n]?
)g";

TEST(GbnfGrammarTest, JsonGrammarWalksParseAsJson) {
  const GrammarPtr grammar = Gbnf(kJson);
  const int completions = RandomWalks(grammar, 5, 200, [](const std::string& text) {
    EXPECT_TRUE(nlohmann::json::accept(text)) << text;
  });
  EXPECT_GT(completions, 50);
  EXPECT_TRUE(Accepts(grammar, R"({"a": [1, -2.5, {"b": null}], "c": "\n"})"));
  EXPECT_TRUE(Accepts(grammar, "[[[[[[[[[[[]]]]]]]]]]]"));
  EXPECT_FALSE(Prefix(grammar, "{\"a\" 1"));
  EXPECT_FALSE(Prefix(grammar, "[01"));
}

// --- Nullable rules, tail calls, nesting -------------------------------------------------

TEST(GbnfGrammarTest, NullableRulesInLoopsAndRecursion) {
  const GrammarPtr loop = Gbnf("root ::= a* \"x\"\na ::= \"b\"?\n");
  EXPECT_TRUE(Accepts(loop, "x"));
  EXPECT_TRUE(Accepts(loop, "bbbx"));
  EXPECT_FALSE(Accepts(loop, "bb"));
  EXPECT_FALSE(Prefix(loop, "xb"));

  // Balanced parentheses, a rule that is empty or recurses twice.
  const GrammarPtr balanced = Gbnf("root ::= e\ne ::= \"\" | \"(\" e \")\" e\n");
  ForAllTexts("()", 12, [&](const std::string& text) {
    int open = 0;
    bool prefix = true;
    for (const char c : text) {
      open += c == '(' ? 1 : -1;
      prefix = prefix && open >= 0;
    }
    ASSERT_EQ(Prefix(balanced, text), prefix) << text;
    ASSERT_EQ(Accepts(balanced, text), prefix && open == 0) << text;
  });
}

TEST(GbnfGrammarTest, TailCallsDoNotNest) {
  const GrammarPtr list = Gbnf("root ::= item (\",\" root)?\nitem ::= [a-z]+ | \"[\" root \"]\"\n");
  std::string text = "a";
  for (int i = 0; i < 1000; ++i) text += ",b";
  EXPECT_TRUE(Accepts(list, text));
  EXPECT_TRUE(Accepts(list, "a,[b,c],[[d]]"));
  EXPECT_FALSE(Accepts(list, "a,"));
}

TEST(GbnfGrammarTest, NestingStopsWhereTheTextCanStillBeFinished) {
  const GrammarPtr nest = Gbnf("root ::= \"(\" root \")\" | \"x\"\n");
  const std::string deepest = std::string(63, '(') + "x" + std::string(63, ')');
  EXPECT_TRUE(Accepts(nest, deepest));
  Matcher matcher(nest);
  ASSERT_TRUE(matcher.Advance(std::string(63, '(')));
  EXPECT_FALSE(Matcher(matcher).Advance('('));  // a 64th would need a 65th frame
  EXPECT_TRUE(matcher.Advance('x'));
  // Walks never reach a text they cannot finish.
  RandomWalks(nest, 9, 300, [](const std::string&) {});
}

TEST(GbnfGrammarTest, CompleteAndFinished) {
  const GrammarPtr grammar = Gbnf("root ::= \"(\" in \")\"\nin ::= \"a\" | \"(\" in \")\"\n");
  Matcher matcher(grammar);
  ASSERT_TRUE(matcher.Advance("((a)"));
  EXPECT_FALSE(matcher.IsComplete());
  EXPECT_FALSE(matcher.IsFinished());
  ASSERT_TRUE(matcher.Advance(")"));
  EXPECT_TRUE(matcher.IsComplete());
  EXPECT_TRUE(matcher.IsFinished());

  const GrammarPtr open = Gbnf("root ::= [0-9]+ (\".\" [0-9]+)?\n");
  Matcher number(open);
  ASSERT_TRUE(number.Advance("12"));
  EXPECT_TRUE(number.IsComplete());
  EXPECT_FALSE(number.IsFinished());
}

TEST(GbnfGrammarTest, RulesThatDoNotRecurseBecomeOneAutomaton) {
  const GrammarPtr flat = Gbnf(
      "root ::= greeting \", \" name \"!\"\ngreeting ::= \"hello\" | \"hi\"\n"
      "name ::= [A-Z] [a-z]*\n");
  Matcher matcher(flat);
  ASSERT_TRUE(matcher.Automaton().has_value());
  EXPECT_FALSE(matcher.Automaton()->dfa->has_calls());
  EXPECT_TRUE(Accepts(flat, "hi, Ann!"));
  EXPECT_FALSE(Prefix(flat, "hi, ann"));

  // Only the root and the rules that reach themselves stay automata of their own: JSON's
  // string, number and whitespace rules are inlined into the rules that recurse.
  EXPECT_EQ(flat->nodes().size(), 1U);
  EXPECT_EQ(Gbnf(kJson)->nodes().size(), 5U);  // root, value, object, member, array
  EXPECT_EQ(Gbnf(kArithmetic)->nodes().size(), 4U);

  // Recursive rules call one another: the token mask hands back to the matcher where a
  // rule calls or may return.
  Matcher recursive(Gbnf(kArithmetic));
  ASSERT_TRUE(recursive.Advance("(1"));
  const std::optional<Matcher::AutomatonState> factor = recursive.Automaton();
  ASSERT_TRUE(factor.has_value());
  EXPECT_TRUE(factor->may_return);
  EXPECT_TRUE(factor->HandsBack(factor->state));  // after a digit the factor may end
}

TEST(GbnfGrammarTest, Utf8AndAnyCharacter) {
  const GrammarPtr grammar = Gbnf("root ::= [à-ü]+ \" \" .\n");
  EXPECT_TRUE(Accepts(grammar, "\xC3\xA9\xC3\xBC \xF0\x9F\x98\x80"));
  EXPECT_FALSE(Prefix(grammar, "e"));
  EXPECT_FALSE(Prefix(grammar, "\xC3\xA9 \xFF"));
}

// An ambiguous grammar keeps a bounded set of parses and stays completable.
TEST(GbnfGrammarTest, AmbiguousGrammarsStayCompletable) {
  const GrammarPtr grammar =
      Gbnf("root ::= s\ns ::= \"a\" s | \"a\" s s | \"a\" | \"b\" s \"c\"\n");
  EXPECT_TRUE(Accepts(grammar, std::string(200, 'a')));
  RandomWalks(grammar, 13, 120, [](const std::string&) {});
}

// A chain of rules, each nesting the next deep inside groups, compiles on a thread with a
// small stack: inlining is bounded in depth and no step recurses from rule to rule. (Fully
// inlined, the chain is a tree 10000 deep, which overflows this stack.) AddressSanitizer's
// frames are several times larger.
#if defined(__SANITIZE_ADDRESS__)
constexpr size_t kSmallStack = size_t{4} << 20;
#else
constexpr size_t kSmallStack = size_t{512} << 10;
#endif

TEST(GbnfGrammarTest, DeepChainsCompileOnASmallStack) {
  std::string text = "root ::= r0\n";
  for (int i = 0; i < 160; ++i) {
    absl::StrAppend(&text, "r", i, " ::= ");
    for (int d = 0; d < 63; ++d) text += "(\"b\" ";
    absl::StrAppend(&text, "r", i + 1, std::string(63, ')'), "\n");
  }
  text += "r160 ::= \"z\"\n";
  struct Job {
    std::string text;
    bool ok = false;
    bool matched = false;
  } job{.text = text};
  pthread_attr_t attr;
  ASSERT_EQ(pthread_attr_init(&attr), 0);
  ASSERT_EQ(pthread_attr_setstacksize(&attr, kSmallStack), 0);
  pthread_t thread;
  ASSERT_EQ(pthread_create(
                &thread, &attr,
                [](void* arg) -> void* {
                  auto* job = static_cast<Job*>(arg);
                  auto grammar = Grammar::FromGbnf(job->text);
                  job->ok = grammar.ok();
                  if (job->ok) {
                    job->matched = Accepts(*grammar, std::string(160 * 63, 'b') + "z");
                  }
                  return nullptr;
                },
                &job),
            0);
  ASSERT_EQ(pthread_join(thread, nullptr), 0);
  pthread_attr_destroy(&attr);
  EXPECT_TRUE(job.ok);
  EXPECT_TRUE(job.matched);
}

// --- Refusals ------------------------------------------------------------------------------

TEST(GbnfGrammarTest, RefusesWhatTheMatcherCannotHonour) {
  EXPECT_NE(Refusal("root ::= expr\nexpr ::= expr \"+\" term | term\nterm ::= [0-9]\n")
                .find("left recursion (expr -> expr)"),
            std::string::npos);
  EXPECT_NE(Refusal("root ::= a\na ::= b \"x\" | \"y\"\nb ::= a \"z\"\n").find("left recursion"),
            std::string::npos);
  // The empty text of an optional rule before a call is left recursion too.
  EXPECT_NE(Refusal("root ::= a\na ::= n a \"x\" | \"y\"\nn ::= \"q\"?\n").find("left recursion"),
            std::string::npos);
  EXPECT_NE(
      Refusal("root ::= \"a\" | b\nb ::= \"(\" b \")\"\n").find("rule 'b' matches no finite text"),
      std::string::npos);
  EXPECT_NE(Refusal("root ::= \"a\" undefined\n").find("undefined"), std::string::npos);
  EXPECT_NE(Refusal("start ::= \"a\"\n").find("root"), std::string::npos);
  EXPECT_NE(Refusal("root ::= [a-z]{0,9000} [a-z]{0,9000}\n").find("too complex"),
            std::string::npos);

  // A chain of 70 rules whose only finite texts nest all of them.
  std::string chain = "root ::= r0\n";
  for (int i = 0; i < 70; ++i) {
    absl::StrAppend(&chain, "r", i, " ::= \"a\" r", i + 1, " \"b\" | \"z\" r0 \"y\"\n");
  }
  absl::StrAppend(&chain, "r70 ::= \"c\" | \"(\" r0 \")\"\n");
  EXPECT_NE(Refusal(chain).find("deeper than 64"), std::string::npos);
}

}  // namespace
}  // namespace ringserve::grammar
