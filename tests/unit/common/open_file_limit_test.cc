// RaiseOpenFileLimit on this process's own limit: raised to the hard limit or the cap, and
// never lowered.
#include "common/open_file_limit.h"

#include <sys/resource.h>

#include "gtest/gtest.h"

namespace ringserve {
namespace {

class OpenFileLimitTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &saved_), 0); }
  void TearDown() override { setrlimit(RLIMIT_NOFILE, &saved_); }

  static rlim_t Soft() {
    rlimit limit{};
    getrlimit(RLIMIT_NOFILE, &limit);
    return limit.rlim_cur;
  }
  // Lowers the soft limit (which needs no privilege).
  void SetSoft(rlim_t soft) {
    rlimit limit = saved_;
    limit.rlim_cur = soft;
    ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &limit), 0);
  }

  rlimit saved_{};
};

TEST_F(OpenFileLimitTest, RaisesTheSoftLimitToTheHardOneOrTheCap) {
  if (saved_.rlim_max != RLIM_INFINITY && saved_.rlim_max < 512) {
    GTEST_SKIP() << "a hard limit under 512 leaves nothing to raise";
  }
  SetSoft(256);
  absl::StatusOr<uint64_t> capped = RaiseOpenFileLimit(/*cap=*/400);
  ASSERT_TRUE(capped.ok()) << capped.status();
  EXPECT_EQ(*capped, 400u);
  EXPECT_EQ(Soft(), 400u);
  absl::StatusOr<uint64_t> raised = RaiseOpenFileLimit();
  ASSERT_TRUE(raised.ok()) << raised.status();
  const uint64_t expected =
      saved_.rlim_max == RLIM_INFINITY ? (1u << 20) : std::min<uint64_t>(saved_.rlim_max, 1u << 20);
  EXPECT_EQ(*raised, expected);
  EXPECT_EQ(Soft(), expected);
}

TEST_F(OpenFileLimitTest, AHigherSoftLimitIsLeftAlone) {
  SetSoft(300);
  absl::StatusOr<uint64_t> kept = RaiseOpenFileLimit(/*cap=*/100);
  ASSERT_TRUE(kept.ok()) << kept.status();
  EXPECT_EQ(*kept, 300u);
  EXPECT_EQ(Soft(), 300u);
}

}  // namespace
}  // namespace ringserve
