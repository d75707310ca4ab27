// tools/common/byte_size: the sizes --kv-memory accepts. "1.5" used to be read as 1 byte and
// "1e30" converted out of range (undefined behaviour); both are refused, naming the flag.
#include "tools/common/byte_size.h"

#include <cstdint>
#include <limits>
#include <string>
#include <utility>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ringserve::tools {
namespace {

using ::testing::HasSubstr;

TEST(ByteSizeTest, ReadsWholeBytesAndNumbersWithAUnit) {
  const std::pair<const char*, int64_t> cases[] = {
      {"1073741824", int64_t{1} << 30},
      {"512MiB", int64_t{512} << 20},
      {"2GiB", int64_t{2} << 30},
      {"1.5GiB", int64_t{3} << 29},
      {"0.5KiB", 512},
      {"1TiB", int64_t{1} << 40},
      {"1GB", 1'000'000'000},
      {"2.5MB", 2'500'000},
      {"1KB", 1000},
      {"9223372036854775807", std::numeric_limits<int64_t>::max()},
      {"8388607TiB", (int64_t{8388607}) << 40},
  };
  for (const auto& [text, bytes] : cases) {
    const absl::StatusOr<int64_t> parsed = ParseByteSize(text, "kv-memory");
    ASSERT_TRUE(parsed.ok()) << text << ": " << parsed.status();
    EXPECT_EQ(*parsed, bytes) << text;
  }
}

TEST(ByteSizeTest, RefusesFractionsWithoutAUnitOverflowAndAnythingElseNamingFlagAndText) {
  for (const char* text : {"1.5",
                           "1e30",
                           "1e3MiB",
                           "inf",
                           "nan",
                           "-1",
                           "+1",
                           "-1GiB",
                           "0",
                           "0GiB",
                           "0.0001KiB",
                           "",
                           ".",
                           "GiB",
                           "1 GiB",
                           " 1",
                           "1gib",
                           "1GiBs",
                           "0x10",
                           "1.2.3MiB",
                           "9223372036854775808",
                           "9223372036854775807KiB",
                           "8388608TiB",
                           "9999999999999999999999GB"}) {
    const absl::StatusOr<int64_t> parsed = ParseByteSize(text, "kv-memory");
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_THAT(parsed.status().message(),
                HasSubstr("--kv-memory: '" + std::string(text) + "' is not a size"));
  }
}

TEST(ByteSizeTest, PlainDecimalsAreDigitsWithAtMostOnePoint) {
  for (const char* text : {"0", "12", "0.9", "1.", ".5"}) EXPECT_TRUE(IsPlainDecimal(text)) << text;
  for (const char* text : {"", ".", "1..2", "-1", "+1", "1e3", "inf", "0x1", " 1", "1 "}) {
    EXPECT_FALSE(IsPlainDecimal(text)) << text;
  }
}

}  // namespace
}  // namespace ringserve::tools
