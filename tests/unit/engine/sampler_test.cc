// The per-request sampler: greedy argmax as a plain scan defines it (ties, NaN, -inf, any
// length), penalties, what the top-k / top-p / min-p cuts keep, seeded draws, logprobs, and
// the split between the device's pick and the host's. (That every backend's SampleRows
// picks the chain's exact token is kernels/kernel_ops_test.cc's.)
#include "worker/engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/cpu_sampling.h"
#include "worker/grammar/matcher.h"
#include "worker/grammar/token_trie.h"

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

// The logit bias is added after the penalties, every step: -100 bans a token, a positive
// bias lifts one; a token only the bias touches takes no repetition penalty, and one the
// prompt holds takes both.
TEST(SamplerTest, LogitBiasMovesGreedyAfterThePenalties) {
  const std::vector<float> logits = {1.0F, 3.0F, 2.9F, 2.0F};
  Sampler banned({.temperature = 0.0F, .logit_bias = {{1, -100.0F}}}, {});
  EXPECT_EQ(banned.Sample(logits).id, 2);
  EXPECT_EQ(banned.Sample(logits).id, 2);  // still banned on the next step
  Sampler lifted({.temperature = 0.0F, .logit_bias = {{3, 1.5F}}}, {});
  EXPECT_EQ(lifted.Sample(logits).id, 3);  // 2.0 + 1.5 = 3.5 > 3.0
  // Repetition penalty 2 on the prompt's token 1 (3.0 -> 1.5); token 3 is biased only:
  // 2.0 + 0.6 = 2.6, not (2.0 / 2) + 0.6. Token 2 (2.9) still wins.
  Sampler both({.temperature = 0.0F, .repetition_penalty = 2.0F, .logit_bias = {{3, 0.6F}}},
               std::vector<int32_t>{1});
  std::vector<kernels::PenaltyEntry> step;
  const kernels::RowSampling chain = both.Plan(step, 100);
  ASSERT_EQ(step.size(), 2U);
  std::vector<float> penalised = logits;
  kernels::cpu::PenalizeRow(penalised, chain, step);
  EXPECT_EQ(penalised[1], 1.5F);
  EXPECT_FLOAT_EQ(penalised[3], 2.6F);
  EXPECT_EQ(both.Finish(kernels::cpu::SampleRow(penalised, chain), logits, nullptr).id, 2);
  // Token 3 generated: now seen, so the repetition penalty applies to it too.
  Sampler generated({.temperature = 0.0F, .repetition_penalty = 2.0F, .logit_bias = {{3, 2.0F}}},
                    std::vector<int32_t>{1});
  EXPECT_EQ(generated.Sample(logits).id, 3);  // 2.0 + 2.0 = 4.0
  std::vector<kernels::PenaltyEntry> next;
  const kernels::RowSampling again = generated.Plan(next, 100);
  penalised = logits;
  kernels::cpu::PenalizeRow(penalised, again, next);
  EXPECT_EQ(penalised[3], 3.0F);  // 2.0 / 2 + 2.0
}

// SuppressUntil keeps tokens out until that many are finished, then gives them back with
// their own bias; a suppressed token the request also biased gets that bias back.
TEST(SamplerTest, SuppressedTokensWaitForTheirTurn) {
  const std::vector<float> logits = {1.0F, 3.0F, 2.9F, 2.0F};
  Sampler sampler({.temperature = 0.0F, .logit_bias = {{2, -0.5F}}}, {});
  sampler.SuppressUntil(std::vector<int32_t>{1, 2, 1}, 2);  // a token listed twice is fine
  EXPECT_EQ(sampler.Sample(logits).id, 3);
  EXPECT_EQ(sampler.Sample(logits).id, 3);
  EXPECT_EQ(sampler.Sample(logits).id, 1);  // free again
  std::vector<kernels::PenaltyEntry> step;
  const kernels::RowSampling chain = sampler.Plan(step, 100);
  std::vector<float> penalised = logits;
  kernels::cpu::PenalizeRow(penalised, chain, step);
  EXPECT_EQ(penalised, (std::vector<float>{1.0F, 3.0F, 2.4F, 2.0F}));  // 2.9 - 0.5 again
  ASSERT_EQ(step.size(), 1U);  // token 1, with nothing left to apply, is no longer uploaded
  EXPECT_EQ(step[0].token, 2);
  // Already past the count: nothing to suppress.
  Sampler late({.temperature = 0.0F}, {});
  late.Sample(logits);
  late.SuppressUntil(std::vector<int32_t>{1}, 1);
  EXPECT_EQ(late.Sample(logits).id, 1);
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

// Frequencies of `draws` tokens sampled under `params` from `probabilities`.
std::vector<double> Frequencies(const std::vector<float>& probabilities, SamplingParams params,
                                int draws) {
  std::vector<float> logits;
  for (float p : probabilities) logits.push_back(std::log(p));
  Sampler sampler(params, {});
  std::vector<double> frequency(probabilities.size());
  for (int i = 0; i < draws; ++i) frequency[sampler.Sample(logits).id] += 1.0 / draws;
  return frequency;
}

void ExpectFrequencies(const std::vector<double>& got, const std::vector<double>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 0.015) << "token " << i;
}

// The chain samples softmax(logits / temperature) renormalised over what the cuts keep.
TEST(SamplerTest, CutsRestrictTheDistributionToWhatTheyKeep) {
  const std::vector<float> p = {0.1F, 0.4F, 0.2F, 0.3F};
  constexpr int kDraws = 20000;
  ExpectFrequencies(Frequencies(p, {.temperature = 1.0F, .seed = 1}, kDraws), {0.1, 0.4, 0.2, 0.3});
  // top_k 2: the two largest.
  ExpectFrequencies(Frequencies(p, {.temperature = 1.0F, .top_k = 2, .seed = 2}, kDraws),
                    {0, 0.4 / 0.7, 0, 0.3 / 0.7});
  // top_p 0.75: 0.4 + 0.3 = 0.7 is short of it, so the third largest comes in too.
  ExpectFrequencies(Frequencies(p, {.temperature = 1.0F, .top_p = 0.75F, .seed = 3}, kDraws),
                    {0, 0.4 / 0.9, 0.2 / 0.9, 0.3 / 0.9});
  // min_p 0.45: tokens under 0.45 of the top one's probability (0.18) are cut.
  ExpectFrequencies(Frequencies(p, {.temperature = 1.0F, .min_p = 0.45F, .seed = 4}, kDraws),
                    {0, 0.4 / 0.9, 0.2 / 0.9, 0.3 / 0.9});
  // temperature 0.5 squares the probabilities before normalising.
  ExpectFrequencies(Frequencies(p, {.temperature = 0.5F, .seed = 5}, kDraws),
                    {0.01 / 0.30, 0.16 / 0.30, 0.04 / 0.30, 0.09 / 0.30});
}

// Plan hands the device the request's chain and one draw per sampled token; Finish takes the
// device's pick.
// A step that verifies drafts plans tokens ahead of the next one and keeps as many as were
// accepted; each token's draw is still the one of its place in the output, as if every token
// had been planned alone, so drafts never change what a seed samples.
TEST(SamplerTest, TokensPlannedAheadTakeTheDrawsOfTheirPlaces) {
  const SamplingParams params{.temperature = 0.7F, .seed = 99};
  std::vector<kernels::PenaltyEntry> none;
  Sampler alone(params, {});
  std::vector<double> expected;
  for (int i = 0; i < 12; ++i) {
    expected.push_back(alone.Plan(none, 0).uniform);
    alone.Finish(5, {}, nullptr);
  }
  Sampler ahead(params, {});
  size_t next = 0;
  for (const auto& [rows, kept] : {std::pair{3, 2}, {4, 1}, {1, 1}, {5, 5}, {2, 1}}) {
    for (int a = 0; a < rows; ++a) {
      EXPECT_EQ(ahead.Plan(none, 0, a, 5).uniform, expected[next + static_cast<size_t>(a)])
          << "token " << next + static_cast<size_t>(a) << " planned " << a << " ahead";
    }
    for (int k = 0; k < kept; ++k) ahead.Finish(5, {}, nullptr);
    next += static_cast<size_t>(kept);
  }
}

// A row planned ahead carries the penalties, bias and min_tokens suppression that hold once
// the drafts before it are the output: the entries a sampler planning one token at a time
// has at that token (compared as sets: the entries' order does not change a logit).
TEST(SamplerTest, RowsPlannedAheadCarryThePenaltiesOfTheDraftsBeforeThem) {
  const SamplingParams params{.temperature = 0.0F,
                              .repetition_penalty = 1.3F,
                              .presence_penalty = 0.5F,
                              .frequency_penalty = 0.25F,
                              .logit_bias = {{3, -2.0F}, {40, 1.5F}}};
  const std::vector<int32_t> prompt = {5, 6, 7};
  const std::vector<int32_t> output = {6, 9, 9, 3, 41, 9, 5, 2};
  auto as_set = [](std::span<const kernels::PenaltyEntry> entries) {
    std::map<int32_t, std::pair<int32_t, float>> set;
    for (const kernels::PenaltyEntry& e : entries) set[e.token] = {e.count, e.bias};
    return set;
  };
  // One token at a time: the entries of each place.
  Sampler alone(params, prompt);
  alone.SuppressUntil(std::vector<int32_t>{2, 3}, 3);
  std::vector<std::map<int32_t, std::pair<int32_t, float>>> want;
  for (const int32_t id : output) {
    std::vector<kernels::PenaltyEntry> entries;
    const kernels::RowSampling chain = alone.Plan(entries, 1000);
    want.push_back(as_set(std::span(entries).subspan(
        chain.penalty_begin, static_cast<size_t>(chain.penalty_end - chain.penalty_begin))));
    alone.Finish(id, {}, nullptr);
  }
  // Steps planning 4, 3 and 3 rows ahead with the output as drafts, keeping 3, 2 and 3.
  Sampler ahead(params, prompt);
  ahead.SuppressUntil(std::vector<int32_t>{2, 3}, 3);
  size_t next = 0;
  for (const auto& [rows, kept] : {std::pair{4, 3}, {3, 2}, {3, 3}}) {
    std::vector<kernels::PenaltyEntry> entries;
    for (int a = 0; a < rows; ++a) {
      const size_t place = next + static_cast<size_t>(a);
      const kernels::RowSampling chain =
          ahead.Plan(entries, 1000, a, a == 0 ? -1 : output[place - 1]);
      EXPECT_EQ(
          as_set(std::span(entries).subspan(
              chain.penalty_begin, static_cast<size_t>(chain.penalty_end - chain.penalty_begin))),
          want[place])
          << "token " << place << " planned " << a << " ahead";
    }
    for (int k = 0; k < kept; ++k) ahead.Finish(output[next + static_cast<size_t>(k)], {}, nullptr);
    next += static_cast<size_t>(kept);
  }
}

TEST(SamplerTest, FinishTakesTheDevicePick) {
  const SamplingParams params = {.temperature = 0.9F, .top_k = 7, .top_p = 0.8F, .seed = 9};
  Sampler device(params, {});
  std::mt19937_64 stream(9);
  std::vector<kernels::PenaltyEntry> penalties;
  for (int i = 0; i < 5; ++i) {
    const kernels::RowSampling chain = device.Plan(penalties, 100);
    EXPECT_EQ(chain.temperature, 0.9F);
    EXPECT_EQ(chain.top_k, 7);
    EXPECT_EQ(chain.top_p, 0.8F);
    EXPECT_EQ(chain.uniform, static_cast<double>(stream() >> 11) / 9007199254740992.0);
    EXPECT_EQ(chain.penalty_begin, chain.penalty_end);
    EXPECT_FALSE(device.needs_logits());
    EXPECT_EQ(device.Finish(1234, {}, nullptr).id, 1234);
  }
  EXPECT_TRUE(penalties.empty());
  Sampler greedy({.temperature = 0.0F}, {});
  EXPECT_EQ(greedy.Plan(penalties, 100).uniform, 0.0);  // greedy takes no draw
}

// A penalised request's tokens go to the device as PenaltyEntry lists (the prompt's under a
// repetition penalty, the output's with their counts) while the step has room; without room
// the host applies the same penalties and chain to the row, and picks the same tokens. Either
// way the logprobs are the raw row's: the device's after UnpenalizeRows, or the host's from
// the raw logits and the device's log_total.
TEST(SamplerTest, PenaltiesRunOnTheDeviceOrTheHostWithTheSameTokens) {
  std::mt19937 rng(4);
  std::normal_distribution<float> normal(0.0F, 2.0F);
  std::vector<float> logits(300);
  for (float& x : logits) x = normal(rng);
  const std::vector<int32_t> prompt = {3, 5, 8, 5};
  const SamplingParams params = {.temperature = 1.0F,
                                 .repetition_penalty = 1.3F,
                                 .presence_penalty = 0.4F,
                                 .frequency_penalty = 0.2F,
                                 .seed = 21,
                                 .num_logprobs = 3};
  double total = 0;
  for (const float x : logits) total += std::exp(static_cast<double>(x));
  Sampler on_device(params, prompt);
  Sampler on_host(params, prompt);
  std::map<int32_t, int> seen;  // output counts
  for (int i = 0; i < 20; ++i) {
    std::vector<kernels::PenaltyEntry> step = {{.token = 0, .count = 0}};  // another row's
    const kernels::RowSampling chain = on_device.Plan(step, 1000);
    EXPECT_FALSE(on_device.needs_logits());
    ASSERT_EQ(chain.penalty_begin, 1);
    // The entries: every prompt token once, and the output's counts.
    std::map<int32_t, int> listed;
    for (int32_t e = chain.penalty_begin; e < chain.penalty_end; ++e) {
      ASSERT_FALSE(listed.contains(step[e].token)) << "token listed twice";
      listed[step[e].token] = step[e].count;
    }
    for (const int32_t t : prompt) EXPECT_TRUE(listed.contains(t)) << t;
    for (const auto& [t, count] : seen) EXPECT_EQ(listed[t], count) << t;
    // The device's pick: the penalties applied to the row, then the chain, then the raw row
    // back for the logprobs.
    std::vector<float> row = logits;
    const std::span<kernels::PenaltyEntry> entries =
        std::span(step).subspan(chain.penalty_begin, chain.penalty_end - chain.penalty_begin);
    kernels::cpu::PenalizeRow(row, chain, entries);
    const int32_t device_id = kernels::cpu::SampleRow(row, chain);
    kernels::cpu::UnpenalizeRow(row, entries);
    ASSERT_EQ(row, logits);
    const kernels::RowLogprobs device_logprobs = kernels::cpu::LogprobRow(row, device_id);
    const SampledToken on_device_token = on_device.Finish(device_id, {}, &device_logprobs);
    EXPECT_EQ(on_device_token.id, device_id);
    EXPECT_NEAR(on_device_token.logprob, logits[device_id] - std::log(total), 1e-5);
    // No room: the host does it from the raw row; the device's logprobs were for its own
    // (unpenalised) pick.
    std::vector<kernels::PenaltyEntry> full(5);
    on_host.Plan(full, 5);
    ASSERT_TRUE(on_host.needs_logits());
    EXPECT_EQ(full.size(), 5U);
    const kernels::RowLogprobs raw_pick =
        kernels::cpu::LogprobRow(logits, kernels::cpu::SampleRow(logits, chain));
    const SampledToken on_host_token = on_host.Finish(-1, logits, &raw_pick);
    EXPECT_EQ(on_host_token.id, device_id) << "token " << i;
    EXPECT_EQ(on_host_token.logprob, on_device_token.logprob) << "token " << i;
    EXPECT_EQ(on_host_token.top_logprobs, on_device_token.top_logprobs) << "token " << i;
    ASSERT_EQ(on_host_token.top_logprobs.size(), 3U);
    ++seen[device_id];
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
  // Fewer tokens than asked for: all of them.
  Sampler wide({.temperature = 0.0F, .num_logprobs = 20}, {});
  EXPECT_EQ(wide.Sample(logits).top_logprobs.size(), logits.size());
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
  EXPECT_TRUE(ValidateSamplingParams({.logit_bias = {{5, -100.0F}, {6, 100.0F}}}).ok());
  EXPECT_NE(ValidateSamplingParams({.logit_bias = {{5, 100.5F}}}).message().find("[-100, 100]"),
            std::string::npos);
  EXPECT_FALSE(ValidateSamplingParams({.logit_bias = {{5, std::nanf("")}}}).ok());
  EXPECT_NE(ValidateSamplingParams({.logit_bias = {{5, 1.0F}, {5, 2.0F}}})
                .message()
                .find("more than once"),
            std::string::npos);
  std::vector<std::pair<int32_t, float>> many;
  for (int32_t t = 0; t <= kMaxLogitBias; ++t) many.emplace_back(t, 1.0F);
  EXPECT_NE(ValidateSamplingParams({.logit_bias = many}).message().find("at most 1024"),
            std::string::npos);
}

// A response format moves the pick to the host (the mask needs the text so far), whatever
// the device picked, and only tokens that keep the text in the grammar are ever chosen.
TEST(SamplerTest, AConstrainedSamplerPicksOnlyWhatTheGrammarAllows) {
  // 0: end of sequence; "x" has the highest logit and never fits.
  const grammar::TokenTrie trie(std::vector<std::string>{"", "{", "}", "x", "\"a\":1"});
  const std::vector<float> logits = {0, 1, 1, 9, 2};
  for (const float temperature : {0.0F, 1.0F}) {
    for (uint64_t seed = 0; seed < 8; ++seed) {
      Sampler sampler({.temperature = temperature, .seed = seed}, {});
      sampler.Constrain(
          grammar::TokenConstraint(grammar::Matcher(grammar::Grammar::AnyObject()), &trie, {0}));
      std::string text;
      for (int step = 0; step < 3 && !sampler.response_complete(); ++step) {
        std::vector<kernels::PenaltyEntry> penalties;
        sampler.Plan(penalties, 1024);
        EXPECT_TRUE(sampler.needs_logits());
        const SampledToken token = sampler.Finish(/*device_id=*/3, logits, nullptr);
        ASSERT_NE(token.id, 3);
        text += trie.Bytes(token.id);
      }
      EXPECT_TRUE(sampler.response_complete()) << text;
      EXPECT_TRUE(text == "{}" || text == "{\"a\":1}") << text;
      if (temperature == 0.0F) {
        EXPECT_EQ(text, "{\"a\":1}");
      }
    }
  }
}

// A triggered constraint leaves the pick to the device until the trigger appears, then moves
// it to the host for the grammar's stretch, and back once the stretch is finished.
TEST(SamplerTest, ATriggeredConstraintPicksOnTheHostOnlyWhileItBinds) {
  // 0: end of sequence, 1 "go", 2 "x", 3 "1", 4 "!"; "x" has the highest logit, then "!".
  const grammar::TokenTrie trie(std::vector<std::string>{"", "go", "x", "1", "!"});
  auto stretch = grammar::Grammar::FromRegex("go1+!");
  ASSERT_TRUE(stretch.ok()) << stretch.status();
  const std::vector<float> logits = {0, 1, 9, 1, 2};
  Sampler sampler({.temperature = 0.0F, .seed = 1}, {});
  sampler.Constrain(grammar::TokenConstraint(grammar::Matcher(*stretch), &trie, {0},
                                             grammar::Trigger{.text = "go"}));
  std::string text;
  // The device's picks stand while the constraint waits; "go" then binds "1+!".
  for (const int32_t device_pick : {2, 1, 2, 2, 2, 2}) {
    std::vector<kernels::PenaltyEntry> penalties;
    sampler.Plan(penalties, 1024);
    const bool binds = text.ends_with("go") || text.ends_with("go1");
    EXPECT_EQ(sampler.needs_logits(), binds) << text;
    text += trie.Bytes(sampler.Finish(device_pick, logits, nullptr).id);
  }
  EXPECT_EQ(text, "xgo1!xx");
  EXPECT_FALSE(sampler.response_complete());

  // A trigger that binds once completes the response with its stretch (one tool call).
  Sampler once({.temperature = 0.0F, .seed = 1}, {});
  once.Constrain(grammar::TokenConstraint(
      grammar::Matcher(*stretch), &trie, {0},
      grammar::Trigger{.text = "go", .at_start = false, .after = "", .once = true}));
  text.clear();
  for (const int32_t device_pick : {2, 1, 2, 2}) {
    EXPECT_FALSE(once.response_complete()) << text;
    std::vector<kernels::PenaltyEntry> penalties;
    once.Plan(penalties, 1024);
    text += trie.Bytes(once.Finish(device_pick, logits, nullptr).id);
  }
  EXPECT_EQ(text, "xgo1!");
  EXPECT_TRUE(once.response_complete());
}

}  // namespace
}  // namespace ringserve::engine
