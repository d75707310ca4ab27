// The generator over the deterministic fake model: scheduling, sessions, forks,
// cancellation and back-pressure, with exact expected outputs.
#include "worker/engine/generator.h"

#include <atomic>
#include <chrono>
#include <memory>
#include <numeric>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/engine/fake_rule.h"
#include "worker/engine/fake_model_runner.h"

namespace ringserve::engine {
namespace {

using ::testing::HasSubstr;

using testing::Ids;
constexpr int32_t kVocab = testing::kRuleVocab;

// The fake model's rule: the next token is a function of the whole history.
int32_t NextToken(std::span<const int32_t> history) { return testing::RuleNextToken(history); }

std::vector<int32_t> Expected(std::vector<int32_t> history, int n) {
  std::vector<int32_t> out;
  for (int i = 0; i < n; ++i) {
    out.push_back(NextToken(history));
    history.push_back(out.back());
  }
  return out;
}

std::vector<int32_t> Prompt(int n, int32_t salt) { return testing::RulePrompt(n, salt); }

JobRequest Request(std::vector<int32_t> tokens, int max_tokens, float temperature = 0) {
  JobRequest r;
  r.tokens = std::move(tokens);
  r.max_tokens = max_tokens;
  r.sampling.temperature = temperature;
  r.sampling.seed = 7;
  return r;
}

struct Fixture {
  explicit Fixture(FakeModelRunnerOptions fake = {}, GeneratorOptions options = {}) {
    fake.vocab_size = kVocab;
    auto runner = std::make_unique<FakeModelRunner>(std::move(fake));
    this->fake = runner.get();
    auto created = Generator::Create(std::move(runner), nullptr, options);
    EXPECT_TRUE(created.ok()) << created.status();
    generator = *std::move(created);
  }
  JobEvent Run(JobRequest request) { return testing::RunJob(*generator, std::move(request)); }
  int32_t UsedBlocks() const { return generator->Stats().kv.num_used_blocks; }

  FakeModelRunner* fake = nullptr;
  std::unique_ptr<Generator> generator;
};

FakeModelRunnerOptions Rule() {
  FakeModelRunnerOptions o;
  o.next_token = NextToken;
  return o;
}

TEST(GeneratorTest, GreedyFollowsTheModelAndReportsUsage) {
  Fixture f(Rule());
  const std::vector<int32_t> prompt = Prompt(9, 1);
  JobEvent e = f.Run(Request(prompt, 12));
  ASSERT_TRUE(e.status.ok()) << e.status;
  EXPECT_EQ(Ids(e), Expected(prompt, 12));
  EXPECT_EQ(e.result.finish_reason, FinishReason::kMaxTokens);
  EXPECT_EQ(e.result.usage.prompt_tokens, 9);
  EXPECT_EQ(e.prompt_tokens, 9);  // told with the first token already
  EXPECT_EQ(e.result.usage.completion_tokens, 12);
  EXPECT_EQ(e.result.usage.cached_tokens, 0);
  EXPECT_GE(e.result.usage.time_to_first_token, e.result.usage.queue_time);
  EXPECT_EQ(f.UsedBlocks(), 0);
}

TEST(GeneratorTest, StopTokenAndContextLengthEndGeneration) {
  Fixture f(Rule());
  const std::vector<int32_t> prompt = Prompt(5, 2);
  const std::vector<int32_t> expected = Expected(prompt, 20);
  JobRequest stop = Request(prompt, 20);
  stop.stop_token_ids = {expected[3]};
  JobEvent e = f.Run(stop);
  ASSERT_TRUE(e.status.ok()) << e.status;
  // The first occurrence of the stop id ends it, and the id is delivered.
  const auto at = std::find(expected.begin(), expected.end(), expected[3]) - expected.begin();
  EXPECT_EQ(Ids(e), std::vector<int32_t>(expected.begin(), expected.begin() + at + 1));
  EXPECT_EQ(e.result.finish_reason, FinishReason::kStopToken);
  EXPECT_EQ(e.result.stop_match, std::to_string(expected[3]));

  JobRequest unbounded = Request(Prompt(250, 3), 1);
  unbounded.max_tokens.reset();  // until the context (256) is full
  e = f.Run(unbounded);
  ASSERT_TRUE(e.status.ok()) << e.status;
  EXPECT_EQ(e.tokens.size(), 6U);
  EXPECT_EQ(e.result.finish_reason, FinishReason::kContextLength);
}

TEST(GeneratorTest, EosEndsGenerationUnlessIgnored) {
  const std::vector<int32_t> prompt = Prompt(6, 4);
  const std::vector<int32_t> expected = Expected(prompt, 10);
  GeneratorOptions options;
  options.eos_token_ids = {expected[4]};
  Fixture f(Rule(), options);
  JobEvent e = f.Run(Request(prompt, 10));
  const auto at = std::find(expected.begin(), expected.end(), expected[4]) - expected.begin();
  EXPECT_EQ(e.tokens.size(), static_cast<size_t>(at + 1));
  EXPECT_EQ(e.result.finish_reason, FinishReason::kEos);
  JobRequest ignore = Request(prompt, 10);
  ignore.ignore_eos = true;
  EXPECT_EQ(Ids(f.Run(ignore)), expected);
}

// min_tokens: the end-of-sequence token the model wants at step 5 cannot be picked before
// 8 tokens, nor a stop id, so the job runs at least 8; ignore_eos leaves only the stop ids.
TEST(GeneratorTest, MinTokensHoldsBackEndOfSequenceAndStopIds) {
  const std::vector<int32_t> prompt = Prompt(6, 4);
  const std::vector<int32_t> expected = Expected(prompt, 10);
  const int32_t eos = expected[4];
  GeneratorOptions options;
  options.eos_token_ids = {eos};
  Fixture f(Rule(), options);
  for (const bool as_stop_id : {false, true}) {
    JobRequest r = Request(prompt, 20);
    r.min_tokens = 8;
    if (as_stop_id) {
      r.ignore_eos = true;
      r.stop_token_ids = {eos};
    }
    const JobEvent e = f.Run(r);
    ASSERT_TRUE(e.status.ok()) << e.status;
    const std::vector<int32_t> ids = Ids(e);
    ASSERT_GE(ids.size(), 8U) << as_stop_id;
    EXPECT_EQ(std::vector<int32_t>(ids.begin(), ids.begin() + 4),
              std::vector<int32_t>(expected.begin(), expected.begin() + 4));
    EXPECT_EQ(std::count(ids.begin(), ids.begin() + 8, eos), 0) << as_stop_id;
  }
  JobRequest too_many = Request(prompt, 4);
  too_many.min_tokens = 5;
  const absl::Status s = f.generator->Submit(too_many).status();
  EXPECT_TRUE(absl::StartsWith(s.message(), "stop.min_tokens: ")) << s;
  // Without max_tokens, min_tokens must fit the context left after the input.
  JobRequest beyond = Request(prompt, 4);
  beyond.max_tokens.reset();
  beyond.min_tokens = 1000;
  const JobEvent refused = f.Run(beyond);
  EXPECT_TRUE(absl::IsInvalidArgument(refused.status)) << refused.status;
  EXPECT_TRUE(absl::StartsWith(refused.status.message(), "stop.min_tokens: ")) << refused.status;
}

TEST(GeneratorTest, BadRequestsAreRefusedNamingTheField) {
  Fixture f(Rule());
  auto code = [&](JobRequest r) { return f.generator->Submit(std::move(r)).status(); };
  EXPECT_TRUE(absl::IsInvalidArgument(code(Request({}, 4))));
  absl::Status s = code(Request({1, kVocab}, 4));
  EXPECT_TRUE(absl::IsInvalidArgument(s));
  EXPECT_NE(s.message().find("tokens"), std::string::npos);
  // Errors name the field by its path in GenerateRequest, as the client sent it.
  s = code(Request({1, 2}, -1));
  EXPECT_TRUE(absl::StartsWith(s.message(), "stop.max_tokens: ")) << s;
  s = code(Request(Prompt(200, 1), 100));  // 200 + 100 > 256
  EXPECT_TRUE(absl::StartsWith(s.message(), "stop.max_tokens: ")) << s;
  JobRequest temp = Request({1, 2}, 4);
  temp.sampling.temperature = -1;
  s = code(temp);
  EXPECT_NE(s.message().find("temperature"), std::string::npos);
  JobRequest stop = Request({1, 2}, 4);
  stop.stop_strings = {"x"};  // this fixture has no tokenizer
  s = code(stop);
  EXPECT_TRUE(absl::IsInvalidArgument(s));
  EXPECT_TRUE(absl::StartsWith(s.message(), "stop.stop: ")) << s;
  JobRequest stop_id = Request({1, 2}, 4);
  stop_id.stop_token_ids = {kVocab};
  s = code(stop_id);
  EXPECT_TRUE(absl::StartsWith(s.message(), "stop.stop_token_ids: ")) << s;
  JobRequest format = Request({1, 2}, 4);
  format.response_format = grammar::Grammar::AnyObject();  // needs token bytes
  s = code(format);
  EXPECT_TRUE(absl::IsInvalidArgument(s));
  EXPECT_TRUE(absl::StartsWith(s.message(), "response_format: ")) << s;
  // A negative count can never match a history: a malformed request, not a stale session.
  JobRequest history = Request({1, 2}, 4);
  history.append = true;
  history.session_id = "s";
  history.expected_history_tokens = -1;
  s = code(history);
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_TRUE(absl::StartsWith(s.message(), "expected_history_tokens: ")) << s;
  EXPECT_EQ(f.generator->Stats().num_jobs_submitted, 0);
}

// Submits every request from its own thread at staggered times; returns the outputs.
std::vector<JobEvent> RunConcurrently(Fixture& f, const std::vector<JobRequest>& requests) {
  std::vector<JobEvent> out(requests.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < requests.size(); ++i) {
    threads.emplace_back([&, i] {
      std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int>(i % 4)));
      out[i] = f.Run(requests[i]);
    });
  }
  for (std::thread& t : threads) t.join();
  return out;
}

// Holds the engine in its first forward pass until every request is queued, so they all
// compete for the same steps.
std::vector<JobEvent> SubmitTogether(Fixture& f, const std::vector<JobRequest>& requests,
                                     std::atomic<bool>* gate) {
  gate->store(true);
  std::vector<JobHandle> handles;
  for (const JobRequest& r : requests) {
    absl::StatusOr<JobHandle> h = f.generator->Submit(r);
    EXPECT_TRUE(h.ok()) << h.status();
    handles.push_back(*std::move(h));
  }
  gate->store(false);
  std::vector<JobEvent> out;
  for (JobHandle& h : handles) out.push_back(h.Collect());
  return out;
}

TEST(GeneratorTest, BatchedJobsGiveWhatEachGivesAlone) {
  FakeModelRunnerOptions fake;  // hashed logits: sampling depends on every value
  fake.max_seqs = 6;
  fake.max_batch_tokens = 24;
  Fixture f(fake);
  std::vector<JobRequest> requests;
  for (int i = 0; i < 12; ++i) {
    JobRequest r = Request(Prompt(3 + 5 * i % 23, i), 8 + i % 5, i % 2 == 0 ? 0.0F : 0.8F);
    r.sampling.seed = 100 + static_cast<uint64_t>(i);
    requests.push_back(r);
  }
  std::vector<std::vector<int32_t>> alone;
  for (const JobRequest& r : requests) alone.push_back(Ids(f.Run(r)));
  const std::vector<JobEvent> together = RunConcurrently(f, requests);
  for (size_t i = 0; i < requests.size(); ++i) {
    ASSERT_TRUE(together[i].status.ok()) << together[i].status;
    EXPECT_EQ(Ids(together[i]), alone[i]) << "request " << i;
  }
  EXPECT_EQ(f.UsedBlocks(), 0);
}

// A step's rows with host work (penalties, logprobs) are finished on several threads; each
// job's sampler runs on one of them, so the tokens are the same with one thread or many.
TEST(GeneratorTest, SamplingThreadsDoNotChangeTheTokens) {
  std::vector<JobRequest> requests;
  for (int i = 0; i < 10; ++i) {
    JobRequest r = Request(Prompt(4 + 3 * i % 17, i), 12, i % 3 == 0 ? 0.0F : 0.9F);
    r.sampling.seed = 300 + static_cast<uint64_t>(i);
    r.sampling.top_p = i % 2 == 0 ? 1.0F : 0.8F;
    if (i % 4 != 3) r.sampling.frequency_penalty = 0.5F;
    if (i % 3 == 1) r.sampling.num_logprobs = 3;
    requests.push_back(r);
  }
  std::vector<std::vector<std::vector<int32_t>>> runs;
  for (const int32_t threads : {1, 4}) {
    FakeModelRunnerOptions fake;
    fake.max_seqs = 8;
    GeneratorOptions options;
    options.sampling_threads = threads;
    Fixture f(fake, options);
    std::vector<std::vector<int32_t>> ids;
    for (const JobEvent& e : RunConcurrently(f, requests)) {
      EXPECT_TRUE(e.status.ok()) << e.status;
      ids.push_back(Ids(e));
    }
    runs.push_back(ids);
  }
  EXPECT_EQ(runs[0], runs[1]);
}

// Every row's token is picked by the runner from its penalties and chain, and its logprobs
// computed there; only rows with host work (penalties beyond the pass's room) bring their
// logits back. Neither changes a token or a logprob.
TEST(GeneratorTest, OnlyRowsWithHostWorkBringTheirLogitsBack) {
  FakeModelRunnerOptions fake;
  fake.max_seqs = 4;
  Fixture f(fake);
  for (const float temperature : {0.0F, 1.0F}) {
    JobRequest plain = Request(Prompt(5, 1), 6, temperature);
    plain.sampling.top_p = 0.9F;
    const size_t before_plain = f.fake->Steps().size();
    const JobEvent alone = f.Run(plain);
    ASSERT_TRUE(alone.status.ok()) << alone.status;
    std::vector<FakeStep> steps = f.fake->Steps();
    ASSERT_GT(steps.size(), before_plain);
    for (size_t i = before_plain; i < steps.size(); ++i) EXPECT_TRUE(steps[i].logits_rows.empty());
    JobRequest logprobs = plain;
    logprobs.sampling.num_logprobs = 2;
    const size_t before = steps.size();
    const JobEvent with_logprobs = f.Run(logprobs);
    ASSERT_TRUE(with_logprobs.status.ok()) << with_logprobs.status;
    EXPECT_EQ(Ids(with_logprobs), Ids(alone)) << "temperature " << temperature;
    steps = f.fake->Steps();
    for (size_t i = before; i < steps.size(); ++i) {
      EXPECT_TRUE(steps[i].logits_rows.empty()) << i;
      EXPECT_EQ(steps[i].logprob_rows, std::vector<int32_t>{0}) << i;
    }
    for (const GeneratedToken& t : with_logprobs.tokens) {
      ASSERT_EQ(t.top_logprobs.size(), 2U);
      EXPECT_LT(t.logprob, 0.0F);
      EXPECT_GE(t.top_logprobs[0].second, t.top_logprobs[1].second);
      if (temperature == 0.0F) {
        EXPECT_EQ(t.top_logprobs[0], std::pair(t.id, t.logprob));
      }
    }
    // Penalties go to the device with the chain: no logits back.
    JobRequest penalised = logprobs;
    penalised.sampling.frequency_penalty = 0.5F;
    penalised.sampling.repetition_penalty = 1.2F;
    const size_t before_penalised = steps.size();
    const JobEvent on_device = f.Run(penalised);
    ASSERT_TRUE(on_device.status.ok()) << on_device.status;
    steps = f.fake->Steps();
    for (size_t i = before_penalised; i < steps.size(); ++i) {
      EXPECT_TRUE(steps[i].logits_rows.empty()) << i;
      EXPECT_GE(steps[i].num_penalties, 5U) << i;  // the prompt's tokens at least
    }
    // A runner without room for them: the host applies them, to the same tokens.
    FakeModelRunnerOptions no_room = fake;
    no_room.max_penalty_entries = 0;
    Fixture g(no_room);
    const JobEvent on_host = g.Run(penalised);
    ASSERT_TRUE(on_host.status.ok()) << on_host.status;
    EXPECT_EQ(Ids(on_host), Ids(on_device)) << "temperature " << temperature;
    ASSERT_EQ(on_host.tokens.size(), on_device.tokens.size());
    for (size_t i = 0; i < on_host.tokens.size(); ++i) {
      EXPECT_EQ(on_host.tokens[i].logprob, on_device.tokens[i].logprob) << i;
      EXPECT_EQ(on_host.tokens[i].top_logprobs, on_device.tokens[i].top_logprobs) << i;
    }
    for (const FakeStep& step : g.fake->Steps()) {
      EXPECT_EQ(step.logits_rows, std::vector<int32_t>{0});
      EXPECT_EQ(step.logprob_rows, std::vector<int32_t>{0});
      EXPECT_EQ(step.num_penalties, 0U);
    }
  }
}

TEST(GeneratorTest, UnderMemoryPressureEveryJobFinishesWithTheSameTokens) {
  FakeModelRunnerOptions fake = Rule();
  fake.num_kv_blocks = 16;  // 64 tokens; each job needs 32 (8 blocks): 8 jobs want 64 blocks
  fake.max_seqs = 8;
  fake.max_batch_tokens = 64;
  std::atomic<bool> gate{false};
  fake.on_forward = [&] {
    while (gate.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  };
  Fixture f(fake);
  std::vector<JobRequest> requests;
  for (int i = 0; i < 8; ++i) requests.push_back(Request(Prompt(12, 10 + i), 20));
  const std::vector<JobEvent> out = SubmitTogether(f, requests, &gate);
  for (size_t i = 0; i < requests.size(); ++i) {
    ASSERT_TRUE(out[i].status.ok()) << out[i].status;
    EXPECT_EQ(Ids(out[i]), Expected(requests[i].tokens, 20)) << "request " << i;
  }
  const GeneratorStats stats = f.generator->Stats();
  EXPECT_GT(stats.num_preemptions, 0);
  EXPECT_EQ(stats.kv.num_used_blocks, 0);
  int32_t reported = 0;
  for (const JobEvent& e : out) reported += e.result.usage.num_preemptions;
  EXPECT_EQ(reported, stats.num_preemptions);
}

TEST(GeneratorTest, ARequestLargerThanThePoolIsRefusedAndOthersGoOn) {
  FakeModelRunnerOptions fake = Rule();
  fake.num_kv_blocks = 8;  // 32 tokens
  Fixture f(fake);
  JobEvent big = f.Run(Request(Prompt(20, 1), 20));
  EXPECT_TRUE(absl::IsResourceExhausted(big.status)) << big.status;
  JobEvent ok = f.Run(Request(Prompt(10, 1), 10));
  EXPECT_TRUE(ok.status.ok()) << ok.status;
  EXPECT_EQ(f.generator->Stats().num_jobs_failed, 1);
}

TEST(GeneratorTest, CancelFromAnotherThreadFreesTheBlocksByTheNextStep) {
  FakeModelRunnerOptions fake = Rule();
  fake.on_forward = [] { std::this_thread::sleep_for(std::chrono::milliseconds(1)); };
  Fixture f(fake);
  absl::StatusOr<JobHandle> handle = f.generator->Submit(Request(Prompt(30, 5), 200));
  ASSERT_TRUE(handle.ok());
  ASSERT_TRUE(handle->Next().has_value());  // running: it holds blocks now
  // Tokens stream during a step; the stats are published at its end.
  for (int i = 0; i < 5000 && f.UsedBlocks() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_GT(f.UsedBlocks(), 0);
  std::thread canceller([&] { handle->Cancel(); });
  canceller.join();
  JobEvent rest = handle->Collect();
  EXPECT_TRUE(absl::IsCancelled(rest.status)) << rest.status;
  EXPECT_LT(rest.tokens.size(), 199U);
  // The final event is sent after the blocks are released, in the same engine pass.
  EXPECT_EQ(f.UsedBlocks(), 0);
  EXPECT_EQ(f.generator->Stats().num_jobs_cancelled, 1);
}

TEST(GeneratorTest, DroppingTheHandleCancelsTheJob) {
  Fixture f(Rule());
  {
    absl::StatusOr<JobHandle> handle = f.generator->Submit(Request(Prompt(10, 6), 200));
    ASSERT_TRUE(handle.ok());
  }
  ASSERT_TRUE(f.generator->Drain(absl::Seconds(30)));
  EXPECT_EQ(f.UsedBlocks(), 0);
}

TEST(GeneratorTest, AReaderThatFallsBehindIsCancelledWithAReason) {
  GeneratorOptions options;
  options.max_pending_tokens = 4;
  Fixture f(Rule(), options);
  absl::StatusOr<JobHandle> handle = f.generator->Submit(Request(Prompt(10, 7), 100));
  ASSERT_TRUE(handle.ok());
  ASSERT_TRUE(f.generator->Drain(absl::Seconds(30)));  // never read while it runs
  JobEvent e = handle->Collect();
  EXPECT_TRUE(absl::IsResourceExhausted(e.status)) << e.status;
  EXPECT_NE(e.status.message().find("slowly"), std::string::npos);
  EXPECT_EQ(e.tokens.size(), 4U);
  EXPECT_EQ(f.UsedBlocks(), 0);
}

TEST(GeneratorTest, AFullQueueAnswersResourceExhausted) {
  std::atomic<bool> release{false};
  FakeModelRunnerOptions fake = Rule();
  fake.on_forward = [&] {
    while (!release.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  };
  GeneratorOptions options;
  options.max_jobs = 2;
  Fixture f(fake, options);
  absl::StatusOr<JobHandle> a = f.generator->Submit(Request({2, 3}, 2));
  absl::StatusOr<JobHandle> b = f.generator->Submit(Request({2, 4}, 2));
  absl::StatusOr<JobHandle> c = f.generator->Submit(Request({2, 5}, 2));
  EXPECT_TRUE(a.ok() && b.ok());
  EXPECT_TRUE(absl::IsResourceExhausted(c.status())) << c.status();
  release = true;
  EXPECT_TRUE(a->Collect().status.ok());
  EXPECT_TRUE(b->Collect().status.ok());
}

TEST(GeneratorTest, DrainRefusesNewJobsAndFinishesRunningOnes) {
  Fixture f(Rule());
  absl::StatusOr<JobHandle> running = f.generator->Submit(Request(Prompt(8, 1), 30));
  ASSERT_TRUE(running.ok());
  std::thread reader([&] { EXPECT_TRUE(running->Collect().status.ok()); });
  EXPECT_TRUE(f.generator->Drain(absl::Seconds(30)));
  reader.join();
  EXPECT_TRUE(absl::IsUnavailable(f.generator->Submit(Request({2}, 1)).status()));
}

// ---- Sessions ----

JobRequest Turn(std::string session, std::vector<int32_t> tokens, int max_tokens, bool append) {
  JobRequest r = Request(std::move(tokens), max_tokens);
  r.session_id = std::move(session);
  r.append = append;
  return r;
}

TEST(GeneratorTest, AppendedTurnsReuseTheSessionsKv) {
  Fixture f(Rule());
  const std::vector<int32_t> first = Prompt(10, 1);
  JobEvent t1 = f.Run(Turn("s", first, 6, false));
  ASSERT_TRUE(t1.status.ok()) << t1.status;
  EXPECT_EQ(t1.result.history_tokens, 16);
  const std::vector<int32_t> more = {5, 6, 7};
  JobRequest second = Turn("s", more, 5, true);
  second.expected_history_tokens = 16;
  JobEvent t2 = f.Run(second);
  ASSERT_TRUE(t2.status.ok()) << t2.status;
  std::vector<int32_t> context = first;
  context.insert(context.end(), t1.tokens.size(), 0);
  for (size_t i = 0; i < t1.tokens.size(); ++i) context[first.size() + i] = t1.tokens[i].id;
  context.insert(context.end(), more.begin(), more.end());
  EXPECT_EQ(Ids(t2), Expected(context, 5));
  EXPECT_EQ(t2.result.usage.prompt_tokens, 19);
  EXPECT_EQ(t2.prompt_tokens, 19);  // the history counts, as in the result
  // Everything but the last sampled token of turn 1 was computed and pinned.
  EXPECT_EQ(t2.result.usage.cached_tokens, 15);
  EXPECT_EQ(t2.result.history_tokens, 24);
  EXPECT_EQ(f.generator->Stats().num_pinned_sessions, 1);

  // Without append the input is the whole context; when it extends the history, the
  // pinned sequence continues.
  for (const GeneratedToken& t : t2.tokens) context.push_back(t.id);
  context.push_back(8);
  JobEvent t3 = f.Run(Turn("s", context, 2, false));
  ASSERT_TRUE(t3.status.ok());
  EXPECT_EQ(t3.result.usage.cached_tokens, 23);
  // A context that diverges from the history drops the pin; the prefix cache still finds
  // the whole blocks they share.
  context.resize(18);
  JobEvent t4 = f.Run(Turn("s", context, 2, false));
  ASSERT_TRUE(t4.status.ok());
  EXPECT_EQ(t4.result.usage.cached_tokens, 16);
  EXPECT_EQ(Ids(t4), Expected(context, 2));
  ASSERT_TRUE(f.generator->CloseSession("s").ok());
  EXPECT_EQ(f.UsedBlocks(), 0);
}

// max_tokens 0 computes the input and generates nothing: a session holds it ready, so
// the next turn computes only what it appends.
TEST(GeneratorTest, ZeroMaxTokensComputesTheInputAndGeneratesNothing) {
  Fixture f(Rule());
  const JobEvent plain = f.Run(Request(Prompt(10, 2), 0));
  ASSERT_TRUE(plain.status.ok()) << plain.status;
  EXPECT_TRUE(plain.tokens.empty());
  EXPECT_EQ(plain.result.finish_reason, FinishReason::kMaxTokens);
  EXPECT_EQ(plain.result.usage.prompt_tokens, 10);
  EXPECT_EQ(plain.result.usage.completion_tokens, 0);
  EXPECT_EQ(f.UsedBlocks(), 0);

  const std::vector<int32_t> document = Prompt(21, 3);
  const JobEvent warm = f.Run(Turn("doc", document, 0, false));
  ASSERT_TRUE(warm.status.ok()) << warm.status;
  EXPECT_TRUE(warm.tokens.empty());
  EXPECT_EQ(warm.result.history_tokens, 21);
  const std::vector<int32_t> question = {5, 6, 7};
  JobRequest ask = Turn("doc", question, 4, true);
  ask.expected_history_tokens = 21;
  const JobEvent answer = f.Run(ask);
  ASSERT_TRUE(answer.status.ok()) << answer.status;
  std::vector<int32_t> context = document;
  context.insert(context.end(), question.begin(), question.end());
  EXPECT_EQ(Ids(answer), Expected(context, 4));
  EXPECT_EQ(answer.result.usage.prompt_tokens, 24);
  EXPECT_EQ(answer.result.usage.cached_tokens, 21);  // the whole document was computed
  EXPECT_EQ(answer.result.history_tokens, 28);
  ASSERT_TRUE(f.generator->CloseSession("doc").ok());
  EXPECT_EQ(f.UsedBlocks(), 0);
}

// An embedding job computes its input and ends with the hidden state of its last token
// (the fake's: the first values of the logits after the input), generating nothing; the
// prefix cache serves the same input again, and a batch changes no embedding.
TEST(GeneratorTest, EmbeddingsAreTheLastTokensHiddenStateAloneAndInABatch) {
  FakeModelRunnerOptions fake;  // hashed logits: every input has its own
  fake.max_seqs = 6;
  fake.max_batch_tokens = 24;
  Fixture f(fake);
  const auto embed = [](std::vector<int32_t> tokens) {
    JobRequest r = Request(std::move(tokens), 0);
    r.embed = true;
    return r;
  };
  const auto hidden_after = [&](const std::vector<int32_t>& tokens) {
    const std::vector<float> logits = f.fake->LogitsAfter(tokens);
    return std::vector<float>(logits.begin(), logits.begin() + FakeModelRunner::kHiddenSize);
  };
  const std::vector<int32_t> text = Prompt(37, 4);
  const JobEvent first = f.Run(embed(text));
  ASSERT_TRUE(first.status.ok()) << first.status;
  EXPECT_TRUE(first.tokens.empty());
  EXPECT_EQ(first.result.finish_reason, FinishReason::kMaxTokens);
  EXPECT_EQ(first.result.usage.prompt_tokens, 37);
  EXPECT_EQ(first.result.usage.completion_tokens, 0);
  EXPECT_EQ(first.result.embedding, hidden_after(text));
  const JobEvent again = f.Run(embed(text));
  ASSERT_TRUE(again.status.ok()) << again.status;
  EXPECT_EQ(again.result.embedding, first.result.embedding);
  EXPECT_GT(again.result.usage.cached_tokens, 0) << "the input's full blocks were cached";

  std::vector<JobRequest> requests;
  for (int i = 0; i < 10; ++i) {
    requests.push_back(i % 3 == 2 ? Request(Prompt(5 + 3 * i, i), 6, 0.7F)
                                  : embed(Prompt(4 + 7 * i % 29, 10 + i)));
  }
  const std::vector<JobEvent> together = RunConcurrently(f, requests);
  for (size_t i = 0; i < requests.size(); ++i) {
    ASSERT_TRUE(together[i].status.ok()) << together[i].status;
    if (requests[i].embed) {
      EXPECT_EQ(together[i].result.embedding, hidden_after(requests[i].tokens)) << i;
    } else {
      EXPECT_TRUE(together[i].result.embedding.empty()) << i;
      EXPECT_EQ(together[i].tokens.size(), 6U) << i;
    }
  }
  EXPECT_EQ(f.UsedBlocks(), 0);

  JobRequest generating = embed(text);
  generating.max_tokens = 3;
  JobRequest in_session = embed(text);
  in_session.session_id = "s";
  JobRequest scored = embed(text);
  scored.prompt_logprobs = 1;
  for (const JobRequest& bad : {generating, in_session, scored}) {
    const JobEvent refused = f.Run(bad);
    EXPECT_EQ(refused.status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(refused.status.message(), HasSubstr("embed"));
  }
}

TEST(GeneratorTest, SessionErrorsArriveAsTheFinalEvent) {
  std::atomic<bool> slow{false};
  FakeModelRunnerOptions fake = Rule();
  fake.on_forward = [&] {
    if (slow.load()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  };
  Fixture f(fake);
  EXPECT_TRUE(absl::IsNotFound(f.Run(Turn("nobody", {2}, 2, true)).status));
  ASSERT_TRUE(f.Run(Turn("s", Prompt(5, 1), 3, false)).status.ok());
  JobRequest stale = Turn("s", {2}, 2, true);
  stale.expected_history_tokens = 7;
  EXPECT_TRUE(absl::IsFailedPrecondition(f.Run(stale).status));

  slow = true;  // the next job runs for ~50 steps of 5 ms, the engine serving others between
  absl::StatusOr<JobHandle> busy = f.generator->Submit(Turn("s", {3}, 50, true));
  ASSERT_TRUE(busy.ok());
  while (f.generator->Stats().num_running == 0)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_TRUE(absl::IsFailedPrecondition(f.Run(Turn("s", {4}, 2, true)).status));
  EXPECT_TRUE(absl::IsFailedPrecondition(f.generator->CloseSession("s").status()));
  EXPECT_TRUE(absl::IsFailedPrecondition(f.generator->Fork("s", 2).status()));
  slow = false;
  EXPECT_TRUE(busy->Collect().status.ok());
  EXPECT_TRUE(absl::IsNotFound(f.generator->CloseSession("other").status()));
  EXPECT_TRUE(absl::IsNotFound(f.generator->Fork("other", 1).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(f.generator->Fork("s", 0).status()));
  absl::StatusOr<int32_t> closed = f.generator->CloseSession("s");
  ASSERT_TRUE(closed.ok());
  EXPECT_EQ(*closed, 5 + 3 + 1 + 50);
}

// A session's next turn continues its pinned sequence only into a free seat with nothing
// queued: with every seat taken it queues behind the jobs already waiting (its full blocks
// come back from the prefix cache), instead of running past max_seqs ahead of them.
TEST(GeneratorTest, SessionTurnsQueueWhenEverySeatIsTaken) {
  std::atomic<bool> slow{false};
  FakeModelRunnerOptions fake = Rule();
  fake.max_seqs = 1;
  fake.on_forward = [&] {
    if (slow.load()) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  };
  Fixture f(fake);
  const JobEvent first = f.Run(Turn("s", Prompt(9, 1), 2, false));
  ASSERT_TRUE(first.status.ok()) << first.status;
  ASSERT_EQ(f.generator->Stats().num_pinned_sessions, 1);

  slow = true;
  absl::StatusOr<JobHandle> long_job = f.generator->Submit(Request(Prompt(4, 2), 40));
  ASSERT_TRUE(long_job.ok());
  while (f.generator->Stats().num_running == 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  absl::StatusOr<JobHandle> waiting = f.generator->Submit(Request(Prompt(4, 3), 2));
  ASSERT_TRUE(waiting.ok());
  absl::StatusOr<JobHandle> turn = f.generator->Submit(Turn("s", {7}, 2, true));
  ASSERT_TRUE(turn.ok());
  GeneratorStats stats = f.generator->Stats();
  while (stats.num_running + stats.num_waiting < 3 && stats.num_jobs_finished == 1) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    stats = f.generator->Stats();
  }
  EXPECT_EQ(stats.num_running, 1) << "the session turn took a seat past max_seqs";
  EXPECT_EQ(stats.num_waiting, 2);
  slow = false;
  const JobEvent long_done = long_job->Collect();
  const JobEvent waiting_done = waiting->Collect();
  const JobEvent turn_done = turn->Collect();
  EXPECT_TRUE(long_done.status.ok()) << long_done.status;
  EXPECT_TRUE(waiting_done.status.ok()) << waiting_done.status;
  ASSERT_TRUE(turn_done.status.ok()) << turn_done.status;
  // The queued turn still continued the session: same tokens as a turn that kept its pin.
  Fixture again(Rule());
  ASSERT_TRUE(again.Run(Turn("s", Prompt(9, 1), 2, false)).status.ok());
  EXPECT_EQ(Ids(again.Run(Turn("s", {7}, 2, true))), Ids(turn_done));
}

// Forks are named "<routing key>#f<counter>"; a parent whose key leaves no room for that
// under the 256-byte limit is refused before any fork is made (they could never be named).
TEST(GeneratorTest, ForksOfSessionsWithTooLongIdsAreRefused) {
  Fixture f(Rule());
  const std::string longest_forkable(kMaxSessionIdBytes - kForkSuffixBytes, 'a');
  const std::string too_long = longest_forkable + "b";
  for (const std::string& id : {longest_forkable, too_long, too_long + "#x"}) {
    ASSERT_TRUE(f.Run(Turn(id, Prompt(5, 1), 2, false)).status.ok()) << id.size();
  }
  const int32_t sessions = f.generator->Stats().num_sessions;
  for (const std::string& id : {too_long, too_long + "#x"}) {
    const absl::Status refused = f.generator->Fork(id, 2).status();
    EXPECT_TRUE(absl::IsInvalidArgument(refused)) << refused;
    EXPECT_NE(refused.message().find("cannot be forked"), std::string_view::npos) << refused;
  }
  EXPECT_EQ(f.generator->Stats().num_sessions, sessions);
  absl::StatusOr<std::vector<std::string>> forks = f.generator->Fork(longest_forkable, 3);
  ASSERT_TRUE(forks.ok()) << forks.status();
  for (const std::string& id : *forks) {
    EXPECT_LE(id.size(), kMaxSessionIdBytes);
    EXPECT_TRUE(f.Run(Turn(id, {7}, 1, true)).status.ok()) << id;
  }
}

TEST(GeneratorTest, ForksShareBlocksCopyOnWriteAndSampleIndependently) {
  FakeModelRunnerOptions fake;  // hashed logits: each branch's sampler matters
  Fixture f(fake);
  // 10 + 4 tokens, 13 computed: the last block is partial and shared after the fork.
  const std::vector<int32_t> prompt = Prompt(10, 3);
  JobEvent parent = f.Run(Turn("conv#0", prompt, 4, false));
  ASSERT_TRUE(parent.status.ok());
  const int32_t used_before = f.UsedBlocks();
  absl::StatusOr<std::vector<std::string>> forks = f.generator->Fork("conv#0", 2);
  ASSERT_TRUE(forks.ok()) << forks.status();
  ASSERT_EQ(forks->size(), 2U);
  for (const std::string& id : *forks) EXPECT_EQ(id.rfind("conv#", 0), 0U) << id;
  EXPECT_EQ(f.UsedBlocks(), used_before);  // shared, nothing copied yet

  std::vector<int32_t> context = prompt;
  for (const GeneratedToken& t : parent.tokens) context.push_back(t.id);
  std::vector<std::vector<int32_t>> branch_ids;
  for (size_t i = 0; i < forks->size(); ++i) {
    JobRequest r = Turn((*forks)[i], {9}, 6, true);
    r.sampling.temperature = 1.0F;
    r.sampling.seed = 1000 + i;
    JobEvent e = f.Run(r);
    ASSERT_TRUE(e.status.ok()) << e.status;
    EXPECT_EQ(e.result.usage.cached_tokens, 13);
    branch_ids.push_back(Ids(e));
    // The same context and seed run fresh give the same tokens: the copy-on-write kept
    // the parent's K/V intact for each branch.
    JobRequest fresh = Request(context, 6, 1.0F);
    fresh.tokens.push_back(9);
    fresh.sampling.seed = 1000 + i;
    EXPECT_EQ(Ids(f.Run(fresh)), branch_ids.back());
  }
  EXPECT_NE(branch_ids[0], branch_ids[1]);
  EXPECT_GT(f.fake->num_copies(), 0);
  for (const std::string& id : *forks) ASSERT_TRUE(f.generator->CloseSession(id).ok());
  ASSERT_TRUE(f.generator->CloseSession("conv#0").ok());
  EXPECT_EQ(f.UsedBlocks(), 0);
}

TEST(GeneratorTest, IdleSessionsExpireAndTheCapClosesTheLeastRecentlyUsed) {
  GeneratorOptions options;
  options.session_ttl = absl::Milliseconds(100);
  options.max_sessions = 2;
  Fixture f(Rule(), options);
  ASSERT_TRUE(f.Run(Turn("a", {2, 3}, 2, false)).status.ok());
  ASSERT_TRUE(f.Run(Turn("b", {2, 4}, 2, false)).status.ok());
  ASSERT_TRUE(f.Run(Turn("c", {2, 5}, 2, false)).status.ok());  // closes a
  EXPECT_TRUE(absl::IsNotFound(f.Run(Turn("a", {2}, 1, true)).status));
  EXPECT_EQ(f.generator->Stats().sessions.evicted, 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  // The engine expires idle sessions on its own, without new requests.
  EXPECT_EQ(f.generator->Stats().num_sessions, 0);
  EXPECT_EQ(f.generator->Stats().sessions.expired, 2);
  EXPECT_EQ(f.UsedBlocks(), 0);
}

TEST(GeneratorTest, PinnedSessionsGiveTheirBlocksBackUnderPressure) {
  FakeModelRunnerOptions fake = Rule();
  fake.num_kv_blocks = 16;
  Fixture f(fake);
  for (int i = 0; i < 6; ++i) {
    ASSERT_TRUE(f.Run(Turn(absl::StrCat("s", i), Prompt(10, i), 2, false)).status.ok());
  }
  // 6 sessions x 3 blocks do not fit in 16: the least recently used were unpinned.
  const GeneratorStats stats = f.generator->Stats();
  EXPECT_EQ(stats.num_sessions, 6);
  EXPECT_LT(stats.num_pinned_sessions, 6);
  EXPECT_GT(stats.sessions.pins_released, 0);
  // An unpinned session still continues correctly.
  JobEvent e = f.Run(Turn("s0", {4}, 3, true));
  ASSERT_TRUE(e.status.ok()) << e.status;
  EXPECT_EQ(e.result.usage.prompt_tokens, 13);
}

// Sessions unpinned under pressure lose their blocks to the next prompts; with a host tier
// those blocks wait in host memory and the next turn copies them back (the fake model reads
// every position's token through the block table, so a wrong copy changes the output).
TEST(GeneratorTest, EvictedSessionHistoriesComeBackFromTheHostTier) {
  for (const int32_t host_blocks : {0, 64}) {
    SCOPED_TRACE(absl::StrCat(host_blocks, " host blocks"));
    FakeModelRunnerOptions fake = Rule();
    fake.num_kv_blocks = 16;
    fake.num_host_kv_blocks = host_blocks;
    Fixture f(fake);
    std::vector<std::vector<int32_t>> histories;
    for (int i = 0; i < 8; ++i) {  // 8 sessions x 4 blocks: the first ones are evicted
      JobEvent e = f.Run(Turn(absl::StrCat("s", i), Prompt(14, i), 2, false));
      ASSERT_TRUE(e.status.ok()) << e.status;
      histories.push_back(Prompt(14, i));
      for (const GeneratedToken& t : e.tokens) histories.back().push_back(t.id);
    }
    JobEvent e = f.Run(Turn("s0", {4}, 3, true));
    ASSERT_TRUE(e.status.ok()) << e.status;
    histories[0].push_back(4);
    EXPECT_EQ(Ids(e), Expected(histories[0], 3));
    const GeneratorStats stats = f.generator->Stats();
    if (host_blocks == 0) {
      EXPECT_EQ(e.result.usage.cached_tokens, 0);
      EXPECT_EQ(stats.kv.num_offloaded_blocks, 0);
    } else {
      // The history's three full blocks (its last sampled token was never computed).
      EXPECT_EQ(e.result.usage.cached_tokens, 12);
      EXPECT_EQ(stats.kv.num_host_hit_tokens, 12);
      EXPECT_GT(stats.kv.num_offloaded_blocks, 0);
    }
  }
}

}  // namespace
}  // namespace ringserve::engine
