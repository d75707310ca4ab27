// tools/common/arg_parser: integer flags with a range are refused outside it, by name, and
// keep their previous value.
#include "tools/common/arg_parser.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ringserve::tools {
namespace {

using ::testing::HasSubstr;

absl::Status ParseArgs(ArgParser& parser, std::vector<std::string> args) {
  std::vector<char*> argv = {const_cast<char*>("tool")};
  for (std::string& arg : args) argv.push_back(arg.data());
  return parser.Parse(static_cast<int>(argv.size()), argv.data());
}

TEST(ArgParserTest, IntegersOutsideTheirRangeAreRefusedByName) {
  int count = 7;
  int64_t port = 1;
  ArgParser parser;
  parser.AddInt("count", &count, "", {.min = 0});
  parser.AddInt("port", &port, "", {.min = 0, .max = 65535});
  const absl::Status negative = ParseArgs(parser, {"--count", "-1"});
  EXPECT_EQ(negative.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(negative.message(), HasSubstr("--count: must be at least 0, got -1"));
  EXPECT_EQ(count, 7);
  const absl::Status high = ParseArgs(parser, {"--port=65536"});
  EXPECT_THAT(high.message(), HasSubstr("--port: must be in [0, 65535], got 65536"));
  EXPECT_EQ(port, 1);
  ASSERT_TRUE(ParseArgs(parser, {"--count", "0", "--port", "65535"}).ok());
  EXPECT_EQ(count, 0);
  EXPECT_EQ(port, 65535);
}

TEST(ArgParserTest, IntegersWithoutARangeTakeAnyValueOfTheirType) {
  int64_t seed = 0;
  int offset = 0;
  ArgParser parser;
  parser.AddInt("seed", &seed, "");
  parser.AddInt("offset", &offset, "");
  ASSERT_TRUE(ParseArgs(parser, {"--seed", "-9223372036854775808", "--offset", "-5"}).ok());
  EXPECT_EQ(seed, std::numeric_limits<int64_t>::min());
  EXPECT_EQ(offset, -5);
  EXPECT_THAT(ParseArgs(parser, {"--offset", "2147483648"}).message(),
              HasSubstr("--offset: '2147483648' is not an integer"));
}

}  // namespace
}  // namespace ringserve::tools
