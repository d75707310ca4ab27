// Prompt-lookup drafts: the longest recurring suffix, its latest earlier occurrence, the
// limits.
#include "worker/engine/ngram_draft.h"

#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ringserve::engine {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

std::vector<int32_t> Draft(const std::vector<int32_t>& tokens, int32_t max_tokens,
                           int32_t max_ngram = 3, int32_t min_ngram = 1) {
  std::vector<int32_t> draft = {99, 99};  // replaced, never appended to
  ProposeNgramDraft(
      tokens, {.max_tokens = max_tokens, .max_ngram = max_ngram, .min_ngram = min_ngram}, &draft);
  return draft;
}

TEST(NgramDraftTest, NothingRecursNothingIsProposed) {
  EXPECT_THAT(Draft({}, 4), IsEmpty());
  EXPECT_THAT(Draft({5}, 4), IsEmpty());
  EXPECT_THAT(Draft({1, 2, 3, 4, 5}, 4), IsEmpty());
  EXPECT_THAT(Draft({1, 2, 1, 2}, 0), IsEmpty());  // max_tokens 0: off
}

TEST(NgramDraftTest, TheLongestRecurringSuffixWins) {
  //                       [1 2 3] -> 4 9 2          [2 3] -> 8         suffix
  const std::vector<int32_t> tokens = {5, 1, 2, 3, 4, 9, 2, 3, 8, 1, 2, 3};
  EXPECT_THAT(Draft(tokens, 3), ElementsAre(4, 9, 2));
  EXPECT_THAT(Draft(tokens, 3, /*max_ngram=*/2), ElementsAre(8, 1, 2));
}

TEST(NgramDraftTest, TheLatestEarlierOccurrenceWinsAmongEqualLengths) {
  const std::vector<int32_t> tokens = {7, 1, 5, 7, 1, 6, 7, 1};
  EXPECT_THAT(Draft(tokens, 2), ElementsAre(6, 7));
  EXPECT_THAT(Draft(tokens, 8), ElementsAre(6, 7, 1));  // what follows, up to the end
}

TEST(NgramDraftTest, ARunProposesWhatFollowsItsLatestOccurrence) {
  EXPECT_THAT(Draft({4, 4, 4}, 5), ElementsAre(4));
  EXPECT_THAT(Draft({3, 4, 3, 4, 3, 4}, 5), ElementsAre(3, 4));
}

TEST(NgramDraftTest, SuffixesShorterThanTheMinimumAreNotLookedUp) {
  const std::vector<int32_t> tokens = {1, 9, 2, 3, 9};  // only [9] recurs
  EXPECT_THAT(Draft(tokens, 3, 3, 1), ElementsAre(2, 3, 9));
  EXPECT_THAT(Draft(tokens, 3, 3, 2), IsEmpty());
}

}  // namespace
}  // namespace ringserve::engine
