// Prompt scoring (JobRequest::prompt_logprobs) over the deterministic fake model: every input
// token after the first position gets exactly the logprobs its history's logits give, in
// order, once, however the prompt is chunked, cached, preempted or batched.
#include <algorithm>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <numeric>
#include <span>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/cpu_sampling.h"
#include "worker/engine/fake_model_runner.h"
#include "worker/engine/generator.h"

namespace ringserve::engine {
namespace {

constexpr int32_t kVocab = 64;

std::vector<int32_t> Prompt(int n, int32_t salt) {
  std::vector<int32_t> p(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) p[static_cast<size_t>(i)] = 2 + (salt * 11 + i * 5) % (kVocab - 2);
  return p;
}

struct Shape {
  int32_t prompt_rows = 8;
  int32_t max_batch_tokens = 64;
  int32_t num_kv_blocks = 64;
  int32_t max_seqs = 8;
  int32_t speculate = 0;
};

class PromptLogprobsTest : public ::testing::Test {
 protected:
  void Make(const Shape& setup) {
    GeneratorOptions options;
    options.prompt_logprob_rows = setup.prompt_rows;
    options.speculate_tokens = setup.speculate;
    FakeModelRunnerOptions fake;
    fake.vocab_size = kVocab;
    fake.max_batch_tokens = setup.max_batch_tokens;
    fake.num_kv_blocks = setup.num_kv_blocks;
    fake.max_seqs = setup.max_seqs;
    fake.max_sampled_rows = SampledRowsFor(options, setup.max_seqs, setup.max_batch_tokens);
    fake.on_forward = [this] {
      std::lock_guard lock(hook_mu_);
      if (forward_hook_) std::exchange(forward_hook_, nullptr)();
    };
    auto runner = std::make_unique<FakeModelRunner>(fake);
    fake_ = runner.get();
    auto created = Generator::Create(std::move(runner), nullptr, options);
    ASSERT_TRUE(created.ok()) << created.status();
    generator_ = *std::move(created);
  }

  // What scoring context[first..] must give: token i's logprobs under the logits after
  // context[0, i), with `top` alternatives.
  std::vector<GeneratedToken> Expected(std::span<const int32_t> context, size_t first,
                                       int top) const {
    std::vector<GeneratedToken> out;
    for (size_t i = std::max<size_t>(first, 1); i < context.size(); ++i) {
      const std::vector<float> logits = fake_->LogitsAfter(context.first(i));
      const kernels::RowLogprobs lp = kernels::cpu::LogprobRow(logits, context[i]);
      GeneratedToken t;
      t.id = context[i];
      t.logprob = lp.chosen;
      for (int k = 0; k < top; ++k) t.top_logprobs.emplace_back(lp.top_ids[k], lp.top_logprobs[k]);
      out.push_back(t);
    }
    return out;
  }

  static JobRequest Scoring(std::vector<int32_t> tokens, int top, int max_tokens = 2) {
    JobRequest r;
    r.tokens = std::move(tokens);
    r.max_tokens = max_tokens;
    r.sampling.temperature = 0;
    r.prompt_logprobs = top;
    return r;
  }

  static void ExpectSame(const std::vector<GeneratedToken>& got,
                         const std::vector<GeneratedToken>& want) {
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(got[i].id, want[i].id) << "entry " << i;
      EXPECT_EQ(got[i].logprob, want[i].logprob) << "entry " << i;
      EXPECT_EQ(got[i].top_logprobs, want[i].top_logprobs) << "entry " << i;
    }
  }

  JobEvent Run(JobRequest r) { return generator_->Submit(std::move(r))->Collect(); }

  // Submits `requests` so that the engine thread starts them together: a one-token job's
  // pass holds the engine until all are submitted.
  std::vector<JobHandle> SubmitTogether(const std::vector<JobRequest>& requests) {
    std::promise<void> entered;
    std::promise<void> submitted;
    {
      std::lock_guard lock(hook_mu_);
      forward_hook_ = [&] {
        entered.set_value();
        submitted.get_future().wait();
      };
    }
    JobRequest hold;
    hold.tokens = {2};
    hold.max_tokens = 1;
    JobHandle holding = *generator_->Submit(hold);
    entered.get_future().wait();
    std::vector<JobHandle> handles;
    handles.reserve(requests.size());
    for (const JobRequest& r : requests) handles.push_back(*generator_->Submit(r));
    submitted.set_value();
    EXPECT_TRUE(holding.Collect().status.ok());
    return handles;
  }

  std::mutex hook_mu_;
  std::function<void()> forward_hook_;  // runs once, at the start of the next pass (hook_mu_)
  FakeModelRunner* fake_ = nullptr;
  std::unique_ptr<Generator> generator_;
};

TEST_F(PromptLogprobsTest, EveryTokenAfterTheFirstIsScoredInOrder) {
  Make({});
  const std::vector<int32_t> prompt = Prompt(13, 1);
  const JobEvent e = Run(Scoring(prompt, 3));
  ASSERT_TRUE(e.status.ok()) << e.status;
  ExpectSame(e.prompt_logprobs, Expected(prompt, 0, 3));
  EXPECT_EQ(e.tokens.size(), 2U);
  // A prompt of one token has nothing to score; top 0 gives the token's own logprob only.
  EXPECT_TRUE(Run(Scoring({5}, 2)).prompt_logprobs.empty());
  const JobEvent bare = Run(Scoring(prompt, 0));
  ExpectSame(bare.prompt_logprobs, Expected(prompt, 0, 0));
  EXPECT_EQ(generator_->Stats().kv.num_used_blocks, 0);
}

// max_tokens 0: the scores alone, as an evaluation harness asks for a text's likelihood.
TEST_F(PromptLogprobsTest, ZeroMaxTokensScoresTheInputAndGeneratesNothing) {
  Make({.prompt_rows = 5, .max_batch_tokens = 16});
  const std::vector<int32_t> prompt = Prompt(30, 3);
  const JobEvent e = Run(Scoring(prompt, 2, /*max_tokens=*/0));
  ASSERT_TRUE(e.status.ok()) << e.status;
  ExpectSame(e.prompt_logprobs, Expected(prompt, 0, 2));
  EXPECT_TRUE(e.tokens.empty());
  EXPECT_EQ(e.result.finish_reason, FinishReason::kMaxTokens);
  EXPECT_EQ(e.result.usage.completion_tokens, 0);
  EXPECT_EQ(e.result.usage.scored_tokens, 29);
  EXPECT_EQ(generator_->Stats().kv.num_used_blocks, 0);
}

TEST_F(PromptLogprobsTest, ALongPromptIsScoredOverStepsWithinTheRowsOfEach) {
  Make({.prompt_rows = 5, .max_batch_tokens = 16});
  const std::vector<int32_t> prompt = Prompt(40, 2);
  const JobEvent e = Run(Scoring(prompt, 2));
  ASSERT_TRUE(e.status.ok()) << e.status;
  ExpectSame(e.prompt_logprobs, Expected(prompt, 0, 2));
  int32_t scored = 0;
  for (const FakeStep& step : fake_->Steps()) {
    int32_t rows = 0;
    for (const FakeChunk& c : step.chunks) rows += c.num_scored;
    EXPECT_LE(rows, 5);
    scored += rows;
  }
  EXPECT_EQ(scored, 39);
}

TEST_F(PromptLogprobsTest, CachedPositionsAreComputedAgainToBeScored) {
  Make({.num_kv_blocks = 64});
  const std::vector<int32_t> prompt = Prompt(30, 3);
  JobRequest plain = Scoring(prompt, 1);
  plain.prompt_logprobs.reset();
  ASSERT_TRUE(Run(plain).status.ok());
  // The prompt's blocks are cached now; the unscored request reuses them, the scored one not.
  EXPECT_GT(Run(plain).result.usage.cached_tokens, 0);
  const JobEvent e = Run(Scoring(prompt, 1));
  ASSERT_TRUE(e.status.ok()) << e.status;
  EXPECT_EQ(e.result.usage.cached_tokens, 0);
  ExpectSame(e.prompt_logprobs, Expected(prompt, 0, 1));
}

TEST_F(PromptLogprobsTest, AnAppendedInputIsScoredFromItsFirstToken) {
  Make({});
  JobRequest first = Scoring(Prompt(21, 4), 0, 5);
  first.session_id = "s";
  first.prompt_logprobs.reset();
  const JobEvent turn = Run(first);
  ASSERT_TRUE(turn.status.ok()) << turn.status;
  std::vector<int32_t> history = first.tokens;
  for (const GeneratedToken& t : turn.tokens) history.push_back(t.id);

  const std::vector<int32_t> input = Prompt(9, 5);
  JobRequest next = Scoring(input, 4);
  next.session_id = "s";
  next.append = true;
  const JobEvent e = Run(next);
  ASSERT_TRUE(e.status.ok()) << e.status;
  std::vector<int32_t> context = history;
  context.insert(context.end(), input.begin(), input.end());
  // The history's blocks are reused up to the position that scores the input's first token.
  ExpectSame(e.prompt_logprobs, Expected(context, history.size(), 4));
  EXPECT_GT(e.result.usage.cached_tokens, 0);
  EXPECT_LE(e.result.usage.cached_tokens, static_cast<int32_t>(history.size()) - 1);
}

TEST_F(PromptLogprobsTest, ScoresDoNotDependOnTheBatchOrOnPreemption) {
  // 12 blocks of 4 tokens: three prompts of 20 tokens with their outputs cannot all hold
  // blocks at once, so sequences are preempted and recomputed mid-prompt.
  Make({.prompt_rows = 6, .max_batch_tokens = 24, .num_kv_blocks = 12});
  std::vector<JobRequest> requests;
  for (int i = 0; i < 4; ++i) {
    requests.push_back(Scoring(Prompt(20, 10 + i), 2, 8));
    requests.back().priority = i % 2;
  }
  requests[3].prompt_logprobs.reset();  // a plain request shares the steps
  std::vector<JobHandle> handles = SubmitTogether(requests);
  for (size_t i = 0; i < requests.size(); ++i) {
    const JobEvent e = handles[i].Collect();
    ASSERT_TRUE(e.status.ok()) << e.status;
    if (!requests[i].prompt_logprobs) {
      EXPECT_TRUE(e.prompt_logprobs.empty());
      continue;
    }
    ExpectSame(e.prompt_logprobs, Expected(requests[i].tokens, 0, 2));
  }
  EXPECT_GT(generator_->Stats().num_preemptions, 0);
  EXPECT_EQ(generator_->Stats().kv.num_used_blocks, 0);
}

TEST_F(PromptLogprobsTest, DraftsShareTheExtraRowsWithScoredPositions) {
  Make({.prompt_rows = 4, .max_batch_tokens = 32, .speculate = 4});
  // A repeating prompt: its decoding proposes drafts while another prompt is being scored.
  std::vector<int32_t> repeating(24);
  for (size_t i = 0; i < repeating.size(); ++i) repeating[i] = static_cast<int32_t>(2 + i % 6);
  JobRequest drafting = Scoring(repeating, 0, 24);
  drafting.prompt_logprobs.reset();
  JobHandle first = *generator_->Submit(drafting);
  const std::vector<int32_t> prompt = Prompt(50, 6);
  const JobEvent scored = Run(Scoring(prompt, 1));
  ASSERT_TRUE(scored.status.ok()) << scored.status;
  ExpectSame(scored.prompt_logprobs, Expected(prompt, 0, 1));
  ASSERT_TRUE(first.Collect().status.ok());
  EXPECT_GT(generator_->Stats().num_draft_tokens, 0);
  // Scored positions may take every extra row the drafts leave unused, never more.
  const int32_t extra_rows = fake_->max_sampled_rows() - fake_->max_seqs();
  int32_t most_scored = 0;
  for (const FakeStep& step : fake_->Steps()) {
    int32_t extra = 0;
    int32_t scored_rows = 0;
    for (const FakeChunk& c : step.chunks) {
      extra += c.num_scored + c.num_drafts;
      scored_rows += c.num_scored;
    }
    EXPECT_LE(extra, extra_rows);
    most_scored = std::max(most_scored, scored_rows);
  }
  EXPECT_GT(most_scored, 4);
}

// A plain job admitted beside a scoring one with the same input waits for the input's first
// block and reuses what the scoring job computed (n completions with prompt_logprobs).
TEST_F(PromptLogprobsTest, PlainJobsBesideAScoringOneReuseTheInputItComputes) {
  Make({.prompt_rows = 16});
  const std::vector<int32_t> prompt = Prompt(30, 8);
  JobHandle scoring = *generator_->Submit(Scoring(prompt, 1));
  JobRequest plain = Scoring(prompt, 0);
  plain.prompt_logprobs.reset();
  JobHandle second = *generator_->Submit(plain);
  JobHandle third = *generator_->Submit(plain);
  const JobEvent scored = scoring.Collect();
  ASSERT_TRUE(scored.status.ok()) << scored.status;
  ExpectSame(scored.prompt_logprobs, Expected(prompt, 0, 1));
  EXPECT_EQ(scored.result.usage.cached_tokens, 0);
  for (JobHandle* h : {&second, &third}) {
    const JobEvent e = h->Collect();
    ASSERT_TRUE(e.status.ok()) << e.status;
    EXPECT_GT(e.result.usage.cached_tokens, 0);
    EXPECT_EQ(e.tokens.size(), scored.tokens.size());
  }
}

// Jobs that follow another with the same input (GenerateRequest.n) wait for its whole
// prefill, even one that takes several steps, and compute only the input's last block.
TEST_F(PromptLogprobsTest, FollowersWaitForTheLeadsPrefillAndReuseItAll) {
  Make({.prompt_rows = 0, .max_batch_tokens = 8});
  const std::vector<int32_t> prompt = Prompt(41, 9);
  JobRequest lead_request = Scoring(prompt, 0, 3);
  lead_request.prompt_logprobs.reset();
  lead_request.sampling.temperature = 1;
  JobHandle lead = *generator_->Submit(lead_request);
  std::vector<JobHandle> followers;
  for (int i = 1; i <= 3; ++i) {
    JobRequest r = lead_request;
    r.sampling.seed = 7 + static_cast<uint64_t>(i);
    r.follows = lead.id();
    followers.push_back(*generator_->Submit(r));
  }
  ASSERT_TRUE(lead.Collect().status.ok());
  for (JobHandle& h : followers) {
    const JobEvent e = h.Collect();
    ASSERT_TRUE(e.status.ok()) << e.status;
    EXPECT_EQ(e.result.usage.cached_tokens, 40);  // every full block of the 41 tokens
  }
  // The input once, then each follower's last token, and the generated tokens.
  EXPECT_EQ(generator_->Stats().num_computed_tokens, 41 + 3 * 1 + 4 * 2);
}

TEST_F(PromptLogprobsTest, BadRequestsAreRefused) {
  Make({.prompt_rows = 0});
  JobRequest r = Scoring(Prompt(5, 7), 1);
  EXPECT_EQ(generator_->Submit(r).status().code(), absl::StatusCode::kFailedPrecondition);
  Make({});
  r.prompt_logprobs = 21;
  EXPECT_EQ(generator_->Submit(r).status().code(), absl::StatusCode::kInvalidArgument);
  r.prompt_logprobs = -1;
  EXPECT_EQ(generator_->Submit(r).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace ringserve::engine
