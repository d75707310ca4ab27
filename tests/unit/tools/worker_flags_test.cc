// ringserve-worker's flags (worker/server/worker_flags): --kv-memory's forms, and one rule
// for the numbers: never negative, and 0 only where --help says what it means. A negative
// --kv-blocks was ignored and a negative --drain-timeout-s or --min-step-ms accepted.
#include "worker/server/worker_flags.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ringserve::server {
namespace {

using ::testing::HasSubstr;

absl::Status ParseWorkerArgs(std::vector<std::string> args) {
  WorkerFlags flags;
  tools::ArgParser parser;
  flags.Register(parser);
  std::vector<char*> argv = {const_cast<char*>("ringserve-worker")};
  for (std::string& arg : args) argv.push_back(arg.data());
  return parser.Parse(static_cast<int>(argv.size()), argv.data());
}

TEST(WorkerFlagsTest, KvMemoryIsAShareUpToOneElseASize) {
  for (const auto& [text, share] : {std::pair{"0.9", 0.9}, {"1", 1.0}, {"0.25", 0.25}}) {
    const auto memory = ParseKvMemory(text);
    ASSERT_TRUE(memory.ok()) << text << ": " << memory.status();
    EXPECT_EQ(memory->fraction_of_free, share) << text;
    EXPECT_EQ(memory->bytes, 0u) << text;
  }
  for (const auto& [text, bytes] :
       {std::pair{"2GiB", size_t{2} << 30}, {"1.5GiB", size_t{3} << 29}, {"4096", size_t{4096}}}) {
    const auto memory = ParseKvMemory(text);
    ASSERT_TRUE(memory.ok()) << text << ": " << memory.status();
    EXPECT_EQ(memory->bytes, bytes) << text;
    EXPECT_EQ(memory->fraction_of_free, 0) << text;
  }
}

TEST(WorkerFlagsTest, KvMemoryRefusesBareFractionsAboveOneAndWhatIsNotASize) {
  for (const char* text : {"1.5", "0", "0.0", "-0.5", "1e30", "1e30GiB", "9223372036854775808",
                           "100000000000TiB", "lots", ""}) {
    const auto memory = ParseKvMemory(text);
    EXPECT_EQ(memory.status().code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_THAT(memory.status().message(), HasSubstr(absl::StrCat("--kv-memory: '", text, "'")));
  }
}

TEST(WorkerFlagsTest, KvMemoryDefaultsToOneGibOnTheCpuAndMostOfAGpu) {
  WorkerFlags flags;
  EXPECT_EQ(KvMemoryFor(flags)->bytes, size_t{1} << 30);
  flags.model.device = "cuda:0";
  EXPECT_EQ(KvMemoryFor(flags)->fraction_of_free, 0.9);
  flags.kv_memory = "1.5";
  EXPECT_EQ(KvMemoryFor(flags).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(WorkerFlagsTest, NumbersAreNeverNegativeAndZeroOnlyWhereHelpSaysWhatItMeans) {
  struct Case {
    const char* flag;
    bool zero_means_something;
  };
  const Case cases[] = {
      {"port", true},
      {"metrics-port", true},
      {"kv-blocks", true},
      {"drain-timeout-s", true},
      {"min-step-ms", true},
      {"threads", true},
      {"sampling-threads", true},
      {"block-size", false},
      {"max-seqs", false},
      {"max-sessions", false},
      {"session-ttl-s", false},
      {"max-queue", false},
      {"max-pending-tokens", false},
      {"max-batch-tokens", false},
  };
  WorkerFlags flags;
  tools::ArgParser parser;
  flags.Register(parser);
  const std::string help = parser.Help();
  for (const Case& c : cases) {
    const std::string flag = absl::StrCat("--", c.flag);
    const absl::Status negative = ParseWorkerArgs({flag, "-1"});
    EXPECT_EQ(negative.code(), absl::StatusCode::kInvalidArgument) << flag;
    EXPECT_THAT(negative.message(), HasSubstr(flag + ": must be")) << flag;
    const absl::Status zero = ParseWorkerArgs({flag, "0"});
    EXPECT_EQ(zero.ok(), c.zero_means_something) << flag << ": " << zero;
    if (c.zero_means_something) {
      const size_t line = help.find(flag + "  ");
      ASSERT_NE(line, std::string::npos) << flag;
      EXPECT_THAT(help.substr(line, help.find('\n', line) - line),
                  ::testing::ContainsRegex("(^|[^0-9])0([^0-9]|$)"))
          << flag;
    }
    EXPECT_TRUE(ParseWorkerArgs({flag, "1"}).ok()) << flag;
  }
  EXPECT_EQ(ParseWorkerArgs({"--sampling-threads", "257"}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(ParseWorkerArgs({"--port", "65536"}).message(), HasSubstr("--port: must be in"));
}

}  // namespace
}  // namespace ringserve::server
