// The per-request sampler: greedy argmax as a plain scan defines it (ties, NaN, -inf, any
// length), penalties, the top-k / top-p / min-p filters, seeded draws and logprobs.
#include "worker/engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace ringserve::engine {
namespace {

// What greedy decoding means: the first index whose value no later one exceeds.
int32_t ScanArgmax(const std::vector<float>& v) {
  int32_t best = 0;
  for (int32_t i = 1; i < static_cast<int32_t>(v.size()); ++i) {
    if (v[i] > v[best]) best = i;
  }
  return best;
}

int32_t Greedy(const std::vector<float>& logits) {
  Sampler sampler({.temperature = 0.0F}, {});
  return sampler.Sample(logits).id;
}

TEST(SamplerTest, GreedyIsTheFirstLargestOfAPlainScan) {
  std::mt19937 rng(3);
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (const int size : {1, 2, 15, 16, 17, 31, 33, 64, 100, 1003, 32000, 128256}) {
    for (int trial = 0; trial < 20; ++trial) {
      // Few distinct values, so ties between lanes and blocks are common.
      std::uniform_int_distribution<int> level(-4, 4);
      std::vector<float> v(size);
      for (float& x : v) x = static_cast<float>(level(rng));
      std::uniform_int_distribution<int> at(0, size - 1);
      if (trial % 4 == 1) v[at(rng)] = nan;
      if (trial % 4 == 2) v[at(rng)] = -inf;
      if (trial % 5 == 3) v[at(rng)] = 9.0F;  // a unique maximum anywhere
      if (trial == 7) v[0] = nan;             // a NaN in front wins everything, as in a scan
      ASSERT_EQ(Greedy(v), ScanArgmax(v)) << "size " << size << " trial " << trial;
    }
  }
  EXPECT_EQ(Greedy(std::vector<float>(40, -inf)), 0);
}

TEST(SamplerTest, RepetitionPenaltyMovesGreedyOffAPromptToken) {
  const std::vector<float> logits = {1.0F, 3.0F, 2.9F};
  const std::vector<int32_t> prompt = {1};
  Sampler plain({.temperature = 0.0F}, prompt);
  EXPECT_EQ(plain.Sample(logits).id, 1);
  Sampler penalised({.temperature = 0.0F, .repetition_penalty = 1.2F}, prompt);
  EXPECT_EQ(penalised.Sample(logits).id, 2);  // 3.0 / 1.2 = 2.5 < 2.9
  // Frequency penalty: the chosen token is held back on the next step.
  Sampler frequency({.temperature = 0.0F, .frequency_penalty = 0.5F}, {});
  EXPECT_EQ(frequency.Sample(logits).id, 1);
  EXPECT_EQ(frequency.Sample(logits).id, 2);
}

TEST(SamplerTest, FiltersThatLeaveOneTokenAreGreedy) {
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0F, 2.0F);
  std::vector<float> logits(5000);
  for (float& x : logits) x = normal(rng);
  const int32_t top = ScanArgmax(logits);
  for (const SamplingParams& p : {SamplingParams{.temperature = 1.5F, .top_k = 1, .seed = 1},
                                  SamplingParams{.temperature = 1.5F, .top_p = 1e-6F, .seed = 2},
                                  SamplingParams{.temperature = 1.5F, .min_p = 1.0F, .seed = 3}}) {
    Sampler sampler(p, {});
    for (int i = 0; i < 20; ++i) ASSERT_EQ(sampler.Sample(logits).id, top);
  }
}

// The documented draw, spelled out with a full sort: scaled logits, weights exp(x - max) in
// float, the total in id order, the nucleus as the shortest prefix of the (weight desc, id
// asc) order holding top_p of it, min_p, then one uniform from the request's own stream.
int32_t ReferenceDraw(const std::vector<float>& logits, const SamplingParams& p,
                      std::mt19937_64& rng) {
  struct C {
    float value;
    int32_t id;
  };
  std::vector<C> c(logits.size());
  const float inv_t = 1.0F / p.temperature;
  float max_value = -std::numeric_limits<float>::infinity();
  for (size_t i = 0; i < logits.size(); ++i) {
    c[i] = {logits[i] * inv_t, static_cast<int32_t>(i)};
    max_value = std::max(max_value, c[i].value);
  }
  double total = 0;
  for (C& x : c) total += (x.value = std::exp(x.value - max_value));
  std::sort(c.begin(), c.end(), [](const C& a, const C& b) {
    return a.value > b.value || (a.value == b.value && a.id < b.id);
  });
  double mass = 0;
  size_t keep = c.size();
  for (size_t i = 0; i < c.size(); ++i) {
    mass += c[i].value;
    if (mass >= p.top_p * total) {
      keep = i + 1;
      break;
    }
  }
  c.resize(keep);
  std::erase_if(c, [&](const C& x) { return x.value < p.min_p; });
  double kept = 0;
  for (const C& x : c) kept += x.value;
  const double target = static_cast<double>(rng() >> 11) * (1.0 / 9007199254740992.0) * kept;
  double acc = 0;
  for (const C& x : c) {
    acc += x.value;
    if (target < acc) return x.id;
  }
  return c.back().id;
}

// The nucleus is found from the weights' exponents without sorting the vocabulary; every
// draw must still be the one the full sort gives, on flat and peaked rows, with ties.
TEST(SamplerTest, TopPDrawsAreThoseOfAFullSort) {
  std::mt19937 rng(9);
  for (const float spread : {0.05F, 1.0F, 3.0F, 12.0F}) {
    std::normal_distribution<float> normal(0.0F, spread);
    std::vector<float> logits(20000);
    for (float& x : logits) x = normal(rng);
    for (size_t i = 0; i < logits.size(); i += 7) logits[i] = logits[i / 2];  // ties
    for (const float top_p : {0.05F, 0.5F, 0.9F, 0.95F, 0.999F}) {
      const SamplingParams p{.temperature = 0.8F, .top_p = top_p, .min_p = 0.01F, .seed = 21};
      Sampler sampler(p, {});
      std::mt19937_64 reference_rng(p.seed);
      for (int draw = 0; draw < 40; ++draw) {
        ASSERT_EQ(sampler.Sample(logits).id, ReferenceDraw(logits, p, reference_rng))
            << "spread " << spread << " top_p " << top_p << " draw " << draw;
      }
    }
  }
}

TEST(SamplerTest, DrawsFollowTheDistributionAndTheSeed) {
  const std::vector<float> logits = {std::log(0.5F), std::log(0.3F), std::log(0.2F)};
  Sampler sampler({.temperature = 1.0F, .seed = 11}, {});
  std::vector<int> counts(3);
  constexpr int kDraws = 20000;
  std::vector<int32_t> first;
  for (int i = 0; i < kDraws; ++i) {
    const int32_t id = sampler.Sample(logits).id;
    ++counts[id];
    if (i < 64) first.push_back(id);
  }
  EXPECT_NEAR(counts[0] / static_cast<double>(kDraws), 0.5, 0.02);
  EXPECT_NEAR(counts[1] / static_cast<double>(kDraws), 0.3, 0.02);
  EXPECT_NEAR(counts[2] / static_cast<double>(kDraws), 0.2, 0.02);
  Sampler same({.temperature = 1.0F, .seed = 11}, {});
  Sampler other({.temperature = 1.0F, .seed = 12}, {});
  std::vector<int32_t> again, different;
  for (int i = 0; i < 64; ++i) {
    again.push_back(same.Sample(logits).id);
    different.push_back(other.Sample(logits).id);
  }
  EXPECT_EQ(again, first);
  EXPECT_NE(different, first);
}

TEST(SamplerTest, LogprobsAreTheRawLogSoftmax) {
  const std::vector<float> logits = {0.5F, 2.0F, -1.0F, 1.5F};
  Sampler sampler({.temperature = 0.0F, .num_logprobs = 2}, {});
  const SampledToken t = sampler.Sample(logits);
  double total = 0;
  for (float l : logits) total += std::exp(static_cast<double>(l));
  EXPECT_EQ(t.id, 1);
  EXPECT_NEAR(t.logprob, 2.0 - std::log(total), 1e-6);
  ASSERT_EQ(t.top_logprobs.size(), 2U);
  EXPECT_EQ(t.top_logprobs[0].first, 1);
  EXPECT_EQ(t.top_logprobs[1].first, 3);
  EXPECT_NEAR(t.top_logprobs[1].second, 1.5 - std::log(total), 1e-6);
}

TEST(SamplerTest, OutOfRangeParametersAreRefusedByName) {
  EXPECT_TRUE(ValidateSamplingParams({}).ok());
  EXPECT_FALSE(ValidateSamplingParams({.temperature = -1.0F}).ok());
  EXPECT_FALSE(ValidateSamplingParams({.top_k = -1}).ok());
  EXPECT_FALSE(ValidateSamplingParams({.top_p = 0.0F}).ok());
  EXPECT_FALSE(ValidateSamplingParams({.min_p = 1.5F}).ok());
  EXPECT_FALSE(ValidateSamplingParams({.repetition_penalty = 0.0F}).ok());
  EXPECT_FALSE(ValidateSamplingParams({.presence_penalty = 3.0F}).ok());
  EXPECT_FALSE(ValidateSamplingParams({.num_logprobs = 21}).ok());
  EXPECT_NE(ValidateSamplingParams({.top_p = 2.0F}).message().find("top_p"), std::string::npos);
}

}  // namespace
}  // namespace ringserve::engine
