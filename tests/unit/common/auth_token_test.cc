// Bearer tokens: the constant-time comparison, the "authorization" value, and the token
// file's format and errors.
#include "common/auth_token.h"

#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/scoped_temp_dir.h"

namespace ringserve {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(ConstantTimeEqualsTest, EqualOnlyForTheSameBytes) {
  EXPECT_TRUE(ConstantTimeEquals("", ""));
  EXPECT_TRUE(ConstantTimeEquals("s3cret-token", "s3cret-token"));
  EXPECT_FALSE(ConstantTimeEquals("s3cret-token", "x3cret-token"));  // first byte
  EXPECT_FALSE(ConstantTimeEquals("s3cret-token", "s3cret-tokex"));  // last byte
  EXPECT_FALSE(ConstantTimeEquals("s3cret-token", "s3cret-toke"));   // a prefix
  EXPECT_FALSE(ConstantTimeEquals("", "a"));
  EXPECT_FALSE(ConstantTimeEquals("a", ""));
  // Bytes the shorter string lacks compare as zero, yet a length mismatch is never equal.
  EXPECT_FALSE(ConstantTimeEquals(absl::string_view("ab\0", 3), "ab"));
  // Every bit of every byte counts.
  const std::string base(64, 'k');
  for (size_t i = 0; i < base.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string other = base;
      other[i] = static_cast<char>(other[i] ^ (1 << bit));
      EXPECT_FALSE(ConstantTimeEquals(base, other)) << "byte " << i << " bit " << bit;
    }
  }
}

TEST(BearerTokenTest, TakesTheTokenOfTheBearerSchemeOnly) {
  EXPECT_EQ(BearerToken("Bearer abc"), "abc");
  EXPECT_EQ(BearerToken("bearer abc"), "abc");  // RFC 7235: the scheme ignores case
  EXPECT_EQ(BearerToken("BEARER  abc "), "abc");
  EXPECT_EQ(BearerToken("abc"), std::nullopt);
  EXPECT_EQ(BearerToken("Basic abc"), std::nullopt);
  EXPECT_EQ(BearerToken("Bearer "), std::nullopt);
  EXPECT_EQ(BearerToken(""), std::nullopt);
}

TEST(TokenSetTest, OneTokenPerLineWithCommentsAndBlankLines) {
  auto set = TokenSet::Parse("# clients\n  alpha-1 \n\nbeta-2\r\n# retired: gamma\n", "test");
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(set->size(), 2);
  EXPECT_EQ(set->Find("alpha-1"), 0);
  EXPECT_EQ(set->Find("beta-2"), 1);
  EXPECT_EQ(set->Find("gamma"), -1);
  EXPECT_EQ(set->Find("alpha-"), -1);
  EXPECT_EQ(set->Find(""), -1);
  EXPECT_TRUE(TokenSet().empty());
}

TEST(TokenSetTest, RefusesAFileWithoutTokensOrWithUnsendableOnesWithoutEchoingThem) {
  auto none = TokenSet::Parse("# only a comment\n\n", "tokens.txt");
  EXPECT_EQ(none.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(none.status().message(), HasSubstr("tokens.txt holds no token"));
  auto spaced = TokenSet::Parse("ok\nhas secret space\n", "tokens.txt");
  EXPECT_EQ(spaced.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(spaced.status().message(), HasSubstr("line 2"));
  EXPECT_THAT(spaced.status().message(), Not(HasSubstr("secret")));
  EXPECT_FALSE(TokenSet::Parse("caf\xc3\xa9\n", "t").ok());
}

TEST(TokenSetTest, FromFileNamesAMissingFile) {
  auto missing = TokenSet::FromFile("/nonexistent/ringserve-tokens");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("/nonexistent/ringserve-tokens"));

  const ringserve::testing::ScopedTempDir dir;
  const std::string path = dir.File("tokens");
  std::ofstream(path) << "first\nsecond\n";
  auto set = TokenSet::FromFile(path);
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(set->Find("second"), 1);
}

}  // namespace
}  // namespace ringserve
