// ringserve-run at the edge of the model's context (the tiny preset's 2048 tokens): work that
// fits runs, up to the last position; work beyond it is refused before the model runs, with
// a message naming the limit (it used to fail inside the forward pass with a message about
// KV blocks, and `logits` refused a sequence that filled the context exactly).
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/unit/tools/run_tool.h"

namespace ringserve::tools::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr int kContext = 2048;  // the tiny preset's max_seq_len

std::string Ids(int n) {
  std::string ids = "5";
  for (int i = 1; i < n; ++i) ids += ",5";
  return ids;
}

ToolRun RunOnTiny(const std::string& command, const std::string& args) {
  return RunTool("ringserve-run", command + " --dummy-weights --preset tiny --threads 1 " + args);
}

TEST(RunContextTest, GenerationUpToTheContextRunsAndBeyondItIsRefused) {
  const ToolRun fits =
      RunOnTiny("", "--json --ignore-eos --prompt-ids " + Ids(kContext - 8) + " --max-tokens 8");
  ASSERT_EQ(fits.exit_code, 0) << fits.err;
  EXPECT_EQ(nlohmann::json::parse(fits.out)["generated_ids"].size(), 8u);

  const ToolRun over = RunOnTiny("", "--prompt-ids " + Ids(kContext - 8) + " --max-tokens 9");
  EXPECT_EQ(over.exit_code, 2);
  EXPECT_THAT(over.err, HasSubstr("beyond the model's context of 2048 tokens"));
  EXPECT_THAT(over.err, Not(HasSubstr("blocks")));
}

TEST(RunContextTest, LogitsFillTheContextExactlyAndRefuseMore) {
  const ToolRun full = RunOnTiny("logits", "--prompt-ids " + Ids(kContext - 2) + " --generate 2");
  ASSERT_EQ(full.exit_code, 0) << full.err;
  EXPECT_EQ(nlohmann::json::parse(full.out)["logits"].size(), 3u);  // prefill + 2 passes

  const ToolRun over = RunOnTiny("logits", "--prompt-ids " + Ids(kContext - 2) + " --generate 3");
  EXPECT_EQ(over.exit_code, 2);
  EXPECT_THAT(over.err, HasSubstr("beyond the model's context of 2048 tokens"));
}

TEST(RunContextTest, StepBenchRefusesAContextBeyondTheModels) {
  const ToolRun over = RunOnTiny("bench",
                                 "--roofline=false --parallel none --decode-batch 1 "
                                 "--context 2046 --warmup-steps 1 --decode-steps 2");
  EXPECT_EQ(over.exit_code, 2);
  EXPECT_THAT(over.err, HasSubstr("must fit the model's context of 2048 tokens"));
}

// A prefix longer than the prompt was cut to it while the report kept the value asked for.
TEST(RunBenchFlagsTest, ASharedPrefixLongerThanThePromptIsRefused) {
  const ToolRun over = RunOnTiny("bench",
                                 "--roofline=false --parallel 1 --prompt-tokens 16 "
                                 "--gen-tokens 2 --shared-prefix 17");
  EXPECT_EQ(over.exit_code, 2);
  EXPECT_THAT(over.err, HasSubstr("--shared-prefix must be in [0, --prompt-tokens]"));
}

}  // namespace
}  // namespace ringserve::tools::testing
