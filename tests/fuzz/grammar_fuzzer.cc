// libFuzzer target for structured output: schemas come from any client, so compiling one
// must never crash or hang, and the matcher must keep its promises on any bytes. The first
// input byte picks the mode:
//   0: the rest is a JSON Schema: FromSchema answers OK or INVALID_ARGUMENT;
//   1: a schema, a NUL, then text: each byte the matcher refuses leaves it unchanged, and
//      after each byte it takes, some byte can follow unless the value is finished;
//   2: text for the any-object grammar: the same, and a complete text is valid JSON;
//   3: a regex, a NUL, then text: FromRegex answers OK or INVALID_ARGUMENT, and the matcher
//      keeps the same promises on the text;
//   4: a GBNF grammar, a NUL, then text: the same with FromGbnf;
//   5: a GBNF grammar, a NUL, a JSON Schema, a NUL, then text: the same with the schema as
//      the grammar's JSON rule "v" (tool calls' tags around their arguments).
// Every property failure aborts, so the fuzzer reports it as a crash.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "nlohmann/json.hpp"
#include "worker/grammar/matcher.h"

namespace ringserve::grammar {
namespace {

// Bytes checked for viability, each costing up to 256 trial copies.
constexpr size_t kMaxCheckedBytes = 256;

void Require(bool condition, const char* property) {
  if (condition) return;
  std::fprintf(stderr, "grammar_fuzzer: property failed: %s\n", property);
  std::abort();
}

bool CanContinue(const Matcher& matcher) {
  for (int byte = 0; byte < 256; ++byte) {
    Matcher copy = matcher;
    if (copy.Advance(static_cast<uint8_t>(byte))) return true;
  }
  return false;
}

void Walk(const std::shared_ptr<const Grammar>& grammar, std::string_view text) {
  Matcher matcher(grammar);
  for (size_t i = 0; i < text.size() && i < kMaxCheckedBytes; ++i) {
    const Matcher before = matcher;
    if (!matcher.Advance(static_cast<uint8_t>(text[i]))) {
      Require(matcher == before, "a refused byte leaves the matcher unchanged");
      continue;
    }
    Require(matcher.IsFinished() || CanContinue(matcher), "every prefix can be completed");
    Require(!matcher.IsFinished() || matcher.IsComplete(), "a finished value is complete");
    Require(matcher.MaskKey(16) == matcher.MaskKey(16), "mask keys are deterministic");
  }
}

}  // namespace
}  // namespace ringserve::grammar

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using ringserve::grammar::Grammar;
  using ringserve::grammar::Matcher;
  if (size == 0) return 0;
  const std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 6) {
    case 0: {
      auto grammar = Grammar::FromSchema(body);
      ringserve::grammar::Require(grammar.ok() || absl::IsInvalidArgument(grammar.status()),
                                  "a bad schema is INVALID_ARGUMENT");
      break;
    }
    case 1: {
      const size_t nul = body.find('\0');
      if (nul == std::string_view::npos) return 0;
      auto grammar = Grammar::FromSchema(body.substr(0, nul));
      if (grammar.ok()) ringserve::grammar::Walk(*grammar, body.substr(nul + 1));
      break;
    }
    case 3:
    case 4: {
      const size_t nul = body.find('\0');
      auto grammar = data[0] % 6 == 3 ? Grammar::FromRegex(body.substr(0, nul))
                                      : Grammar::FromGbnf(body.substr(0, nul));
      ringserve::grammar::Require(grammar.ok() || absl::IsInvalidArgument(grammar.status()),
                                  "a bad regex or grammar is INVALID_ARGUMENT");
      if (grammar.ok() && nul != std::string_view::npos) {
        ringserve::grammar::Walk(*grammar, body.substr(nul + 1));
      }
      break;
    }
    case 5: {
      const size_t first = body.find('\0');
      if (first == std::string_view::npos) return 0;
      const std::string_view rest = body.substr(first + 1);
      const size_t second = rest.find('\0');
      auto value = Grammar::FromSchema(rest.substr(0, second));
      if (!value.ok()) return 0;
      const std::vector<Grammar::JsonRule> rules = {{"v", *value}};
      auto grammar = Grammar::FromGbnf(body.substr(0, first), rules);
      ringserve::grammar::Require(grammar.ok() || absl::IsInvalidArgument(grammar.status()),
                                  "a bad grammar with JSON rules is INVALID_ARGUMENT");
      if (grammar.ok() && second != std::string_view::npos) {
        ringserve::grammar::Walk(*grammar, rest.substr(second + 1));
      }
      break;
    }
    case 2: {
      ringserve::grammar::Walk(Grammar::AnyObject(), body);
      Matcher matcher(Grammar::AnyObject());
      if (matcher.Advance(body) && matcher.IsComplete()) {
        ringserve::grammar::Require(nlohmann::json::accept(body), "a complete text is JSON");
      }
      break;
    }
  }
  return 0;
}
