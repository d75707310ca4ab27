// Speculative decoding by prompt lookup, over the scheduler and over the generator on the
// fake model: drafts ride with a decoding sequence's last token, leave its tokens at commit,
// and come back one by one as they are accepted; the tokens a request gets, greedy or
// sampled, with logprobs, stops, sessions and preemption, are exactly those it gets without
// drafts, in fewer steps.
#include <algorithm>
#include <functional>
#include <iostream>
#include <memory>
#include <numeric>
#include <span>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "kvcache/kv_cache_manager.h"
#include "worker/engine/fake_model_runner.h"
#include "worker/engine/generator.h"
#include "worker/engine/scheduler.h"

namespace ringserve::engine {
namespace {

// ---- Scheduler ----

class SpeculativeSchedulerTest : public ::testing::Test {
 protected:
  void Make(int32_t num_blocks, SchedulerLimits limits) {
    scheduler_.reset();
    seqs_.clear();  // their leases go back to the old manager
    kv_ = std::make_unique<kvcache::KvCacheManager>(
        kvcache::KvCacheOptions{.num_blocks = num_blocks, .block_size_tokens = 4});
    scheduler_ = std::make_unique<Scheduler>(kv_.get(), limits, nullptr);
  }

  // A waiting sequence of `n` prompt tokens.
  SchedSeq* New(int32_t n, int32_t priority = 0) {
    auto seq = std::make_unique<SchedSeq>();
    seq->seq_id = next_id_;
    seq->arrival = next_id_++;
    seq->priority = priority;
    seq->tokens.resize(static_cast<size_t>(n));
    std::iota(seq->tokens.begin(), seq->tokens.end(), 100);
    scheduler_->Enqueue(seq.get());
    seqs_.push_back(std::move(seq));
    return seqs_.back().get();
  }

  // One step without drafts in which every waiting prompt is computed whole and samples
  // token 1: they all decode next.
  void Prefill() {
    const StepPlan plan = scheduler_->Schedule();
    scheduler_->Commit(plan);
    for (const ScheduledChunk& c : plan.chunks) {
      ASSERT_TRUE(c.sample);
      scheduler_->AppendToken(c.seq, 1);
    }
  }

  std::unique_ptr<kvcache::KvCacheManager> kv_;
  std::unique_ptr<Scheduler> scheduler_;
  std::vector<std::unique_ptr<SchedSeq>> seqs_;
  uint64_t next_id_ = 1;
};

TEST_F(SpeculativeSchedulerTest, DraftsRideWithTheLastTokenAndLeaveAtCommit) {
  Make(16, {.max_batch_tokens = 16, .max_seqs = 4, .max_drafts = 8, .max_extra_rows = 8});
  SchedSeq* a = New(5);
  Prefill();
  a->draft = {7, 8, 9};
  const StepPlan plan = scheduler_->Schedule();
  ASSERT_EQ(plan.chunks.size(), 1U);
  EXPECT_EQ(plan.chunks[0].start, 5);
  EXPECT_EQ(plan.chunks[0].num_tokens, 4);
  EXPECT_EQ(plan.chunks[0].num_drafts, 3);
  EXPECT_TRUE(plan.chunks[0].sample);
  EXPECT_EQ(plan.num_drafts, 3);
  EXPECT_EQ(plan.num_decode_seqs, 1);
  EXPECT_EQ(a->tokens, (std::vector<int32_t>{100, 101, 102, 103, 104, 1, 7, 8, 9}));
  scheduler_->Commit(plan);
  EXPECT_EQ(a->tokens.size(), 6U);
  EXPECT_EQ(kv_->NumTokens(a->seq_id), 6);
  EXPECT_EQ(kv_->NumComputedTokens(a->seq_id), 6);
  scheduler_->AppendToken(a, 7, /*kv_computed=*/true);  // the first draft, accepted
  scheduler_->AppendToken(a, 30);                       // the token after it
  EXPECT_EQ(kv_->NumComputedTokens(a->seq_id), 7);
  EXPECT_EQ(kv_->NumTokens(a->seq_id), 8);
  // Positions 8 and 9 held the rejected drafts: their block goes back.
  EXPECT_EQ(kv_->BlockTable(a->seq_id).size(), 3U);
  scheduler_->ReleaseDraftBlocks(a);
  EXPECT_EQ(kv_->BlockTable(a->seq_id).size(), 2U);
  EXPECT_EQ(kv_->Stats().num_used_blocks, 2);
  EXPECT_TRUE(kv_->Validate().ok()) << kv_->Validate();
}

// Drafts come last: every decoding sequence gets its token, and the blocks and budget it
// needs, before any draft; drafts take what is left.
TEST_F(SpeculativeSchedulerTest, DraftsTakeOnlyWhatTheStepLeaves) {
  // 4 blocks of 4 tokens: a holds 2 (7 computed + 1 sampled), b holds 1 and its next token
  // (position 4) needs the last free block, which a's drafts (positions 8..11) would take.
  Make(4, {.max_batch_tokens = 16, .max_seqs = 4, .max_drafts = 8, .max_extra_rows = 8});
  SchedSeq* a = New(7);
  SchedSeq* b = New(4);
  b->tokens[0] = 7;  // not a's prefix
  Prefill();
  a->draft = {5, 6, 7, 8};
  StepPlan plan = scheduler_->Schedule();
  EXPECT_EQ(plan.num_preempted, 0);
  ASSERT_EQ(plan.chunks.size(), 2U);
  EXPECT_EQ(plan.chunks[0].num_drafts, 0);
  EXPECT_EQ(plan.chunks[1].seq, b);
  scheduler_->Commit(plan);

  // A budget of 4: both decode, and a's drafts get the 2 tokens left, every step.
  Make(32, {.max_batch_tokens = 4, .max_seqs = 4, .max_drafts = 16, .max_extra_rows = 16});
  a = New(2);
  b = New(2);
  Prefill();
  for (int step = 0; step < 3; ++step) {
    a->draft = {1, 2, 3, 4, 5};
    plan = scheduler_->Schedule();
    ASSERT_EQ(plan.chunks.size(), 2U) << "step " << step;
    EXPECT_EQ(plan.chunks[0].num_drafts, 2);
    EXPECT_EQ(plan.chunks[1].seq, b);
    EXPECT_EQ(plan.num_tokens, 4);
    scheduler_->Commit(plan);
    for (SchedSeq* s : {a, b}) scheduler_->AppendToken(s, 9);
  }
  EXPECT_TRUE(kv_->Validate().ok()) << kv_->Validate();
}

// Drafts never evict a cached prefix: they take the room left in the sequence's own blocks
// and blocks that cache nothing, as many drafts as fit rather than none.
TEST_F(SpeculativeSchedulerTest, DraftsLeaveCachedPrefixesAlone) {
  Make(6, {.max_batch_tokens = 32, .max_seqs = 4, .max_drafts = 8, .max_extra_rows = 8});
  SchedSeq* p = New(9);  // two full blocks to cache
  Prefill();
  scheduler_->Remove(p);
  p->lease.Reset();
  ASSERT_EQ(kv_->Stats().num_cached_blocks, 2);
  SchedSeq* a = New(13);  // a prompt of its own: its 4 blocks take every uncached one
  a->tokens[0] = 7;
  Prefill();
  ASSERT_EQ(kv_->NumUnkeyedFreeBlocks(), 0);
  a->draft = {1, 2, 3, 4, 5};
  const StepPlan plan = scheduler_->Schedule();
  ASSERT_EQ(plan.chunks.size(), 1U);
  EXPECT_EQ(plan.chunks[0].num_drafts, 2);  // positions 14 and 15, the rest of its last block
  EXPECT_EQ(kv_->Stats().num_cached_blocks, 2);
  EXPECT_EQ(kv_->Stats().num_evictions, 0);
  scheduler_->Commit(plan);
  EXPECT_TRUE(kv_->Validate().ok()) << kv_->Validate();
}

TEST_F(SpeculativeSchedulerTest, DraftsFitTheBudgetAndTheStepsDraftLimit) {
  Make(32, {.max_batch_tokens = 12, .max_seqs = 4, .max_drafts = 6, .max_extra_rows = 6});
  SchedSeq* a = New(4);
  SchedSeq* b = New(4);
  SchedSeq* c = New(4);
  Prefill();
  for (SchedSeq* s : {a, b, c}) s->draft = {1, 2, 3, 4, 5};
  StepPlan plan = scheduler_->Schedule();
  ASSERT_EQ(plan.chunks.size(), 3U);
  // a: 5 drafts (6 tokens); b: the step's draft limit leaves 1; c: none.
  EXPECT_EQ(plan.chunks[0].num_drafts, 5);
  EXPECT_EQ(plan.chunks[1].num_drafts, 1);
  EXPECT_EQ(plan.chunks[2].num_drafts, 0);
  EXPECT_EQ(plan.num_tokens, 9);
  scheduler_->Commit(plan);
  for (SchedSeq* s : {a, b, c}) EXPECT_EQ(s->tokens.size(), 5U);
  EXPECT_TRUE(kv_->Validate().ok()) << kv_->Validate();

  Make(32, {.max_batch_tokens = 4, .max_seqs = 4, .max_drafts = 16, .max_extra_rows = 16});
  SchedSeq* d = New(4);
  Prefill();
  d->draft = {1, 2, 3, 4, 5};
  plan = scheduler_->Schedule();
  ASSERT_EQ(plan.chunks.size(), 1U);
  EXPECT_EQ(plan.chunks[0].num_drafts, 3);  // the budget's 4 tokens: the last and 3 drafts
  scheduler_->Commit(plan);
}

TEST_F(SpeculativeSchedulerTest, DraftsFitTheBlocksLeftAndAPreemptedSequenceHasNone) {
  // 4 blocks of 4 tokens. a holds 2 (7 computed + 1 sampled); b holds 1.
  Make(4, {.max_batch_tokens = 16, .max_seqs = 4, .max_drafts = 8, .max_extra_rows = 8});
  SchedSeq* a = New(7);
  SchedSeq* b = New(2);
  Prefill();
  b->draft = {5, 6, 7, 8, 9, 10};  // all would need a second block for b...
  a->draft = {5, 6, 7, 8};         // ... and a third one for a
  StepPlan plan = scheduler_->Schedule();
  ASSERT_EQ(plan.chunks.size(), 2U);
  EXPECT_EQ(plan.num_preempted, 0);
  EXPECT_EQ(plan.chunks[0].num_drafts, 4);  // a takes the last free block: positions 8..11
  EXPECT_EQ(plan.chunks[1].num_drafts, 1);  // b: only what its own block has left (position 3)
  scheduler_->Commit(plan);
  for (SchedSeq* s : {a, b}) scheduler_->AppendToken(s, 2);

  // A higher-priority request takes every block (b's, then a's) though a has a draft: a
  // waits with its own tokens only, and no draft is planned for a sequence not in the plan.
  SchedSeq* c = nullptr;
  {
    auto seq = std::make_unique<SchedSeq>();
    seq->seq_id = next_id_;
    seq->arrival = next_id_++;
    seq->priority = 1;
    seq->tokens = {50, 51, 52, 53, 54, 55, 56, 57, 58};
    c = seq.get();
    seqs_.push_back(std::move(seq));
  }
  a->draft = {1, 2};
  scheduler_->Enqueue(c);
  plan = scheduler_->Schedule();
  EXPECT_EQ(plan.num_preempted, 2);
  EXPECT_FALSE(a->lease.active());
  EXPECT_EQ(a->tokens.size(), 9U);  // 7 + 2 sampled, no draft
  ASSERT_EQ(plan.chunks.size(), 1U);
  EXPECT_EQ(plan.chunks[0].seq, c);
  scheduler_->Commit(plan);
  EXPECT_TRUE(kv_->Validate().ok()) << kv_->Validate();
}

// ---- Generator ----

constexpr int32_t kVocab = 64;

int32_t Hashed(std::span<const int32_t> history) {
  int64_t h = static_cast<int64_t>(history.size());
  for (int32_t t : history) h = (h * 31 + t) % 1000003;
  return static_cast<int32_t>(2 + h % (kVocab - 2));
}

// Text that mostly repeats what came 6 tokens before (so lookups find drafts), with a fresh
// token every fifth position (so some drafts are wrong).
int32_t Repetitive(std::span<const int32_t> history) {
  const size_t n = history.size();
  if (n >= 6 && n % 5 != 0) return history[n - 6];
  return Hashed(history);
}

std::vector<int32_t> Prompt(int n, int32_t salt) {
  std::vector<int32_t> p(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) p[static_cast<size_t>(i)] = 2 + (salt * 13 + i * 7) % (kVocab - 2);
  return p;
}

struct Engine {
  explicit Engine(int32_t speculate, FakeModelRunnerOptions fake = {},
                  std::function<void(const StepRecord&)> on_step = {}) {
    fake.vocab_size = kVocab;
    if (!fake.next_token) fake.next_token = Repetitive;
    if (fake.max_sampled_rows == 0) fake.max_sampled_rows = 64;
    auto runner = std::make_unique<FakeModelRunner>(std::move(fake));
    this->fake = runner.get();
    GeneratorOptions options;
    options.speculate_tokens = speculate;
    auto created = Generator::Create(std::move(runner), nullptr, options, std::move(on_step));
    EXPECT_TRUE(created.ok()) << created.status();
    generator = *std::move(created);
  }
  // Submits every request at once and collects them all.
  std::vector<JobEvent> Run(const std::vector<JobRequest>& requests) const {
    std::vector<JobHandle> handles;
    handles.reserve(requests.size());
    for (const JobRequest& r : requests) {
      absl::StatusOr<JobHandle> handle = generator->Submit(r);
      EXPECT_TRUE(handle.ok()) << handle.status();
      handles.push_back(*std::move(handle));
    }
    std::vector<JobEvent> out;
    out.reserve(handles.size());
    for (JobHandle& h : handles) out.push_back(h.Collect());
    return out;
  }
  int32_t MaxDraftsInAStep() const {
    int32_t most = 0;
    for (const FakeStep& step : fake->Steps()) {
      for (const FakeChunk& c : step.chunks) most = std::max(most, c.num_drafts);
    }
    return most;
  }

  FakeModelRunner* fake = nullptr;
  std::unique_ptr<Generator> generator;
};

std::vector<JobRequest> Mixed() {
  std::vector<JobRequest> requests;
  for (int i = 0; i < 8; ++i) {
    JobRequest r;
    r.tokens = Prompt(7 + 3 * i, i + 1);
    r.max_tokens = 30 + 7 * i;
    r.sampling.temperature = i % 2 == 0 ? 0.0F : 1.0F;
    r.sampling.top_k = i == 3 ? 5 : 0;
    r.sampling.seed = 40 + static_cast<uint64_t>(i);
    r.sampling.num_logprobs = i % 3 == 0 ? 3 : 0;
    if (i == 5) r.sampling.logit_bias = {{7, 2.0F}, {9, -100.0F}};
    // Penalties that count the output, and a min_tokens that suppresses enders for a while.
    if (i == 6) {
      r.sampling.repetition_penalty = 1.2F;
      r.sampling.frequency_penalty = 0.4F;
    }
    if (i == 7) {
      r.sampling.presence_penalty = 0.6F;
      r.stop_token_ids = {Repetitive(r.tokens), 11, 12};
      r.min_tokens = 9;
    }
    requests.push_back(r);
  }
  return requests;
}

void ExpectSameEvents(const std::vector<JobEvent>& got, const std::vector<JobEvent>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_TRUE(got[i].status.ok()) << got[i].status;
    ASSERT_TRUE(want[i].status.ok()) << want[i].status;
    ASSERT_EQ(got[i].tokens.size(), want[i].tokens.size()) << "request " << i;
    for (size_t t = 0; t < got[i].tokens.size(); ++t) {
      const GeneratedToken& a = got[i].tokens[t];
      const GeneratedToken& b = want[i].tokens[t];
      EXPECT_EQ(a.id, b.id) << "request " << i << " token " << t;
      EXPECT_EQ(a.logprob, b.logprob) << "request " << i << " token " << t;
      EXPECT_EQ(a.top_logprobs, b.top_logprobs) << "request " << i << " token " << t;
    }
    EXPECT_EQ(got[i].result.finish_reason, want[i].result.finish_reason) << "request " << i;
    EXPECT_EQ(got[i].result.stop_match, want[i].result.stop_match) << "request " << i;
    EXPECT_EQ(got[i].result.usage.completion_tokens, want[i].result.usage.completion_tokens);
    EXPECT_EQ(got[i].result.history_tokens, want[i].result.history_tokens) << "request " << i;
  }
}

TEST(SpeculativeGeneratorTest, DraftsChangeNoTokenAndSaveSteps) {
  const std::vector<JobRequest> requests = Mixed();
  Engine plain(0);
  const std::vector<JobEvent> want = plain.Run(requests);
  Engine fast(4);
  const std::vector<JobEvent> got = fast.Run(requests);
  ExpectSameEvents(got, want);
  const GeneratorStats stats = fast.generator->Stats();
  EXPECT_GT(stats.num_accepted_tokens, 0);
  EXPECT_LT(stats.num_accepted_tokens, stats.num_draft_tokens);  // some drafts were wrong
  EXPECT_EQ(stats.num_generated_tokens, plain.generator->Stats().num_generated_tokens);
  EXPECT_LT(stats.num_steps, plain.generator->Stats().num_steps);
  EXPECT_EQ(fast.MaxDraftsInAStep(), 4);
  EXPECT_EQ(plain.MaxDraftsInAStep(), 0);
  EXPECT_EQ(stats.kv.num_used_blocks, 0);
  std::cout << "speculative: " << stats.num_accepted_tokens << " of " << stats.num_draft_tokens
            << " drafts accepted; " << stats.num_steps << " steps against "
            << plain.generator->Stats().num_steps << "\n";
}

TEST(SpeculativeGeneratorTest, StopsInsideAcceptedDraftsEndTheOutputWhereTheyWould) {
  std::vector<JobRequest> requests;
  Engine probe(0);
  JobRequest base;
  base.tokens = Prompt(9, 3);
  base.max_tokens = 40;
  base.sampling.temperature = 0;
  const std::vector<JobEvent> full = probe.Run({base});
  ASSERT_TRUE(full[0].status.ok());
  ASSERT_GT(full[0].tokens.size(), 20U);
  // A stop token met at a repeated (draftable) place, a max_tokens inside a run of drafts, and
  // session turns whose history must hold exactly the delivered tokens.
  JobRequest stop = base;
  stop.stop_token_ids = {full[0].tokens[17].id};
  requests.push_back(stop);
  for (const int max_tokens : {11, 13, 14, 22}) {
    JobRequest capped = base;
    capped.max_tokens = max_tokens;
    requests.push_back(capped);
  }
  Engine plain(0);
  Engine fast(5);
  ExpectSameEvents(fast.Run(requests), plain.Run(requests));

  for (Engine* engine : {&plain, &fast}) {
    JobRequest first = base;
    first.session_id = "s";
    first.max_tokens = 12;
    ASSERT_TRUE(engine->Run({first})[0].status.ok());
  }
  // The pinned session holds the blocks of its tokens, none reserved for rejected drafts.
  EXPECT_EQ(fast.generator->Stats().kv.num_used_blocks,
            plain.generator->Stats().kv.num_used_blocks);
  JobRequest second;
  second.session_id = "s";
  second.append = true;
  second.tokens = {5, 6};
  second.max_tokens = 25;
  second.sampling.temperature = 0;
  ExpectSameEvents(fast.Run({second}), plain.Run({second}));
  EXPECT_GT(fast.generator->Stats().num_accepted_tokens, 0);
}

TEST(SpeculativeGeneratorTest, UnderMemoryPressureEveryRequestStillGetsItsTokens) {
  std::vector<JobRequest> requests = Mixed();
  for (JobRequest& r : requests) r.sampling.num_logprobs = 0;
  FakeModelRunnerOptions tight;
  tight.num_kv_blocks = 40;  // block size 4: well under what the six need at once
  Engine plain(0);
  const std::vector<JobEvent> want = plain.Run(requests);
  Engine fast(6, tight);
  ExpectSameEvents(fast.Run(requests), want);
  const GeneratorStats stats = fast.generator->Stats();
  EXPECT_GT(stats.num_preemptions, 0);
  EXPECT_GT(stats.num_accepted_tokens, 0);
  EXPECT_EQ(stats.kv.num_used_blocks, 0);
}

// A job drafts as far as its drafts have lately been right: after a step that rejected one,
// one past the accepted run; after one that accepted all, twice as far (up to --speculate).
TEST(SpeculativeGeneratorTest, EachJobDraftsAsFarAsItsDraftsHaveBeenRight) {
  std::vector<std::pair<int32_t, int32_t>> verified;  // (drafts, accepted) of each step
  Engine engine(6, {}, [&](const StepRecord& step) {
    if (step.num_drafts > 0) verified.emplace_back(step.num_drafts, step.num_accepted);
  });
  JobRequest r;
  r.tokens = Prompt(11, 5);
  r.max_tokens = 120;
  r.sampling.temperature = 0;
  ASSERT_TRUE(engine.Run({r})[0].status.ok());
  ASSERT_GT(verified.size(), 5U);
  int32_t limit = 6;
  bool shortened = false;
  for (const auto& [drafts, accepted] : verified) {
    EXPECT_LE(drafts, limit);
    shortened |= limit < 6 && drafts == limit;
    limit = accepted == drafts ? std::min(6, 2 * limit) : std::clamp(accepted + 1, 1, 6);
  }
  EXPECT_TRUE(shortened);
}

// Penalties that count the output, strong enough to change the picks: each row verifying a
// draft is penalised as if the drafts before it were already the output, so the tokens are
// still those of decoding without drafts.
TEST(SpeculativeGeneratorTest, PenaltiesThatCountTheOutputKeepTheirTokens) {
  FakeModelRunnerOptions weak;
  weak.next_token = Repetitive;
  weak.next_token_logit = 1.0F;  // a repeat or two and the penalties take the peak down
  std::vector<JobRequest> requests;
  for (int i = 0; i < 12; ++i) {
    JobRequest r;
    r.tokens = Prompt(12, 20 + i);
    r.max_tokens = 100;
    r.sampling.temperature = i % 3 == 2 ? 0.7F : 0.0F;
    r.sampling.seed = 9 + static_cast<uint64_t>(i);
    // Small steps of penalty, so that a count off by one moves some pick.
    r.sampling.frequency_penalty = i % 2 == 0 ? 0.05F * static_cast<float>(1 + i % 5) : 0.0F;
    r.sampling.presence_penalty = i % 2 == 1 ? 0.1F * static_cast<float>(1 + i % 4) : 0.0F;
    r.sampling.repetition_penalty = i % 4 == 3 ? 1.1F : 1.0F;
    r.sampling.num_logprobs = i % 2;
    requests.push_back(r);
  }
  Engine plain(0, weak);
  const std::vector<JobEvent> want = plain.Run(requests);
  Engine fast(6, weak);
  ExpectSameEvents(fast.Run(requests), want);
  // The penalties changed the picks: the output is not the rule's.
  int off_rule = 0;
  for (size_t i = 0; i < requests.size(); ++i) {
    std::vector<int32_t> history = requests[i].tokens;
    for (const GeneratedToken& t : want[i].tokens) {
      off_rule += t.id != Repetitive(history) ? 1 : 0;
      history.push_back(t.id);
    }
  }
  EXPECT_GT(off_rule, 0);
  EXPECT_GT(fast.generator->Stats().num_accepted_tokens, 0);
  std::cout << "penalised: " << fast.generator->Stats().num_accepted_tokens << " of "
            << fast.generator->Stats().num_draft_tokens << " drafts accepted; " << off_rule
            << " tokens off the rule\n";
}

TEST(SpeculativeGeneratorTest, WithoutSampledRowsToSpareNothingIsDrafted) {
  JobRequest r;
  r.tokens = Prompt(9, 4);
  r.max_tokens = 30;
  r.sampling.temperature = 0;
  FakeModelRunnerOptions no_rows;
  no_rows.max_sampled_rows = 8;  // = max_seqs: no row to spare for a draft
  Engine narrow(4, no_rows);
  ASSERT_TRUE(narrow.Run({r})[0].status.ok());
  EXPECT_EQ(narrow.MaxDraftsInAStep(), 0);
  EXPECT_EQ(narrow.generator->Stats().num_draft_tokens, 0);
}

TEST(SpeculativeGeneratorTest, BadSettingsAreRefused) {
  for (const auto& [tokens, max_ngram, min_ngram] : {std::tuple{-1, 3, 1}, {2, 3, 0}, {2, 1, 2}}) {
    GeneratorOptions options;
    options.speculate_tokens = tokens;
    options.speculate_ngram_max = max_ngram;
    options.speculate_ngram_min = min_ngram;
    auto created = Generator::Create(std::make_unique<FakeModelRunner>(FakeModelRunnerOptions{}),
                                     nullptr, options);
    EXPECT_EQ(created.status().code(), absl::StatusCode::kInvalidArgument);
  }
}

}  // namespace
}  // namespace ringserve::engine
