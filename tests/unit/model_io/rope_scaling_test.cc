// Rope scaling against figures computed independently from transformers'
// _compute_yarn_parameters / get_mscale formulas (a Python transcription, float64).
#include "worker/model/rope_scaling.h"

#include <cmath>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ringserve::model {
namespace {

using ::testing::HasSubstr;

RopeScaling Yarn(float factor, int original) {
  RopeScaling s;
  s.type = RopeType::kYarn;
  s.factor = factor;
  s.original_max_position = original;
  return s;
}

void ExpectRelativelyNear(double got, double want, const char* what, int i) {
  EXPECT_NEAR(got, want, 1e-12 * want) << what << " pair " << i;
}

// Qwen2.5-7B with the YaRN setting its model card gives (factor 4 over 32768 positions):
// pairs below 23 keep their frequency, pairs above 40 are divided by 4, a ramp between.
TEST(RopeScalingTest, YarnFrequenciesOfQwen25) {
  const std::vector<double> inv = ScaledInverseFrequencies(Yarn(4, 32768), 1e6, 128);
  ASSERT_EQ(inv.size(), 64U);
  const std::pair<int, double> want[] = {
      {0, 1.0},
      {10, 0.1154781984689458},
      {20, 0.01333521432163324},
      {30, 0.0010643609812470017},
      {40, 4.445698525097307e-05},
      {50, 5.133812566142866e-06},
      {63, 3.102344401879299e-07},
  };
  for (const auto& [i, f] : want) ExpectRelativelyNear(inv[i], f, "qwen2.5", i);
  const std::vector<double> plain = ScaledInverseFrequencies(RopeScaling{}, 1e6, 128);
  ExpectRelativelyNear(inv[22], plain[22], "below the ramp", 22);
  ExpectRelativelyNear(inv[41], plain[41] / 4, "above the ramp", 41);
  EXPECT_NEAR(RopeAttentionFactor(Yarn(4, 32768)), 1.138629436111989, 1e-15);
}

// Without truncation the ramp's ends stay fractional (0 and 2.99 here), and a small theta
// puts most pairs inside it.
TEST(RopeScalingTest, YarnWithoutTruncation) {
  RopeScaling s = Yarn(4, 64);
  s.truncate = false;
  const std::vector<double> inv = ScaledInverseFrequencies(s, 500, 16);
  const double want[] = {1.0,
                         0.34442829811771364,
                         0.10530561338643474,
                         0.024312311811651825,
                         0.011180339887498949,
                         0.005141427971489448,
                         0.0023643540225079395,
                         0.0010872796380204908};
  ASSERT_EQ(inv.size(), 8U);
  for (int i = 0; i < 8; ++i) ExpectRelativelyNear(inv[i], want[i], "untruncated", i);
}

TEST(RopeScalingTest, LinearDividesEveryFrequency) {
  RopeScaling s;
  s.type = RopeType::kLinear;
  s.factor = 4;
  const std::vector<double> inv = ScaledInverseFrequencies(s, 10000, 64);
  const std::vector<double> plain = ScaledInverseFrequencies(RopeScaling{}, 10000, 64);
  for (int i = 0; i < 32; ++i) ExpectRelativelyNear(inv[i], plain[i] / 4, "linear", i);
  EXPECT_EQ(RopeAttentionFactor(s), 1.0);
  EXPECT_EQ(ScaledContextLength(s, 16384), 16384);
}

TEST(RopeScalingTest, YarnAttentionFactor) {
  RopeScaling s = Yarn(40, 4096);
  s.mscale = 0.707F;
  s.mscale_all_dim = 1.0F;
  EXPECT_NEAR(RopeAttentionFactor(s), 0.9210423553163399, 1e-7);  // (mscale is a float)
  s.attention_factor = 1.5F;
  EXPECT_EQ(RopeAttentionFactor(s), 1.5);
  EXPECT_EQ(RopeAttentionFactor(Yarn(1, 4096)), 1.0);  // no stretch, no correction
  EXPECT_EQ(RopeAttentionFactor(RopeScaling{}), 1.0);
}

TEST(RopeScalingTest, YarnContextIsFactorTimesTheOriginal) {
  EXPECT_EQ(ScaledContextLength(Yarn(4, 32768), 32768), 131072);
  EXPECT_EQ(ScaledContextLength(Yarn(40, 4096), 163840), 163840);  // already extended
  EXPECT_EQ(ScaledContextLength(Yarn(0.5, 4096), 4096), 4096);
  EXPECT_EQ(ScaledContextLength(Yarn(1e6, 1 << 20), 4096), INT32_MAX);
  EXPECT_EQ(ScaledContextLength(Yarn(NAN, 4096), 4096), 4096);
}

TEST(RopeScalingTest, Validation) {
  EXPECT_TRUE(ValidateRopeScaling(Yarn(4, 32768), 128, 128).ok());
  // yarn's attention factor applies to the rotated dimensions only.
  const absl::Status partial = ValidateRopeScaling(Yarn(4, 32768), 64, 128);
  EXPECT_EQ(partial.code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(partial.message(), HasSubstr("64 of each head's 128"));
  RopeScaling neutral = Yarn(4, 32768);
  neutral.attention_factor = 1.0F;
  EXPECT_TRUE(ValidateRopeScaling(neutral, 64, 128).ok());
  for (RopeScaling bad : {Yarn(0, 4096), Yarn(NAN, 4096), Yarn(4, 0)}) {
    EXPECT_EQ(ValidateRopeScaling(bad, 128, 128).code(), absl::StatusCode::kInvalidArgument);
  }
  RopeScaling slow = Yarn(4, 4096);
  slow.beta_slow = -1;
  EXPECT_EQ(ValidateRopeScaling(slow, 128, 128).code(), absl::StatusCode::kInvalidArgument);
}

TEST(RopeScalingTest, FromJsonText) {
  auto yarn = RopeScalingFromJsonText(R"({"rope_type": "yarn", "factor": 4})", 32768, "flag");
  ASSERT_TRUE(yarn.ok()) << yarn.status();
  EXPECT_EQ(yarn->type, RopeType::kYarn);
  EXPECT_EQ(yarn->original_max_position, 32768);
  for (const char* none : {R"({"rope_type": "default"})", R"({"type": "none"})"}) {
    auto got = RopeScalingFromJsonText(none, 32768, "flag");
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(got->type, RopeType::kDefault);
  }
  struct Bad {
    const char* text;
    const char* says;
  };
  for (const Bad& bad : {Bad{"{rope_type: yarn}", "flag: not JSON"},
                         Bad{"[1]", "must be an object"}, Bad{R"({"factor": 4})", "no rope_type"},
                         Bad{R"({"rope_type": "su"})", "'su' is not supported"}}) {
    auto got = RopeScalingFromJsonText(bad.text, 32768, "flag");
    EXPECT_FALSE(got.ok()) << bad.text;
    EXPECT_THAT(got.status().message(), HasSubstr(bad.says)) << bad.text;
  }
}

}  // namespace
}  // namespace ringserve::model
