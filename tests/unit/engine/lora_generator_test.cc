// LoRA adapters in the generator, over the fake model (each adapter shifts its logits, and
// a pass that reads K/V another adapter computed fails): requests with different adapters
// batch together, the prefix cache and sessions never hand one adapter's K/V to another, and
// an unknown adapter is refused.
#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/engine/fake_rule.h"
#include "worker/engine/fake_model_runner.h"
#include "worker/engine/generator.h"

namespace ringserve::engine {
namespace {

using ::testing::HasSubstr;

using testing::Ids;
using testing::RulePrompt;
constexpr int32_t kVocab = testing::kRuleVocab;

// Greedy tokens after `history` under adapter load `load` (0: none): the fake rotates a
// load's logits left by its number, which moves the peak down by as much. The fixture's "a"
// and "b" are loads 1 and 2.
std::vector<int32_t> Expected(std::vector<int32_t> history, int n, int32_t load) {
  std::vector<int32_t> out;
  for (int i = 0; i < n; ++i) {
    int32_t next = testing::RuleNextToken(history);
    if (load > 0) next = (next - load + kVocab) % kVocab;
    out.push_back(next);
    history.push_back(next);
  }
  return out;
}

// A greedy request under the adapter of load `load` of the fixture's first ones: 0 none,
// 1 "a", 2 "b"; or under `name`.
JobRequest Request(std::vector<int32_t> tokens, int max_tokens, int32_t load,
                   std::string name = "") {
  JobRequest r;
  r.tokens = std::move(tokens);
  r.max_tokens = max_tokens;
  r.sampling.temperature = 0;
  r.adapter = !name.empty() ? name : load == 1 ? "a" : load == 2 ? "b" : "";
  return r;
}

class LoraGeneratorTest : public ::testing::Test {
 protected:
  LoraGeneratorTest() {
    FakeModelRunnerOptions fake;
    fake.vocab_size = kVocab;
    fake.next_token = testing::RuleNextToken;
    fake.lora_adapters = {"a", "b", ""};  // a free slot for loads
    fake.on_forward = [this] {
      std::lock_guard lock(hook_mu_);
      if (forward_hook_) forward_hook_();
    };
    auto created = Generator::Create(std::make_unique<FakeModelRunner>(std::move(fake)), nullptr,
                                     GeneratorOptions{});
    EXPECT_TRUE(created.ok()) << created.status();
    generator_ = *std::move(created);
  }
  JobEvent Run(JobRequest request) { return testing::RunJob(*generator_, std::move(request)); }
  void SetForwardHook(std::function<void()> hook) {
    std::lock_guard lock(hook_mu_);
    forward_hook_ = std::move(hook);
  }
  std::mutex hook_mu_;
  std::function<void()> forward_hook_;    // runs at the start of every pass (hook_mu_)
  std::unique_ptr<Generator> generator_;  // last: its engine thread stops before the hook goes
};

TEST_F(LoraGeneratorTest, AdaptersBatchTogetherEachWithItsOwnWeights) {
  const std::vector<int32_t> prompt = RulePrompt(13, 1);
  std::vector<JobHandle> handles;
  for (const int32_t adapter : {0, 1, 2, 1}) {
    absl::StatusOr<JobHandle> h = generator_->Submit(Request(prompt, 10, adapter));
    ASSERT_TRUE(h.ok()) << h.status();
    handles.push_back(*std::move(h));
  }
  const std::vector<int32_t> adapters = {0, 1, 2, 1};
  for (size_t i = 0; i < handles.size(); ++i) {
    const JobEvent e = handles[i].Collect();
    ASSERT_TRUE(e.status.ok()) << e.status;
    EXPECT_EQ(Ids(e), Expected(prompt, 10, adapters[i])) << "adapter " << adapters[i];
  }
  EXPECT_NE(Expected(prompt, 10, 1), Expected(prompt, 10, 2));
}

TEST_F(LoraGeneratorTest, PrefixCacheKeepsEachAdaptersBlocksApart) {
  const std::vector<int32_t> prompt = RulePrompt(30, 2);
  const JobEvent first = Run(Request(prompt, 4, 1));
  ASSERT_TRUE(first.status.ok()) << first.status;
  EXPECT_EQ(first.result.usage.cached_tokens, 0);
  // The same prompt under another adapter (or none) finds nothing cached...
  for (const int32_t other : {2, 0}) {
    const JobEvent e = Run(Request(prompt, 4, other));
    ASSERT_TRUE(e.status.ok()) << e.status;
    EXPECT_EQ(e.result.usage.cached_tokens, 0) << "adapter " << other;
    EXPECT_EQ(Ids(e), Expected(prompt, 4, other));
  }
  // ...and under its own adapter finds its whole blocks.
  const JobEvent again = Run(Request(prompt, 4, 1));
  ASSERT_TRUE(again.status.ok()) << again.status;
  EXPECT_GT(again.result.usage.cached_tokens, 0);
  EXPECT_EQ(Ids(again), Expected(prompt, 4, 1));
}

TEST_F(LoraGeneratorTest, SessionContinuesItsPinOnlyUnderTheSameAdapter) {
  const std::vector<int32_t> prompt = RulePrompt(10, 3);
  JobRequest turn1 = Request(prompt, 5, 1);
  turn1.session_id = "s";
  const JobEvent e1 = Run(turn1);
  ASSERT_TRUE(e1.status.ok()) << e1.status;
  std::vector<int32_t> history = prompt;
  const std::vector<int32_t> out1 = Expected(history, 5, 1);
  EXPECT_EQ(Ids(e1), out1);
  history.insert(history.end(), out1.begin(), out1.end());

  JobRequest turn2 = Request({7, 8, 9}, 4, 1);
  turn2.session_id = "s";
  turn2.append = true;
  const JobEvent e2 = Run(turn2);
  ASSERT_TRUE(e2.status.ok()) << e2.status;
  // The pin holds every token's K/V but the last generated one's.
  EXPECT_EQ(e2.result.usage.cached_tokens, static_cast<int32_t>(history.size()) - 1);
  history.insert(history.end(), {7, 8, 9});
  const std::vector<int32_t> out2 = Expected(history, 4, 1);
  EXPECT_EQ(Ids(e2), out2);
  history.insert(history.end(), out2.begin(), out2.end());

  // Another adapter computes the whole history again under its own weights.
  JobRequest turn3 = Request({5}, 3, 2);
  turn3.session_id = "s";
  turn3.append = true;
  const JobEvent e3 = Run(turn3);
  ASSERT_TRUE(e3.status.ok()) << e3.status;
  EXPECT_EQ(e3.result.usage.cached_tokens, 0);
  history.push_back(5);
  EXPECT_EQ(Ids(e3), Expected(history, 3, 2));
}

TEST_F(LoraGeneratorTest, UnknownAdapterIsNotFound) {
  const JobEvent e = Run(Request(RulePrompt(4, 4), 2, 0, "c"));
  EXPECT_EQ(e.status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(e.status.message(), HasSubstr("'c' is not loaded"));
  EXPECT_THAT(e.status.message(), HasSubstr("a, b"));
  EXPECT_TRUE(Run(Request(RulePrompt(4, 4), 2, 1)).status.ok()) << "serving goes on";
}

// Adapters loaded and unloaded while serving: a load takes a free slot and is a new adapter
// to the prefix cache even in a slot another adapter held; an adapter in use is not unloaded.
TEST_F(LoraGeneratorTest, LoadAndUnloadWhileServing) {
  EXPECT_EQ(generator_->AdapterNames(), (std::vector<std::string>{"a", "b", ""}));
  const auto adapter = std::make_shared<const model::LoraAdapter>();
  ASSERT_TRUE(generator_->LoadAdapter("c", adapter).ok());
  EXPECT_EQ(generator_->AdapterNames(), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(generator_->LoadAdapter("d", adapter).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(generator_->LoadAdapter("b", adapter).code(), absl::StatusCode::kAlreadyExists);
  const std::vector<int32_t> prompt = RulePrompt(30, 5);
  const JobEvent c = Run(Request(prompt, 4, 0, "c"));
  ASSERT_TRUE(c.status.ok()) << c.status;
  EXPECT_EQ(Ids(c), Expected(prompt, 4, 3));  // the third load

  // "a" is busy while a long request runs with it: its first pass signals, then the unload
  // is tried between its steps. Each pass takes 2 ms, so the request runs for 240 ms after
  // the signal, far longer than the unload takes to reach the engine thread.
  const JobEvent a_first = Run(Request(prompt, 2, 1));  // caches the prompt under "a"
  ASSERT_TRUE(a_first.status.ok()) << a_first.status;
  std::promise<void> running;
  std::atomic<bool> signalled = false;
  SetForwardHook([&] {
    if (!signalled.exchange(true)) running.set_value();
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  });
  absl::StatusOr<JobHandle> busy = generator_->Submit(Request(RulePrompt(5, 6), 120, 1));
  ASSERT_TRUE(busy.ok());
  running.get_future().wait();
  EXPECT_EQ(generator_->UnloadAdapter("a").code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(busy->Collect().status.ok());
  SetForwardHook(nullptr);
  ASSERT_TRUE(generator_->UnloadAdapter("a").ok());
  EXPECT_EQ(generator_->UnloadAdapter("a").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Run(Request(prompt, 2, 1)).status.code(), absl::StatusCode::kNotFound);

  // A new adapter in "a"'s slot finds none of the blocks "a" left cached (the fake fails a
  // pass that reads them).
  ASSERT_TRUE(generator_->LoadAdapter("a2", adapter).ok());
  EXPECT_EQ(generator_->AdapterNames(), (std::vector<std::string>{"a2", "b", "c"}));
  const JobEvent a2 = Run(Request(prompt, 4, 0, "a2"));
  ASSERT_TRUE(a2.status.ok()) << a2.status;
  EXPECT_EQ(a2.result.usage.cached_tokens, 0);
  EXPECT_EQ(Ids(a2), Expected(prompt, 4, 4));  // the fourth load
}

}  // namespace
}  // namespace ringserve::engine
