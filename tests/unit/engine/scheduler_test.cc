#include "worker/engine/scheduler.h"

#include <memory>
#include <numeric>
#include <vector>

#include "gtest/gtest.h"
#include "kvcache/kv_cache_manager.h"

namespace ringserve::engine {
namespace {

using kvcache::KvCacheManager;

class SchedulerTest : public ::testing::Test {
 protected:
  void Make(int32_t num_blocks, SchedulerLimits limits, std::function<bool()> release_idle = {}) {
    kv_ = std::make_unique<KvCacheManager>(
        kvcache::KvCacheOptions{.num_blocks = num_blocks, .block_size_tokens = 4});
    scheduler_ = std::make_unique<Scheduler>(kv_.get(), limits, std::move(release_idle));
  }

  // A sequence of `n` distinct tokens starting at `first`.
  SchedSeq* NewSeq(int32_t n, int32_t first, int32_t priority = 0) {
    auto seq = std::make_unique<SchedSeq>();
    seq->seq_id = next_id_;
    seq->arrival = next_id_++;
    seq->priority = priority;
    seq->tokens.resize(static_cast<size_t>(n));
    std::iota(seq->tokens.begin(), seq->tokens.end(), first);
    seqs_.push_back(std::move(seq));
    return seqs_.back().get();
  }

  // Runs a step as the generator does; every sampling chunk gets token 1 appended.
  StepPlan Step() {
    StepPlan plan = scheduler_->Schedule();
    scheduler_->Commit(plan);
    for (const ScheduledChunk& c : plan.chunks) {
      if (c.sample) scheduler_->AppendToken(c.seq, 1);
    }
    EXPECT_TRUE(kv_->Validate().ok()) << kv_->Validate();
    return plan;
  }

  // `n` sequences with the same `prompt_tokens`-token prompt and two tokens of their own
  // after it, queued.
  std::vector<SchedSeq*> EnqueueBurst(int n, int32_t prompt_tokens) {
    std::vector<SchedSeq*> burst;
    for (int i = 0; i < n; ++i) {
      SchedSeq* seq = NewSeq(prompt_tokens, 100);
      seq->tokens.push_back(500 + i);
      seq->tokens.push_back(600 + i);
      burst.push_back(seq);
      scheduler_->Enqueue(seq);
    }
    return burst;
  }

  void Finish(SchedSeq* seq) {
    scheduler_->Remove(seq);
    seq->lease.Reset();
  }

  std::unique_ptr<KvCacheManager> kv_;
  std::unique_ptr<Scheduler> scheduler_;
  std::vector<std::unique_ptr<SchedSeq>> seqs_;
  uint64_t next_id_ = 1;
};

TEST_F(SchedulerTest, PrefillIsChunkedUnderTheTokenBudget) {
  Make(64, {.max_batch_tokens = 8, .max_seqs = 4});
  SchedSeq* a = NewSeq(20, 100);
  scheduler_->Enqueue(a);
  std::vector<std::pair<int32_t, int32_t>> chunks;
  std::vector<bool> samples;
  for (int i = 0; i < 3; ++i) {
    StepPlan plan = Step();
    ASSERT_EQ(plan.chunks.size(), 1U);
    chunks.emplace_back(plan.chunks[0].start, plan.chunks[0].num_tokens);
    samples.push_back(plan.chunks[0].sample);
  }
  EXPECT_EQ(chunks, (std::vector<std::pair<int32_t, int32_t>>{{0, 8}, {8, 8}, {16, 4}}));
  EXPECT_EQ(samples, (std::vector<bool>{false, false, true}));
  StepPlan decode = Step();
  ASSERT_EQ(decode.chunks.size(), 1U);
  EXPECT_EQ(decode.chunks[0].start, 20);
  EXPECT_EQ(decode.num_decode_seqs, 1);
}

TEST_F(SchedulerTest, DecodesGoFirstAndPrefillFillsTheRest) {
  Make(64, {.max_batch_tokens = 8, .max_seqs = 4});
  SchedSeq* a = NewSeq(5, 100);
  SchedSeq* b = NewSeq(5, 200);
  scheduler_->Enqueue(a);
  scheduler_->Enqueue(b);
  Step();  // both prefill whole (5 + 3 of 8: b gets a chunk of 3)
  SchedSeq* c = NewSeq(30, 300);
  scheduler_->Enqueue(c);
  StepPlan plan = Step();
  // a decodes (1), b continues its prefill (2 left), c is admitted with the rest (5).
  ASSERT_EQ(plan.chunks.size(), 3U);
  EXPECT_EQ(plan.chunks[0].seq, a);
  EXPECT_EQ(plan.chunks[0].num_tokens, 1);
  EXPECT_EQ(plan.chunks[1].seq, b);
  EXPECT_EQ(plan.chunks[1].num_tokens, 2);
  EXPECT_EQ(plan.chunks[2].seq, c);
  EXPECT_EQ(plan.chunks[2].num_tokens, 5);
  EXPECT_EQ(plan.num_tokens, 8);
}

TEST_F(SchedulerTest, MaxSeqsCapsTheStepAndTheRunningSet) {
  Make(64, {.max_batch_tokens = 64, .max_seqs = 2});
  for (int i = 0; i < 3; ++i) scheduler_->Enqueue(NewSeq(3, 10 * i));
  StepPlan plan = Step();
  EXPECT_EQ(plan.chunks.size(), 2U);
  EXPECT_EQ(scheduler_->num_running(), 2U);
  EXPECT_EQ(scheduler_->num_waiting(), 1U);
}

TEST_F(SchedulerTest, ABurstSharingAPromptComputesItsFirstBlocksOnce) {
  Make(64, {.max_batch_tokens = 64, .max_seqs = 8});
  // Three requests arrive together with the same 8-token system prompt and their own
  // 2-token questions; a fourth one is unrelated.
  const std::vector<SchedSeq*> burst = EnqueueBurst(3, 8);
  SchedSeq* other = NewSeq(10, 300);
  scheduler_->Enqueue(other);

  StepPlan first = Step();
  ASSERT_EQ(first.chunks.size(), 2U);  // the first of the burst and the unrelated one
  EXPECT_EQ(first.chunks[0].seq, burst[0]);
  EXPECT_EQ(first.chunks[1].seq, other);
  EXPECT_EQ(scheduler_->num_waiting(), 2U);

  StepPlan second = Step();
  // The others find both prompt blocks cached and compute only their own two tokens.
  ASSERT_EQ(second.first_admissions.size(), 2U);
  for (const auto& [seq, cached] : second.first_admissions) EXPECT_EQ(cached, 8);
  for (const ScheduledChunk& chunk : second.chunks) {
    if (chunk.seq == burst[1] || chunk.seq == burst[2]) {
      EXPECT_EQ(chunk.num_tokens, 2);
    }
  }
  EXPECT_EQ(scheduler_->num_waiting(), 0U);
}

TEST_F(SchedulerTest, ABurstSharingALongPromptComputesItOnceOverSeveralSteps) {
  // A 16-token system prompt under an 8-token step budget takes its first request two
  // steps; the others wait until it is cached instead of computing its second half too.
  Make(64, {.max_batch_tokens = 8, .max_seqs = 8});
  const std::vector<SchedSeq*> burst = EnqueueBurst(3, 16);
  int32_t computed = 0;  // prompt tokens the steps compute in all
  std::vector<std::pair<SchedSeq*, int32_t>> admissions;
  for (int step = 0; step < 6; ++step) {
    const StepPlan plan = Step();
    for (const ScheduledChunk& chunk : plan.chunks) {
      if (chunk.start < 18) computed += chunk.num_tokens;
    }
    admissions.insert(admissions.end(), plan.first_admissions.begin(), plan.first_admissions.end());
  }
  ASSERT_EQ(admissions.size(), 3U);
  EXPECT_EQ(admissions[0], std::make_pair(burst[0], 0));
  EXPECT_EQ(admissions[1], std::make_pair(burst[1], 16));
  EXPECT_EQ(admissions[2], std::make_pair(burst[2], 16));
  EXPECT_EQ(computed, 18 + 2 + 2);
}

TEST_F(SchedulerTest, ASequenceWaitsOnlyForTheBlockItWouldComputeNext) {
  Make(64, {.max_batch_tokens = 12, .max_seqs = 8});
  SchedSeq* long_prompt = NewSeq(20, 100);
  scheduler_->Enqueue(long_prompt);
  Step();  // [0, 12) of the long prompt; [12, 20) comes next, leaving 4 tokens of budget
  // Shares the first 8 tokens (cached) and then diverges: its next block is its own.
  SchedSeq* diverging = NewSeq(8, 100);
  for (int32_t t = 0; t < 8; ++t) diverging->tokens.push_back(900 + t);
  diverging->tokens.push_back(1);
  // Shares 16 tokens: its next block (tokens 12..15) is one being computed.
  SchedSeq* sharing = NewSeq(16, 100);
  sharing->tokens.push_back(2);
  scheduler_->Enqueue(diverging);
  scheduler_->Enqueue(sharing);
  const StepPlan plan = Step();
  ASSERT_EQ(plan.first_admissions.size(), 1U);
  EXPECT_EQ(plan.first_admissions[0], std::make_pair(diverging, 8));
  EXPECT_EQ(scheduler_->num_waiting(), 1U);
}

TEST_F(SchedulerTest, PromptsWithoutAFullSharedBlockAreNotHeldBack) {
  Make(64, {.max_batch_tokens = 64, .max_seqs = 8});
  // Identical 4-token prompts have no full block followed by a token: nothing to share.
  for (int i = 0; i < 3; ++i) scheduler_->Enqueue(NewSeq(4, 100));
  EXPECT_EQ(Step().chunks.size(), 3U);
}

TEST_F(SchedulerTest, PreemptsTheNewestAndResumesItByRecompute) {
  // 4 blocks of 4 tokens: two sequences of 8 tokens fill the pool.
  Make(4, {.max_batch_tokens = 64, .max_seqs = 4});
  SchedSeq* older = NewSeq(7, 100);
  SchedSeq* newer = NewSeq(7, 200);
  scheduler_->Enqueue(older);
  scheduler_->Enqueue(newer);
  Step();                 // prefill 7 each: 2 blocks each; both sample (8 tokens known)
  Step();                 // decode position 7: still in block 1
  newer->draft = {5, 6};  // as the generator proposes for a decoding sequence
  // Position 8 needs a fifth block: the newer sequence gives its blocks back.
  StepPlan plan = Step();
  EXPECT_EQ(plan.num_preempted, 1);
  ASSERT_EQ(plan.chunks.size(), 1U);
  EXPECT_EQ(plan.chunks[0].seq, older);
  ASSERT_EQ(scheduler_->running().size(), 1U);
  EXPECT_EQ(scheduler_->running()[0], older);
  // The generator proposes drafts for running sequences only: a waiting one keeps none.
  EXPECT_TRUE(newer->draft.empty());
  EXPECT_EQ(newer->num_preemptions, 1);
  EXPECT_FALSE(newer->lease.active());
  EXPECT_EQ(newer->tokens.size(), 9U);  // its tokens are kept
  EXPECT_EQ(scheduler_->num_waiting(), 1U);
  EXPECT_EQ(scheduler_->num_preemptions(), 1);

  Finish(older);
  plan = Step();
  ASSERT_EQ(plan.chunks.size(), 1U);
  EXPECT_EQ(plan.chunks[0].seq, newer);
  // Its blocks were released tail first, so the older one reused the tail block; the head
  // block was still cached and only the rest is recomputed before it samples again.
  EXPECT_EQ(plan.chunks[0].start, 4);
  EXPECT_EQ(plan.chunks[0].num_tokens, 5);
  EXPECT_TRUE(plan.chunks[0].sample);
  EXPECT_TRUE(plan.first_admissions.empty());  // a resumption, not a first admission
  Finish(newer);
  EXPECT_EQ(kv_->Stats().num_used_blocks, 0);
}

TEST_F(SchedulerTest, LowerPriorityIsPreemptedFirstWhateverItsAge) {
  Make(4, {.max_batch_tokens = 64, .max_seqs = 4});
  SchedSeq* low = NewSeq(7, 100, /*priority=*/-1);
  SchedSeq* high = NewSeq(7, 200, /*priority=*/5);
  scheduler_->Enqueue(low);
  scheduler_->Enqueue(high);
  Step();
  Step();
  StepPlan plan = Step();
  EXPECT_EQ(plan.num_preempted, 1);
  EXPECT_EQ(low->num_preemptions, 1);
  EXPECT_EQ(high->num_preemptions, 0);
}

TEST_F(SchedulerTest, AdmissionPreemptsOnlyStrictlyLowerPriority) {
  Make(4, {.max_batch_tokens = 64, .max_seqs = 4});
  SchedSeq* running = NewSeq(11, 100);
  scheduler_->Enqueue(running);
  Step();                           // 3 blocks used, 1 free
  SchedSeq* same = NewSeq(5, 200);  // needs 2 blocks
  scheduler_->Enqueue(same);
  StepPlan plan = Step();
  EXPECT_EQ(plan.num_preempted, 0);  // equal priority waits its turn
  EXPECT_EQ(scheduler_->num_waiting(), 1U);

  SchedSeq* urgent = NewSeq(3, 300, /*priority=*/1);
  scheduler_->Enqueue(urgent);
  plan = Step();  // the running sequence's decode takes the last block first
  EXPECT_EQ(plan.num_preempted, 1);
  EXPECT_EQ(running->num_preemptions, 1);
  EXPECT_EQ(same->num_preemptions, 0);
  ASSERT_EQ(plan.chunks.size(), 1U);
  EXPECT_EQ(plan.chunks[0].seq, urgent);
}

// With every seat taken and blocks to spare, a waiting sequence of strictly higher
// priority takes the seat of the lowest running one (the newest of those); equal priority
// waits for a seat to free.
TEST_F(SchedulerTest, HigherPriorityTakesASeatWhenEveryOneIsTaken) {
  Make(64, {.max_batch_tokens = 64, .max_seqs = 2});
  SchedSeq* low = NewSeq(5, 100, /*priority=*/-1);
  SchedSeq* normal = NewSeq(5, 200);
  scheduler_->Enqueue(low);
  scheduler_->Enqueue(normal);
  Step();
  ASSERT_EQ(scheduler_->num_running(), 2U);
  SchedSeq* same = NewSeq(3, 300);
  scheduler_->Enqueue(same);
  StepPlan plan = Step();
  EXPECT_EQ(plan.num_preempted, 1) << "only the lower-priority one gives up its seat";
  EXPECT_EQ(low->num_preemptions, 1);
  EXPECT_EQ(normal->num_preemptions, 0);
  EXPECT_EQ(scheduler_->num_running(), 2U);
  EXPECT_EQ(scheduler_->num_waiting(), 1U);  // low, behind nothing of its rank

  SchedSeq* another = NewSeq(3, 400);  // equal to both running ones: waits
  scheduler_->Enqueue(another);
  plan = Step();
  EXPECT_EQ(plan.num_preempted, 0);
  EXPECT_EQ(scheduler_->num_running(), 2U);
  EXPECT_EQ(plan.chunks.size(), 2U);
  for (const ScheduledChunk& c : plan.chunks) EXPECT_TRUE(c.seq == normal || c.seq == same);

  Finish(same);
  plan = Step();  // the freed seat goes to the waiting normal-priority one before low
  EXPECT_EQ(scheduler_->num_running(), 2U);
  EXPECT_EQ(another->num_preemptions, 0);
  bool another_ran = false;
  for (const ScheduledChunk& c : plan.chunks) another_ran = another_ran || c.seq == another;
  EXPECT_TRUE(another_ran);
  EXPECT_EQ(low->num_preemptions, 1);
}

TEST_F(SchedulerTest, IdleKvIsGivenBackBeforeAnyPreemption) {
  std::vector<kvcache::SequenceLease> idle;
  int released = 0;
  Make(4, {.max_batch_tokens = 64, .max_seqs = 4}, [&] {
    if (idle.empty()) return false;
    idle.pop_back();
    ++released;
    return true;
  });
  // An idle pinned sequence holding 2 blocks, as a session would.
  const std::vector<int32_t> pinned = {1, 2, 3, 4, 5, 6, 7, 8};
  ASSERT_TRUE(kv_->Admit(999, pinned, 8).has_value());
  kv_->Commit(999, 8);
  idle.emplace_back(kv_.get(), 999);
  SchedSeq* a = NewSeq(12, 100);
  scheduler_->Enqueue(a);
  StepPlan plan = Step();
  EXPECT_EQ(released, 1);
  EXPECT_EQ(plan.num_preempted, 0);
  ASSERT_EQ(plan.chunks.size(), 1U);
  EXPECT_EQ(plan.chunks[0].num_tokens, 12);
}

}  // namespace
}  // namespace ringserve::engine
