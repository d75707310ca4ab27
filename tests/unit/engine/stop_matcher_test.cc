#include "worker/engine/stop_matcher.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace ringserve::engine {
namespace {

// Feeds `pieces` and returns everything emitted, flushing when no stop matched.
std::string Feed(StopMatcher& m, const std::vector<std::string>& pieces) {
  std::string out;
  for (const std::string& p : pieces) out += m.Push(p);
  if (!m.matched()) out += m.Flush();
  return out;
}

TEST(StopMatcherTest, WithoutStopsEverythingPassesThrough) {
  StopMatcher m({});
  EXPECT_EQ(m.Push("hello "), "hello ");
  EXPECT_EQ(m.Push("world"), "world");
  EXPECT_FALSE(m.matched());
}

TEST(StopMatcherTest, MatchAcrossTokenBoundariesIsNotEmitted) {
  StopMatcher m({"###"});
  EXPECT_EQ(m.Push("a#"), "a");    // "#" may start the stop string: held back
  EXPECT_EQ(m.Push("#"), "");      // "##" still may
  EXPECT_EQ(m.Push("#tail"), "");  // match: the text before it was already out
  ASSERT_TRUE(m.matched());
  EXPECT_EQ(*m.matched(), "###");
  EXPECT_EQ(m.Push("more"), "");
}

TEST(StopMatcherTest, AnIncludedMatchEndsTheText) {
  StopMatcher m({"</a>", "##"}, /*include_match=*/true);
  EXPECT_EQ(m.Push("x<"), "x");        // "<" may start "</a>"
  EXPECT_EQ(m.Push("/a"), "");         // held
  EXPECT_EQ(m.Push(">tail"), "</a>");  // the match, not what follows it
  ASSERT_TRUE(m.matched());
  EXPECT_EQ(m.Push("more"), "");
  EXPECT_EQ(m.Flush(), "");
  StopMatcher whole({"ab"}, /*include_match=*/true);
  EXPECT_EQ(whole.Push("xaby"), "xab");  // within one push
}

TEST(StopMatcherTest, HeldTextIsReleasedWhenItCannotMatch) {
  StopMatcher m({"END"});
  EXPECT_EQ(m.Push("the E"), "the ");
  EXPECT_EQ(m.Push("N"), "");
  EXPECT_EQ(m.Push("x"), "ENx");
  EXPECT_FALSE(m.matched());
}

TEST(StopMatcherTest, FlushReleasesAPartialMatchAtTheEnd) {
  StopMatcher m({"stop"});
  EXPECT_EQ(Feed(m, {"we st"}), "we st");
}

TEST(StopMatcherTest, EarliestMatchWinsThenTheLongest) {
  StopMatcher a({"cd", "bc"});
  EXPECT_EQ(Feed(a, {"abcd"}), "a");
  EXPECT_EQ(*a.matched(), "bc");
  StopMatcher b({"ab", "abc"});
  EXPECT_EQ(Feed(b, {"xabc"}), "x");
  EXPECT_EQ(*b.matched(), "abc");
}

TEST(StopMatcherTest, OverlappingPrefixesAreHeldUntilResolved) {
  StopMatcher m({"aab"});
  EXPECT_EQ(m.Push("a"), "");
  EXPECT_EQ(m.Push("a"), "");
  EXPECT_EQ(m.Push("a"), "a");  // "aaa": only the last "aa" can still start "aab"
  EXPECT_EQ(m.Push("b"), "");
  EXPECT_EQ(*m.matched(), "aab");
}

TEST(StopMatcherTest, MultiByteStopStrings) {
  StopMatcher m({"\xE2\x80\x94"});  // an em dash, split over two pushes
  EXPECT_EQ(m.Push("x\xE2"), "x");
  EXPECT_EQ(m.Push("\x80\x94y"), "");
  EXPECT_TRUE(m.matched());
}

}  // namespace
}  // namespace ringserve::engine
