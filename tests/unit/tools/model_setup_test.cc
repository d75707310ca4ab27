// tools/common/model_setup: the --attention and --step-attention values.
#include "tools/common/model_setup.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ringserve::tools {
namespace {

using kernels::AttentionKernel;
using ::testing::HasSubstr;

TEST(ParseAttentionKernelTest, ReadsTheNamesTheBackendsGive) {
  for (const AttentionKernel kernel : {AttentionKernel::kSimt, AttentionKernel::kTensorCore}) {
    const auto parsed = ParseAttentionKernel(kernels::AttentionKernelName(kernel), "attention");
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(*parsed, kernel);
  }
  EXPECT_EQ(kernels::AttentionKernelName(AttentionKernel::kTensorCore), "tensor-core");
}

TEST(ParseAttentionKernelTest, RefusesOtherNamesNamingTheFlag) {
  for (const char* name : {"", "SIMT", "tensor_core", "tc", "simt "}) {
    const auto parsed = ParseAttentionKernel(name, "step-attention");
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << name;
    EXPECT_THAT(parsed.status().message(), HasSubstr("--step-attention: expected simt or "
                                                     "tensor-core, got '" +
                                                     std::string(name) + "'"));
  }
}

TEST(OpenModelTest, RefusesAnUnknownAttentionKernel) {
  ModelFlags flags;
  flags.dummy_weights = true;
  flags.preset = "tiny";
  flags.attention = "mma";
  const auto loaded = OpenModel(flags);
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(loaded.status().message(), HasSubstr("--attention:"));
}

// A worker started with --attention tensor-core on the CPU must fail at start, not serve
// with another kernel than the one asked for.
TEST(OpenModelTest, RefusesAKernelTheBackendDoesNotHave) {
  ModelFlags flags;
  flags.dummy_weights = true;
  flags.preset = "tiny";
  flags.device = "cpu";
  flags.attention = "tensor-core";
  const auto refused = OpenModel(flags);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.status().message(),
              HasSubstr("--attention: cpu has no tensor-core attention kernel"));
  flags.attention = "simt";
  const auto opened = OpenModel(flags);
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ((*opened).backend->attention_kernel(), AttentionKernel::kSimt);
}

}  // namespace
}  // namespace ringserve::tools
