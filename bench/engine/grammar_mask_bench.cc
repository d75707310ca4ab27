// The structured-output mask: what one constrained row's mask costs the sampling thread that
// finishes it, per step, on real vocabularies (../shared/tokenizers: DeepSeek LLM's 102400
// byte-level tokens, Llama's 32000 SentencePiece tokens), in the states a JSON reply spends
// its tokens in. The trie is built once per model (BM_BuildTrie).
//
// usage: ringserve-grammar-mask-bench [--shared DIR] [benchmark flags]
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "bench/shared_flag.h"
#include "worker/grammar/grammar_cache.h"
#include "worker/grammar/matcher.h"
#include "worker/grammar/token_constraint.h"
#include "worker/grammar/token_trie.h"
#include "worker/model/gguf_reader.h"
#include "worker/model/gguf_vocab.h"
#include "worker/tokenizer/tokenizer.h"
#include "worker/tokenizer/tool_calls.h"

namespace ringserve::grammar {
namespace {

std::string g_shared = RINGSERVE_SHARED_DIR;

// Each token's bytes, as the generator gives them to the trie; empty when the vocabulary
// cannot be read.
std::vector<std::string> TokenBytes(const std::string& vocabulary) {
  auto file = model::GgufFile::Open(g_shared + "/tokenizers/" + vocabulary);
  if (!file.ok()) return {};
  auto vocab = model::VocabularyFromGguf(**file);
  if (!vocab.ok()) return {};
  auto tok = tokenizer::Tokenizer::Create(*std::move(vocab));
  if (!tok.ok()) return {};
  return (*tok)->ReplyBytesOfTokens();
}

const char* VocabularyOf(int64_t index) {
  return index == 0 ? "ggml-vocab-deepseek-llm.gguf" : "ggml-vocab-llama-spm.gguf";
}

std::shared_ptr<const Grammar> Person() {
  static const auto grammar = Grammar::FromSchema(
      R"({"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"},)"
      R"("tags":{"type":"array","items":{"type":"string"}},"address":{"type":"object",)"
      R"("properties":{"city":{"type":"string"},"zip":{"type":"string"}}}},)"
      R"("required":["name","age"]})");
  return grammar.ok() ? *grammar : nullptr;
}

struct Setup {
  std::unique_ptr<TokenTrie> trie;  // null: the benchmark is skipped
  std::optional<Matcher> matcher;
};

// The trie of range(0)'s vocabulary and Person()'s matcher after `text`.
Setup Prepare(benchmark::State& state, const char* text) {
  std::vector<std::string> bytes = TokenBytes(VocabularyOf(state.range(0)));
  if (bytes.empty() || Person() == nullptr) {
    state.SkipWithError("no vocabulary under --shared (or the schema did not compile)");
    return {};
  }
  Setup setup{.trie = std::make_unique<TokenTrie>(std::move(bytes)), .matcher = Matcher(Person())};
  if (!setup.matcher->Advance(text)) {
    state.SkipWithError("the state's text is not a prefix of the schema's values");
    return {};
  }
  return setup;
}

// Times the mask of `matcher`'s state, and counts the tokens it allows.
void TimeMasks(benchmark::State& state, const TokenTrie& trie, const Matcher& matcher) {
  std::vector<Matcher> scratch;
  TokenBits allowed;
  int32_t num_allowed = 0;
  for (auto _ : state) {
    num_allowed = trie.Allowed(matcher, scratch, &allowed);
    benchmark::DoNotOptimize(allowed.data());
  }
  state.counters["allowed"] = num_allowed;
}

// TimeMasks for `grammar` after `text` on the vocabulary range(0) names; skipped when the
// vocabulary is missing, the grammar did not compile or the text does not fit it. The label
// names the vocabulary, `what` (when not empty) and the text.
void TimeMasksAfter(benchmark::State& state,
                    const absl::StatusOr<std::shared_ptr<const Grammar>>& grammar,
                    std::string_view text, std::string_view what) {
  std::vector<std::string> bytes = TokenBytes(VocabularyOf(state.range(0)));
  if (bytes.empty() || !grammar.ok()) {
    state.SkipWithError("no vocabulary under --shared (or the grammar did not compile)");
    return;
  }
  const TokenTrie trie(std::move(bytes));
  Matcher matcher(*grammar);
  if (!matcher.Advance(text)) {
    state.SkipWithError("the text is not a prefix of the grammar's");
    return;
  }
  TimeMasks(state, trie, matcher);
  state.SetLabel(absl::StrCat(VocabularyOf(state.range(0)), what.empty() ? "" : " ",
                              std::string(what), " after '", std::string(text), "'"));
}

// range(0): the vocabulary; range(1): the state (the text so far).
void BM_Mask(benchmark::State& state) {
  static const char* const kStates[] = {
      "",                                      // before the value
      "{\"name\": \"Ada Lovel",                // inside a string: nearly every token fits
      "{\"name\": \"Ada\", ",                  // before a key: the remaining property names
      "{\"name\": \"Ada\", \"age\": 3",        // inside a number
      "{\"name\": \"Ada\", \"tags\": [\"x\"",  // after an array element
  };
  const Setup setup = Prepare(state, kStates[state.range(1)]);
  if (setup.trie == nullptr) return;
  const TokenTrie& trie = *setup.trie;
  TimeMasks(state, trie, *setup.matcher);
  state.counters["trie_nodes"] = trie.num_nodes();
  state.counters["special_nodes"] = trie.num_special_nodes();
  state.SetLabel(std::string(VocabularyOf(state.range(0))) + " after '" + kStates[state.range(1)] +
                 "'");
}
BENCHMARK(BM_Mask)->ArgsProduct({{0, 1}, {0, 1, 2, 3, 4}})->Unit(benchmark::kMillisecond);

// A constrained row's whole mask inside a long string, as the sampler runs it each step: the
// state recurs, so after the first step the mask comes from the cache and the cost is
// setting the refused logits to -inf.
void BM_MaskRowInAString(benchmark::State& state) {
  const Setup setup = Prepare(state, "{\"name\": \"Ada Lovel");
  if (setup.trie == nullptr) return;
  TokenConstraint constraint(*setup.matcher, setup.trie.get(), {});
  std::vector<float> logits(static_cast<size_t>(setup.trie->vocab_size()));
  for (auto _ : state) {
    std::fill(logits.begin(), logits.end(), 1.0F);
    constraint.Mask(logits);
    benchmark::DoNotOptimize(logits.data());
  }
  state.counters["walks"] = static_cast<double>(constraint.num_walks());
  state.SetLabel(VocabularyOf(state.range(0)));
}
BENCHMARK(BM_MaskRowInAString)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

// The worst a schema can make a walk: anyOf over range(1) strings of different maxLength
// keeps that many alternatives alive inside a string (at most the matcher's 16), each fed
// every trie node's byte.
void BM_MaskManyAlternatives(benchmark::State& state) {
  std::string schema = R"({"anyOf":[)";
  for (int64_t k = 0; k < state.range(1); ++k) {
    schema += (k == 0 ? "" : ",") + std::string(R"({"type":"string","maxLength":)") +
              std::to_string(1000 + k) + "}";
  }
  schema += "]}";
  auto grammar = Grammar::FromSchema(schema);
  const std::vector<std::string> bytes = TokenBytes(VocabularyOf(state.range(0)));
  if (bytes.empty() || !grammar.ok()) {
    state.SkipWithError("no vocabulary under --shared (or the schema did not compile)");
    return;
  }
  const TokenTrie trie(bytes);
  Matcher matcher(*grammar);
  matcher.Advance("\"ab");
  std::vector<Matcher> scratch;
  TokenBits allowed;
  for (auto _ : state) benchmark::DoNotOptimize(trie.Allowed(matcher, scratch, &allowed));
  state.SetLabel(VocabularyOf(state.range(0)));
}
BENCHMARK(BM_MaskManyAlternatives)
    ->ArgsProduct({{1}, {1, 8, 16, 32}})
    ->Unit(benchmark::kMillisecond);

// Regex constraints: range(1) picks a grammar and the text so far. An unbounded repeat
// recurs in one automaton state (its mask is cached after the first step); a counted one
// is a new state at every character, so each step walks the trie.
void BM_MaskRegex(benchmark::State& state) {
  struct Case {
    bool schema;  // the pattern is a JSON string's, else the whole reply's
    const char* pattern;
    const char* text;
  };
  static const Case kCases[] = {
      {false, "[^\\n]*", "Hello, wor"},
      {false, ".{0,200}", "Hello, wor"},
      {false, "\\(\\d{3}\\) \\d{3}-\\d{4}", "(55"},
      {true, R"({"pattern": "[A-Za-z ]{1,100}"})", "\"Ada Lo"},
  };
  const Case& c = kCases[state.range(1)];
  TimeMasksAfter(state, c.schema ? Grammar::FromSchema(c.pattern) : Grammar::FromRegex(c.pattern),
                 c.text, c.pattern);
}
BENCHMARK(BM_MaskRegex)->ArgsProduct({{0, 1}, {0, 1, 2, 3}})->Unit(benchmark::kMillisecond);

// Compiling a pattern, on the thread that takes the request.
void BM_CompileRegex(benchmark::State& state) {
  static const char* const kPatterns[] = {
      "\\(\\d{3}\\) \\d{3}-\\d{4}",
      "[\\w.+-]+@[\\w-]+(\\.[\\w-]+)+",
      ".{0,1000}",
  };
  const char* pattern = kPatterns[state.range(0)];
  for (auto _ : state) benchmark::DoNotOptimize(Grammar::FromRegex(pattern).ok());
  state.SetLabel(pattern);
}
BENCHMARK(BM_CompileRegex)->DenseRange(0, 2)->Unit(benchmark::kMillisecond);

// GBNF grammars (ResponseFormat.grammar): range(1) picks a grammar and the text so far.
// Where rules call one another the walk copies the matcher per trie node, as a JSON
// Schema's does; a grammar without recursion is one automaton, walked as a regex's.
constexpr const char* kJsonGbnf = R"g(
root    ::= object
value   ::= object | array | string | number | ("true" | "false" | "null")
object  ::= "{" space (string ":" space value ("," space string ":" space value)*)? "}" space
array   ::= "[" space (value ("," space value)*)? "]" space
string  ::= "\"" (char | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4}))* "\"" space
char    ::= [^"\\\x7F\x00-\x1F]
number  ::= "-"? ("0" | [1-9] [0-9]{0,15}) ("." [0-9]+)? ([eE] [-+]? [0-9]{1,3})? space
space   ::= | " " | "\n" [ \t]{0,20}
)g";
constexpr const char* kArithmeticGbnf = R"g(
root   ::= expr
expr   ::= term (("+" | "-") term)*
term   ::= factor (("*" | "/") factor)*
factor ::= [0-9]+ | "(" expr ")" | "-" factor
)g";
constexpr const char* kGreetingGbnf = R"g(
root     ::= greeting ", " name "!"
greeting ::= "Hello" | "Hi" | "Good morning"
name     ::= [A-Z] [a-z]{0,30}
)g";

void BM_MaskGbnf(benchmark::State& state) {
  struct Case {
    const char* grammar;
    const char* text;
  };
  static const Case kCases[] = {
      {kJsonGbnf, "{\"name\": \"Ada Lovel"},  // inside a string, nested in a rule
      {kJsonGbnf, "{\"a\": [1, {\"b\": "},    // before a value: a call per kind of value
      {kArithmeticGbnf, "(12+"},              // before a factor, two rules deep
      {kGreetingGbnf, "Hello, Ad"},           // no recursion: one automaton
  };
  const Case& c = kCases[state.range(1)];
  TimeMasksAfter(state, Grammar::FromGbnf(c.grammar), c.text, "");
}
BENCHMARK(BM_MaskGbnf)->ArgsProduct({{0, 1}, {0, 1, 2, 3}})->Unit(benchmark::kMillisecond);

// Compiling a grammar, on the thread that takes the request.
void BM_CompileGbnf(benchmark::State& state) {
  static const char* const kGrammars[] = {kJsonGbnf, kArithmeticGbnf, kGreetingGbnf};
  const char* grammar = kGrammars[state.range(0)];
  for (auto _ : state) benchmark::DoNotOptimize(Grammar::FromGbnf(grammar).ok());
}
BENCHMARK(BM_CompileGbnf)->DenseRange(0, 2)->Unit(benchmark::kMillisecond);

// Tool calls (chat tool_choice MODE_REQUIRED, and a call begun under MODE_AUTO): ChatML's
// tags around a call object whose arguments are each tool's JSON Schema, as the worker
// compiles them. range(1) picks the text so far.
constexpr const char* kToolParameters[] = {
    R"({"type": "object", "properties": {"city": {"type": "string"}, "unit": {"enum": ["C",
        "F"]}}, "required": ["city"]})",
    R"({"type": "object", "properties": {"query": {"type": "string", "maxLength": 200},
        "limit": {"type": "integer", "minimum": 1, "maximum": 50}}, "required": ["query"]})",
    R"({"type": "object", "properties": {"to": {"type": "string", "format": "email"},
        "subject": {"type": "string"}, "body": {"type": "string"}},
        "required": ["to", "subject", "body"]})"};

absl::StatusOr<std::shared_ptr<const Grammar>> ToolCallGrammar() {
  std::vector<tokenizer::ChatTool> tools;
  std::vector<Grammar::JsonRule> rules;
  const char* const names[] = {"get_weather", "search", "send_email"};
  for (size_t i = 0; i < 3; ++i) {
    tools.push_back({.name = names[i], .parameters = kToolParameters[i]});
    auto schema = Grammar::FromSchema(kToolParameters[i]);
    if (!schema.ok()) return schema.status();
    rules.push_back({tokenizer::ToolArgumentsRule(i), *schema});
  }
  return Grammar::FromGbnf(tokenizer::ToolCallsGbnf(tokenizer::ChatFormat::kChatMl, tools, ""),
                           rules);
}

void BM_MaskToolCall(benchmark::State& state) {
  static const char* const kTexts[] = {
      "",                                                                        // the opening tag
      "<tool_call>\n{\"name\": \"",                                              // which tool
      "<tool_call>\n{\"name\": \"search\", \"arguments\": {\"query\": \"best ",  // a string
      "<tool_call>\n{\"name\": \"search\", \"arguments\": {\"query\": \"x\", ",  // a key
  };
  TimeMasksAfter(state, ToolCallGrammar(), kTexts[state.range(1)], "");
}
BENCHMARK(BM_MaskToolCall)->ArgsProduct({{0, 1}, {0, 1, 2, 3}})->Unit(benchmark::kMillisecond);

// Compiling three tools' call grammar: per request with tools (MODE_AUTO and MODE_REQUIRED).
void BM_CompileToolCalls(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(ToolCallGrammar().ok());
}
BENCHMARK(BM_CompileToolCalls)->Unit(benchmark::kMillisecond);

// The same grammar found in the worker's cache (a request that offers the tools an earlier
// one did): the key is built from the tools' names and parameters, then looked up.
void BM_CachedToolCalls(benchmark::State& state) {
  GrammarCache cache(256, size_t{16} << 20);
  const char* const names[] = {"get_weather", "search", "send_email"};
  const auto key = [&] {
    GrammarKey key("tool_calls");
    for (size_t i = 0; i < 3; ++i) key.Add(names[i]).Add(kToolParameters[i]);
    return key.key();
  };
  if (!cache.Get(key(), ToolCallGrammar).ok()) state.SkipWithError("tools do not compile");
  for (auto _ : state) benchmark::DoNotOptimize(cache.Get(key(), ToolCallGrammar).ok());
  if (cache.counts().misses != 1) state.SkipWithError("the cache missed");
}
BENCHMARK(BM_CachedToolCalls)->Unit(benchmark::kMicrosecond);

void BM_BuildTrie(benchmark::State& state) {
  const std::vector<std::string> bytes = TokenBytes(VocabularyOf(state.range(0)));
  if (bytes.empty()) {
    state.SkipWithError("no vocabulary under --shared");
    return;
  }
  for (auto _ : state) {
    const TokenTrie trie(bytes);
    benchmark::DoNotOptimize(trie.num_nodes());
  }
}
BENCHMARK(BM_BuildTrie)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace ringserve::grammar

int main(int argc, char** argv) {
  ringserve::bench::TakeSharedFlag(&argc, argv, &ringserve::grammar::g_shared);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
