#include "worker/grammar/regex.h"

#include <gtest/gtest.h>

#include <bitset>
#include <cstdint>
#include <random>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "worker/grammar/utf8_sequences.h"

namespace ringserve::grammar {
namespace {

using Dfa = std::shared_ptr<const RegexDfa>;

std::bitset<256> AllBytes() { return std::bitset<256>().set(); }

std::bitset<256> PrintableAscii() {
  std::bitset<256> bytes;
  for (int b = 0x20; b < 0x7F; ++b) bytes.set(static_cast<size_t>(b));
  return bytes;
}

Dfa Compile(std::string_view pattern, const std::bitset<256>& allowed = AllBytes()) {
  auto dfa = RegexDfa::Compile(pattern, allowed);
  EXPECT_TRUE(dfa.ok()) << dfa.status() << " for " << pattern;
  return dfa.ok() ? *dfa : nullptr;
}

// The state after `text`, kDead once a byte is refused.
int32_t Run(const RegexDfa& dfa, std::string_view text) {
  int32_t state = RegexDfa::kStart;
  for (const char c : text) {
    state = dfa.Next(state, static_cast<uint8_t>(c));
    if (state == RegexDfa::kDead) return state;
  }
  return state;
}

bool Matches(const RegexDfa& dfa, std::string_view text) {
  const int32_t state = Run(dfa, text);
  return state != RegexDfa::kDead && dfa.Accepting(state);
}

struct Case {
  std::string pattern;
  std::vector<std::string> matches;
  std::vector<std::string> misses;
};

TEST(RegexTest, MatchesWholeTextsOfTheSyntax) {
  const std::vector<Case> cases = {
      {"abc", {"abc"}, {"", "ab", "abcd", "xabc"}},
      {"^abc$", {"abc"}, {"ab", "abcc"}},
      {"\\Aab\\z", {"ab"}, {"a"}},
      {"a|bc|", {"a", "bc", ""}, {"b", "abc"}},
      {"a*b+c?", {"b", "aabbb", "abc", "bc"}, {"", "a", "abcc", "ac"}},
      {"(ab)+", {"ab", "abab"}, {"", "aba"}},
      {"(?:ab|cd){2,3}", {"abcd", "cdcdab", "ababab"}, {"ab", "abababab"}},
      {"(?<year>\\d{4})-(?P<month>\\d\\d)", {"2026-12"}, {"26-12", "2026-1"}},
      {"x{3}", {"xxx"}, {"xx", "xxxx"}},
      {"x{2,}", {"xx", "xxxxxx"}, {"x"}},
      {"x{,2}", {"", "x", "xx"}, {"xxx"}},
      {"x{0}y", {"y"}, {"xy"}},
      {"a{1,2}?b*?", {"a", "aab"}, {"b"}},
      {"[a-c0-2_]+", {"a1_c", "b"}, {"d", "3", ""}},
      {"[^a-c]", {"d", "日", "\n"}, {"a", "ab", ""}},
      {"[]a]", {"]", "a"}, {"b"}},
      {"[a-]", {"a", "-"}, {"b"}},
      {"[\\]\\-\\\\]", {"]", "-", "\\"}, {"a"}},
      {"\\d\\D\\w\\W\\s\\S", {"1a_ \tx", "9-z.\u3000y"}, {"a1_ \tx"}},
      {"[\\d.]+", {"3.14"}, {"3,14"}},
      {"[\\s\\S]", {"\n", "x", "é"}, {""}},
      {".", {"a", "é", "日", "😀"}, {"\n", "\r", "\u2028", ""}},
      {"\\.\\*\\+\\?\\(\\)\\[\\]\\{\\}\\|\\^\\$\\/", {".*+?()[]{}|^$/"}, {}},
      {"\\n\\r\\t\\f\\v\\0", {std::string("\n\r\t\f\v\0", 6)}, {}},
      {"\\x41\\u00e9\\u{1F600}\\uD83D\\uDE00", {"Aé😀😀"}, {}},
      {"[\\b]", {"\b"}, {"b"}},
      {"café|日本", {"café", "日本"}, {"cafe", "日"}},
      {"[α-ω]+", {"αβγ", "ω"}, {"a", "Α"}},
      {"a{", {"a{"}, {"a"}},
      {"a{x}", {"a{x}"}, {}},
      {"a}]", {"a}]"}, {}},
      {"", {""}, {"a"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.pattern);
    const Dfa dfa = Compile(c.pattern);
    if (dfa == nullptr) continue;
    for (const std::string& text : c.matches) EXPECT_TRUE(Matches(*dfa, text)) << text;
    for (const std::string& text : c.misses) EXPECT_FALSE(Matches(*dfa, text)) << text;
  }
}

TEST(RegexTest, RefusesWhatItDoesNotSupportByName) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"a(?=b)", "lookaround"},
      {"a(?!b)", "lookaround"},
      {"(?<=a)b", "lookaround"},
      {"(?<!a)b", "lookaround"},
      {"(a)\\1", "backreference"},
      {"(?P<x>a)(?P=x)", "backreference"},
      {"\\k<x>", "backreference"},
      {"\\bword\\b", "word boundaries"},
      {"\\p{L}", "Unicode property"},
      {"(?i)abc", "group kind"},
      {"a*+", "possessive"},
      {"a**", "quantifier follows a quantifier"},
      {"*a", "nothing to repeat"},
      {"a|?", "nothing to repeat"},
      {"{2}", "nothing to repeat"},
      {"a^b", "anchors"},
      {"a$b", "anchors"},
      {"(^a)", "anchors"},
      {"(ab", "missing ')'"},
      {"ab)", "unbalanced ')'"},
      {"[ab", "unterminated character class"},
      {"[z-a]", "out of order"},
      {"[\\d-z]", "single characters"},
      {"a{3,2}", "minimum exceeds its maximum"},
      {"a{10001}", "above 10000"},
      {"\\q", "unknown escape"},
      {"\\", "trailing backslash"},
      {"\\x4", "hexadecimal"},
      {"\\uD800", "lone surrogate"},
      {"\\u{110000}", "code point"},
      {"\\01", "octal"},
      {std::string("\xC3\x28", 2), "UTF-8"},
      {std::string("\xED\xA0\x80", 3), "UTF-8"},
      {"[^\\s\\S]", "matches no text"},
      {"(?<1x>a)", "group name"},
  };
  for (const auto& [pattern, message] : cases) {
    SCOPED_TRACE(pattern);
    const auto dfa = RegexDfa::Compile(pattern, AllBytes());
    ASSERT_FALSE(dfa.ok());
    EXPECT_EQ(dfa.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(dfa.status().message().find(message), std::string_view::npos)
        << dfa.status().message();
  }
}

TEST(RegexTest, RefusesPatternsWhoseAutomatonWouldBeTooLarge) {
  // The n-th last letter is an 'a': a DFA needs 2^n states.
  auto blowup = RegexDfa::Compile("(a|b)*a(a|b){20}", AllBytes());
  ASSERT_FALSE(blowup.ok());
  EXPECT_NE(blowup.status().message().find("too complex"), std::string_view::npos);
  auto nested = RegexDfa::Compile("((ab){1000}){1000}", AllBytes());
  ASSERT_FALSE(nested.ok());
  EXPECT_NE(nested.status().message().find("too complex"), std::string_view::npos);
  auto long_pattern =
      RegexDfa::Compile(std::string(RegexDfa::kMaxPatternBytes + 1, 'a'), AllBytes());
  ASSERT_FALSE(long_pattern.ok());
  EXPECT_NE(long_pattern.status().message().find("over the limit"), std::string_view::npos);
  // Large but linear automata compile.
  const Dfa counted = Compile("[0-9a-f]{1000}");
  ASSERT_NE(counted, nullptr);
  EXPECT_TRUE(Matches(*counted, std::string(1000, 'e')));
  EXPECT_FALSE(Matches(*counted, std::string(999, 'e')));
  const Dfa long_text = Compile(".{0,2000}");  // bounded free text
  ASSERT_NE(long_text, nullptr);
  EXPECT_TRUE(Matches(*long_text, std::string(2000, 'x')));
  EXPECT_FALSE(Matches(*long_text, std::string(2001, 'x')));
  // A count the parser takes but the automaton cannot hold.
  auto huge = RegexDfa::Compile(".{0,9000}", AllBytes());
  ASSERT_FALSE(huge.ok());
  EXPECT_NE(huge.status().message().find("too complex"), std::string_view::npos);
}

TEST(RegexTest, LeavesOutBytesThatAreNotAllowed) {
  std::bitset<256> no_quote = AllBytes();
  no_quote.reset('"');
  const Dfa dfa = Compile("[a\"]+b?", no_quote);
  ASSERT_NE(dfa, nullptr);
  EXPECT_TRUE(Matches(*dfa, "aab"));
  EXPECT_EQ(dfa->Next(RegexDfa::kStart, '"'), RegexDfa::kDead);
  const auto required = RegexDfa::Compile("a\"b", no_quote);
  ASSERT_FALSE(required.ok());
  EXPECT_NE(required.status().message().find("matches no text"), std::string_view::npos);
}

TEST(RegexTest, RefusesBytesThatLeadNowhereAndKnowsWhenTheTextMustEnd) {
  const Dfa dfa = Compile("ab|ac|(x[0-9]?)");
  ASSERT_NE(dfa, nullptr);
  EXPECT_EQ(dfa->FirstBytes().count(), 2U);  // 'a' and 'x'
  const int32_t a = dfa->Next(RegexDfa::kStart, 'a');
  ASSERT_NE(a, RegexDfa::kDead);
  EXPECT_FALSE(dfa->Accepting(a));
  EXPECT_EQ(dfa->Next(a, 'd'), RegexDfa::kDead);
  const int32_t ab = dfa->Next(a, 'b');
  EXPECT_TRUE(dfa->Accepting(ab));
  EXPECT_FALSE(dfa->CanContinue(ab));
  const int32_t x = dfa->Next(RegexDfa::kStart, 'x');
  EXPECT_TRUE(dfa->Accepting(x));
  EXPECT_TRUE(dfa->CanContinue(x));
  EXPECT_FALSE(dfa->CanContinue(dfa->Next(x, '7')));
}

// Every byte string the automaton takes is valid UTF-8 when the pattern allows any
// character: no text ever ends with, or holds, half a character or a surrogate.
TEST(RegexTest, TakesOnlyValidUtf8) {
  const Dfa dfa = Compile("[^a]*");
  ASSERT_NE(dfa, nullptr);
  std::mt19937 rng(7);
  int accepted = 0;
  for (int trial = 0; trial < 20000; ++trial) {
    std::string text;
    int32_t state = RegexDfa::kStart;
    const int length = 1 + static_cast<int>(rng() % 6);
    for (int i = 0; i < length && state != RegexDfa::kDead; ++i) {
      const auto byte = static_cast<uint8_t>(rng() % 2 == 0 ? rng() % 256 : 0x80 + rng() % 0x40);
      state = dfa->Next(state, byte);
      text.push_back(static_cast<char>(byte));
    }
    if (state == RegexDfa::kDead || !dfa->Accepting(state)) continue;
    ++accepted;
    // Decode strictly: shortest forms, no surrogates, nothing past U+10FFFF.
    size_t i = 0;
    while (i < text.size()) {
      const auto lead = static_cast<uint8_t>(text[i]);
      int n = lead < 0x80 ? 1 : lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
      ASSERT_FALSE(lead >= 0x80 && lead < 0xC2) << "bad lead byte in accepted text";
      ASSERT_LE(lead, 0xF4);
      ASSERT_LE(i + static_cast<size_t>(n), text.size());
      uint32_t cp = n == 1 ? lead : lead & (0x7F >> n);
      for (int k = 1; k < n; ++k) {
        const auto b = static_cast<uint8_t>(text[i + static_cast<size_t>(k)]);
        ASSERT_EQ(b & 0xC0, 0x80);
        cp = (cp << 6) | (b & 0x3F);
      }
      static constexpr uint32_t kShortest[] = {0, 0, 0x80, 0x800, 0x10000};
      ASSERT_GE(cp, kShortest[n]);
      ASSERT_LE(cp, kMaxCodePoint);
      ASSERT_FALSE(cp >= 0xD800 && cp <= 0xDFFF);
      ASSERT_NE(cp, static_cast<uint32_t>('a'));
      i += static_cast<size_t>(n);
    }
  }
  EXPECT_GT(accepted, 100);
}

TEST(Utf8SequencesTest, EncodeEachCodePointOfTheSetExactlyOnce) {
  const CodePointSet set = [] {
    // Ends off the byte boundaries, so that ranges must split.
    CodePointSet s = CodePointSet::Range(0x7A, 0x905);
    s.Add(CodePointSet::Range(0xD012, 0xE0F3));  // across the surrogates
    s.Add(CodePointSet::Range(0xFFF3, 0x10107));
    s.Add(CodePointSet::Of(kMaxCodePoint));
    return s;
  }();
  const auto sequences = Utf8Sequences(set);
  const auto encode = [](uint32_t c) {
    std::string out;
    if (c < 0x80) {
      out += static_cast<char>(c);
    } else if (c < 0x800) {
      out += static_cast<char>(0xC0 | (c >> 6));
      out += static_cast<char>(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
      out += static_cast<char>(0xE0 | (c >> 12));
      out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (c & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (c >> 18));
      out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (c & 0x3F));
    }
    return out;
  };
  const auto count = [&](const std::string& bytes) {
    int n = 0;
    for (const auto& sequence : sequences) {
      if (sequence.size() != bytes.size()) continue;
      bool in = true;
      for (size_t i = 0; i < bytes.size(); ++i) {
        const auto b = static_cast<uint8_t>(bytes[i]);
        in = in && b >= sequence[i].first && b <= sequence[i].last;
      }
      n += in ? 1 : 0;
    }
    return n;
  };
  for (uint32_t c = 0; c <= kMaxCodePoint; c += (c < 0x11000 ? 1 : 997)) {
    if (c >= 0xD800 && c <= 0xDFFF) continue;
    const bool member = (c >= 0x7A && c <= 0x905) || (c >= 0xD012 && c <= 0xE0F3) ||
                        (c >= 0xFFF3 && c <= 0x10107) || c == kMaxCodePoint;
    ASSERT_EQ(count(encode(c)), member ? 1 : 0) << std::hex << c;
  }
  EXPECT_EQ(CodePointSet::All().Complement().ranges().size(), 0U);
  EXPECT_EQ(CodePointSet::Range(0xD800, 0xDFFF).ranges().size(), 0U);
}

// Against an independent implementation: std::regex (ECMAScript) on random ASCII texts,
// and texts sampled from the automaton.
TEST(RegexTest, AgreesWithStdRegexOnRandomTexts) {
  const std::vector<std::string> patterns = {
      "(ab|a)*b?",
      "[a-c]{2,4}d*",
      "a(b|c)*d|e+",
      "(a|ab)(c|bcd)(d*)",
      "x?y?z?(xy|yz)+",
      "[^ab]+a",
      "(a*b*)*c",
      "\\d{1,3}(\\.\\d{1,3}){3}",
      "[\\w-]+@[\\w-]+\\.[a-z]{2,3}",
      "(0|[1-9]\\d*)(\\.\\d+)?",
      "a{2}|b{1,}|c{0,2}",
      ".a.",
  };
  const std::string alphabet = "abcdexyz0129.-@_ ";
  std::mt19937 rng(11);
  for (const std::string& pattern : patterns) {
    SCOPED_TRACE(pattern);
    const Dfa dfa = Compile(pattern, PrintableAscii());
    ASSERT_NE(dfa, nullptr);
    const std::regex oracle(pattern, std::regex::ECMAScript);
    for (int trial = 0; trial < 3000; ++trial) {
      std::string text;
      const size_t length = rng() % 10;
      for (size_t i = 0; i < length; ++i) text += alphabet[rng() % alphabet.size()];
      const bool expected = std::regex_match(text, oracle);
      ASSERT_EQ(Matches(*dfa, text), expected) << "text: " << text;
    }
    // Walks of the automaton: every text it can end on is a match, and every state it
    // reaches can still reach one.
    for (int walk = 0; walk < 300; ++walk) {
      std::string text;
      int32_t state = RegexDfa::kStart;
      for (int step = 0; step < 40; ++step) {
        ASSERT_TRUE(dfa->Accepting(state) || dfa->CanContinue(state));
        if (dfa->Accepting(state) && (!dfa->CanContinue(state) || rng() % 4 == 0)) break;
        std::vector<uint8_t> next;
        for (int b = 0; b < 256; ++b) {
          if (dfa->Next(state, static_cast<uint8_t>(b)) != RegexDfa::kDead) {
            next.push_back(static_cast<uint8_t>(b));
          }
        }
        ASSERT_FALSE(next.empty());
        const uint8_t byte = next[rng() % next.size()];
        ASSERT_TRUE(PrintableAscii()[byte]);
        text += static_cast<char>(byte);
        state = dfa->Next(state, byte);
      }
      if (dfa->Accepting(state)) {
        EXPECT_TRUE(std::regex_match(text, oracle)) << text;
      }
    }
  }
}

}  // namespace
}  // namespace ringserve::grammar
