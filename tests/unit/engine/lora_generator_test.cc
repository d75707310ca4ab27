// LoRA adapters in the generator, over the fake model (each adapter shifts its logits, and
// a pass that reads K/V another adapter computed fails): requests with different adapters
// batch together, the prefix cache and sessions never hand one adapter's K/V to another, and
// an unknown adapter is refused.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
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

// An adapter for the fake model: only its name and identity matter.
std::shared_ptr<model::LoraAdapter> FakeAdapter(const std::string& name) {
  auto adapter = std::make_shared<model::LoraAdapter>();
  adapter->name = name;
  return adapter;
}

class LoraGeneratorTest : public ::testing::Test {
 protected:
  void SetUp() override { Start({"a", "b", ""}, {}); }  // a free slot for loads

  // A generator over the fake with these slots (adapter names at creation, "" empty) and
  // these adapters in host memory (GeneratorOptions::lora_adapters).
  void Start(std::vector<std::string> slots, const std::vector<std::string>& host,
             int32_t max_adapters = 0) {
    FakeModelRunnerOptions fake;
    fake.vocab_size = kVocab;
    fake.next_token = testing::RuleNextToken;
    fake.lora_adapters = std::move(slots);
    fake.num_kv_blocks = num_kv_blocks_;
    fake.num_host_kv_blocks = num_host_kv_blocks_;
    fake.on_forward = [this] {
      std::lock_guard lock(hook_mu_);
      if (forward_hook_) forward_hook_();
    };
    GeneratorOptions options = options_;
    for (const std::string& name : host) options.lora_adapters.push_back(FakeAdapter(name));
    options.max_adapters = max_adapters;
    auto created =
        Generator::Create(std::make_unique<FakeModelRunner>(std::move(fake)), nullptr, options);
    ASSERT_TRUE(created.ok()) << created.status();
    generator_ = *std::move(created);
  }
  JobEvent Run(JobRequest request) { return testing::RunJob(*generator_, std::move(request)); }
  void SetForwardHook(std::function<void()> hook) {
    std::lock_guard lock(hook_mu_);
    forward_hook_ = std::move(hook);
  }
  GeneratorOptions options_;    // Start's, before the adapters
  int32_t num_kv_blocks_ = 64;  // Start's pool
  int32_t num_host_kv_blocks_ = 0;
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

// The host tier keeps each adapter's blocks under that adapter's keys: one prompt computed
// under "a", "b" and no adapter, all evicted, comes back to each from host memory with that
// adapter's K/V (the fake fails a pass that reads another load's).
TEST_F(LoraGeneratorTest, EachAdaptersEvictedBlocksComeBackOnlyToItsOwnRequests) {
  num_kv_blocks_ = 12;  // 4-token blocks: a 30-token prompt and its 4 tokens take 9
  num_host_kv_blocks_ = 64;
  Start({"a", "b", ""}, {});
  const std::vector<int32_t> prompt = RulePrompt(30, 4);
  for (const int32_t adapter : {1, 2, 0}) {
    const JobEvent e = Run(Request(prompt, 4, adapter));
    ASSERT_TRUE(e.status.ok()) << e.status;
  }
  ASSERT_TRUE(Run(Request(RulePrompt(40, 5), 4, 0)).status.ok());  // evicts all of them
  for (const int32_t adapter : {2, 0, 1}) {
    const JobEvent e = Run(Request(prompt, 4, adapter));
    ASSERT_TRUE(e.status.ok()) << e.status;
    EXPECT_EQ(Ids(e), Expected(prompt, 4, adapter)) << "adapter " << adapter;
    EXPECT_EQ(e.result.usage.cached_tokens, 28) << "adapter " << adapter;
  }
  EXPECT_GE(generator_->Stats().kv.num_host_hit_tokens, 2 * 28);
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
  EXPECT_EQ(generator_->AdapterNames(), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(generator_->AdapterSlotNames(), (std::vector<std::string>{"a", "b", ""}));
  ASSERT_TRUE(generator_->LoadAdapter("c", FakeAdapter("c")).ok());
  EXPECT_EQ(generator_->AdapterNames(), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(generator_->AdapterSlotNames(), (std::vector<std::string>{"a", "b", "c"}));
  // As many adapters as slots by default (GeneratorOptions::max_adapters).
  EXPECT_EQ(generator_->LoadAdapter("d", FakeAdapter("d")).code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(generator_->LoadAdapter("b", FakeAdapter("b")).code(),
            absl::StatusCode::kAlreadyExists);
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
  ASSERT_TRUE(generator_->LoadAdapter("a2", FakeAdapter("a2")).ok());
  EXPECT_EQ(generator_->AdapterNames(), (std::vector<std::string>{"b", "c", "a2"}));
  EXPECT_EQ(generator_->AdapterSlotNames(), (std::vector<std::string>{"a2", "b", "c"}));
  const JobEvent a2 = Run(Request(prompt, 4, 0, "a2"));
  ASSERT_TRUE(a2.status.ok()) << a2.status;
  EXPECT_EQ(a2.result.usage.cached_tokens, 0);
  EXPECT_EQ(Ids(a2), Expected(prompt, 4, 4));  // the fourth load
}

// More adapters than slots: "a" in slot 0 at creation, "b" written into the empty slot 1
// when the generator registers it, "c" and "d" in host memory until a job needs one. Their
// fake loads: a 1, b 2, and c and d numbered in the order they are first written.
class LoraSwapTest : public LoraGeneratorTest {
 protected:
  void SetUp() override { Start({"a", ""}, {"b", "c", "d"}); }

  // Waits until the engine reports `n` jobs waiting for a slot.
  void AwaitWaitingForAdapter(int32_t n) {
    for (int i = 0; i < 10000 && generator_->Stats().num_waiting_for_adapter != n; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    ASSERT_EQ(generator_->Stats().num_waiting_for_adapter, n);
  }
};

TEST_F(LoraSwapTest, AdaptersInHostMemoryServeAndMixedRunsEqualAlone) {
  EXPECT_EQ(generator_->AdapterNames(), (std::vector<std::string>{"a", "b", "c", "d"}));
  EXPECT_EQ(generator_->AdapterSlotNames(), (std::vector<std::string>{"a", "b"}));
  const std::vector<std::string> names = {"a", "b", "c", "d"};
  const std::vector<int32_t> prompt = RulePrompt(9, 4);
  // Alone, in turn: c takes the idle slot bound least recently (a's), then d takes b's.
  for (size_t i = 0; i < names.size(); ++i) {
    const JobEvent e = Run(Request(prompt, 6, 0, names[i]));
    ASSERT_TRUE(e.status.ok()) << names[i] << ": " << e.status;
    EXPECT_EQ(Ids(e), Expected(prompt, 6, static_cast<int32_t>(i) + 1)) << names[i];
  }
  EXPECT_EQ(generator_->AdapterSlotNames(), (std::vector<std::string>{"c", "d"}));
  EXPECT_EQ(generator_->Stats().num_adapter_swaps, 2);

  // Twelve at once over the four: each still runs under its own weights.
  std::vector<JobHandle> handles;
  for (int i = 0; i < 12; ++i) {
    absl::StatusOr<JobHandle> h =
        generator_->Submit(Request(RulePrompt(9 + i % 3, 5 + i), 8, 0, names[i % 4]));
    ASSERT_TRUE(h.ok()) << h.status();
    handles.push_back(*std::move(h));
  }
  for (int i = 0; i < 12; ++i) {
    const JobEvent e = handles[static_cast<size_t>(i)].Collect();
    ASSERT_TRUE(e.status.ok()) << e.status;
    EXPECT_EQ(Ids(e), Expected(RulePrompt(9 + i % 3, 5 + i), 8, i % 4 + 1)) << names[i % 4];
  }
  // a and b came back into slots at least once each.
  EXPECT_GE(generator_->Stats().num_adapter_swaps, 4);
  EXPECT_EQ(generator_->Stats().num_waiting_for_adapter, 0);
}

// An adapter's cached K/V is keyed by its registration, not by its stay in a slot: after
// it was swapped out and back in, its prompt is found cached (the fake fails a pass that
// reads K/V another adapter computed).
TEST_F(LoraSwapTest, CachedPrefixOutlivesASwapOut) {
  const std::vector<int32_t> prompt = RulePrompt(30, 6);
  const JobEvent first = Run(Request(prompt, 4, 0, "c"));  // into a's slot: load 3
  ASSERT_TRUE(first.status.ok()) << first.status;
  EXPECT_EQ(first.result.usage.cached_tokens, 0);
  EXPECT_EQ(Ids(first), Expected(prompt, 4, 3));
  ASSERT_TRUE(Run(Request(RulePrompt(5, 7), 2, 0, "d")).status.ok());  // into b's slot
  ASSERT_TRUE(Run(Request(RulePrompt(5, 8), 2, 1)).status.ok());       // a into c's
  EXPECT_EQ(generator_->AdapterSlotNames(), (std::vector<std::string>{"a", "d"}));

  const JobEvent again = Run(Request(prompt, 4, 0, "c"));
  ASSERT_TRUE(again.status.ok()) << again.status;
  EXPECT_GT(again.result.usage.cached_tokens, 0);
  EXPECT_EQ(Ids(again), Expected(prompt, 4, 3));
}

// A job whose adapter is in host memory gets a slot even while requests for the adapters
// in the slots keep arriving: the slot it will take binds no new job (draining), so it is
// idle once the jobs it held end. Here "c" waits while "a" and "b" run long jobs; a second
// "a" job arrives while "c" waits and would keep a's slot busy for 200 more steps (and "c"
// would end after it); "c" runs as soon as the first "a" job ends instead.
TEST_F(LoraSwapTest, WaitingAdapterTakesTheNextSlotItsJobsFree) {
  SetForwardHook([] { std::this_thread::sleep_for(std::chrono::milliseconds(2)); });
  std::mutex mu;
  std::vector<std::string> finished;  // in order
  std::vector<std::thread> readers;
  auto submit = [&](const std::string& label, JobRequest request) {
    absl::StatusOr<JobHandle> h = generator_->Submit(std::move(request));
    ASSERT_TRUE(h.ok()) << h.status();
    readers.emplace_back([&, label, handle = std::make_shared<JobHandle>(*std::move(h))] {
      const JobEvent e = handle->Collect();
      std::lock_guard lock(mu);
      finished.push_back(e.status.ok() ? label : label + " failed: " + e.status.ToString());
    });
  };
  submit("a1", Request(RulePrompt(5, 1), 60, 1));
  submit("b1", Request(RulePrompt(5, 2), 240, 2));
  const std::vector<int32_t> c_prompt = RulePrompt(5, 3);
  absl::StatusOr<JobHandle> c = generator_->Submit(Request(c_prompt, 4, 0, "c"));
  ASSERT_TRUE(c.ok()) << c.status();
  AwaitWaitingForAdapter(1);
  submit("a2", Request(RulePrompt(5, 4), 200, 1));
  const JobEvent c_event = c->Collect();
  {
    std::lock_guard lock(mu);
    finished.push_back("c");
  }
  for (std::thread& t : readers) t.join();
  SetForwardHook(nullptr);
  ASSERT_TRUE(c_event.status.ok()) << c_event.status;
  EXPECT_EQ(Ids(c_event), Expected(c_prompt, 4, 3));
  // a2 waits too, for a's return to a slot (b's, draining for it, or c's once c ends).
  EXPECT_EQ(finished, (std::vector<std::string>{"a1", "c", "b1", "a2"}));
}

TEST_F(LoraSwapTest, AnAwaitedAdapterStaysAndAWaitingJobCanBeCancelled) {
  SetForwardHook([] { std::this_thread::sleep_for(std::chrono::milliseconds(2)); });
  absl::StatusOr<JobHandle> a = generator_->Submit(Request(RulePrompt(5, 1), 100, 1));
  absl::StatusOr<JobHandle> b = generator_->Submit(Request(RulePrompt(5, 2), 100, 2));
  absl::StatusOr<JobHandle> c = generator_->Submit(Request(RulePrompt(5, 3), 4, 0, "c"));
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  AwaitWaitingForAdapter(1);
  EXPECT_GE(generator_->Stats().num_waiting, 1);
  const absl::Status refused = generator_->UnloadAdapter("c");
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.message(), HasSubstr("awaited by 1 requests"));
  c->Cancel();
  EXPECT_EQ(c->Collect().status.code(), absl::StatusCode::kCancelled);
  AwaitWaitingForAdapter(0);
  EXPECT_TRUE(generator_->UnloadAdapter("c").ok());
  EXPECT_TRUE(generator_->UnloadAdapter("d").ok());  // in host memory only
  EXPECT_EQ(generator_->AdapterNames(), (std::vector<std::string>{"a", "b"}));
  SetForwardHook(nullptr);
  EXPECT_TRUE(a->Collect().status.ok());
  EXPECT_TRUE(b->Collect().status.ok());
  EXPECT_EQ(generator_->Stats().num_adapter_swaps, 0);
}

// A session's request that waits for its adapter keeps the session busy: a later request
// on the session is refused as it would be while the first runs, not run before it.
TEST_F(LoraSwapTest, ARequestWaitingForItsAdapterKeepsItsSessionBusy) {
  SetForwardHook([] { std::this_thread::sleep_for(std::chrono::milliseconds(2)); });
  absl::StatusOr<JobHandle> a = generator_->Submit(Request(RulePrompt(5, 1), 60, 1));
  absl::StatusOr<JobHandle> b = generator_->Submit(Request(RulePrompt(5, 2), 60, 2));
  JobRequest first = Request(RulePrompt(5, 3), 3, 0, "c");
  first.session_id = "s";
  absl::StatusOr<JobHandle> waiting = generator_->Submit(first);
  ASSERT_TRUE(a.ok() && b.ok() && waiting.ok());
  AwaitWaitingForAdapter(1);
  JobRequest second = Request(RulePrompt(5, 4), 3, 0);
  second.session_id = "s";
  const JobEvent refused = Run(second);
  EXPECT_EQ(refused.status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.status.message(), HasSubstr("waiting for its LoRA adapter"));
  SetForwardHook(nullptr);
  const JobEvent done = waiting->Collect();
  ASSERT_TRUE(done.status.ok()) << done.status;
  EXPECT_EQ(done.result.history_tokens, 8);
  EXPECT_TRUE(a->Collect().status.ok());
  EXPECT_TRUE(b->Collect().status.ok());
}

TEST_F(LoraSwapTest, MaxAdaptersBoundsTheAdaptersHeld) {
  Start({"a", ""}, {"b"}, /*max_adapters=*/3);
  ASSERT_TRUE(generator_->LoadAdapter("c", FakeAdapter("c")).ok());  // in host memory
  EXPECT_EQ(generator_->AdapterSlotNames(), (std::vector<std::string>{"a", "b"}));
  const absl::Status full = generator_->LoadAdapter("d", FakeAdapter("d"));
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(full.message(), HasSubstr("--max-cpu-loras"));
  const JobEvent c = Run(Request(RulePrompt(6, 9), 3, 0, "c"));
  ASSERT_TRUE(c.status.ok()) << c.status;

  // Fewer than the adapters given is refused.
  FakeModelRunnerOptions fake;
  fake.lora_adapters = {"a", ""};
  GeneratorOptions options;
  options.lora_adapters = {FakeAdapter("b"), FakeAdapter("c")};
  options.max_adapters = 2;
  EXPECT_EQ(
      Generator::Create(std::make_unique<FakeModelRunner>(fake), nullptr, options).status().code(),
      absl::StatusCode::kResourceExhausted);
}

// Adapters found by name when a job names one no one registered (GeneratorOptions::
// find_adapter, --lora-dir): "x", "y" and "z" can be found, anything else cannot. Slots: "a"
// and an empty one.
class LoraFindTest : public LoraGeneratorTest {
 protected:
  void SetUp() override {}
  void StartFinding(int32_t max_adapters = 0) {
    options_.find_adapter =
        [this](
            const std::string& name) -> absl::StatusOr<std::shared_ptr<const model::LoraAdapter>> {
      {
        std::unique_lock lock(find_mu_);
        ++finds_[name];
        find_open_.wait(
            lock, [&] { return !find_closed_ || (!closed_for_.empty() && name != closed_for_); });
      }
      if (name != "x" && name != "y" && name != "z") {
        return absl::NotFoundError(absl::StrCat("adapter: no '", name, "' in the library"));
      }
      return FakeAdapter(name);
    };
    Start({"a", ""}, {}, max_adapters);
  }
  // Finds wait while closed: every name's, or only `name`'s.
  void CloseFinder(bool closed, const std::string& name = "") {
    {
      std::lock_guard lock(find_mu_);
      find_closed_ = closed;
      closed_for_ = name;
    }
    find_open_.notify_all();
  }
  int Finds(const std::string& name) {
    std::lock_guard lock(find_mu_);
    return finds_[name];
  }

  std::mutex find_mu_;
  std::condition_variable find_open_;
  bool find_closed_ = false;
  std::string closed_for_;
  std::map<std::string, int> finds_;
};

TEST_F(LoraFindTest, AnAdapterIsFoundOnceForAllItsJobsWhileServingGoesOn) {
  StartFinding();
  CloseFinder(true);
  const std::vector<int32_t> prompt = RulePrompt(7, 11);
  std::vector<JobHandle> waiting;
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<JobHandle> h = generator_->Submit(Request(prompt, 5, 0, "x"));
    ASSERT_TRUE(h.ok()) << h.status();
    waiting.push_back(*std::move(h));
  }
  // The finder is stuck on "x"; a job with an adapter in a slot runs meanwhile.
  const JobEvent a = Run(Request(prompt, 5, 1));
  ASSERT_TRUE(a.status.ok()) << a.status;
  EXPECT_EQ(Ids(a), Expected(prompt, 5, 1));
  EXPECT_EQ(generator_->Stats().num_waiting_for_adapter, 3);
  CloseFinder(false);
  std::vector<std::vector<int32_t>> outputs;
  for (JobHandle& h : waiting) {
    const JobEvent e = h.Collect();
    ASSERT_TRUE(e.status.ok()) << e.status;
    outputs.push_back(Ids(e));
  }
  EXPECT_EQ(outputs[0], Expected(prompt, 5, 2));  // the fake's second load
  EXPECT_EQ(outputs[1], outputs[0]);
  EXPECT_EQ(outputs[2], outputs[0]);
  EXPECT_EQ(Finds("x"), 1);
  EXPECT_EQ(generator_->AdapterNames(), (std::vector<std::string>{"a", "x"}));
  EXPECT_EQ(generator_->Stats().num_adapters_found, 1);
  // Found once, it is served like any other.
  EXPECT_TRUE(Run(Request(prompt, 2, 0, "x")).status.ok());
  EXPECT_EQ(Finds("x"), 1);
}

// Finders work side by side: an adapter whose read is slow holds up no other's.
TEST_F(LoraFindTest, ASlowFindHoldsUpNoOther) {
  StartFinding();
  CloseFinder(true, "x");
  absl::StatusOr<JobHandle> x = generator_->Submit(Request(RulePrompt(6, 1), 3, 0, "x"));
  ASSERT_TRUE(x.ok()) << x.status();
  const JobEvent y = Run(Request(RulePrompt(6, 2), 3, 0, "y"));
  ASSERT_TRUE(y.status.ok()) << y.status;
  EXPECT_EQ(generator_->Stats().num_waiting_for_adapter, 1) << "x is still being found";
  CloseFinder(false);
  EXPECT_TRUE(x->Collect().status.ok());
}

TEST_F(LoraFindTest, ANameTheFinderDoesNotKnowIsNotFound) {
  StartFinding();
  const JobEvent e = Run(Request(RulePrompt(4, 4), 2, 0, "nope"));
  EXPECT_EQ(e.status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(e.status.message(), HasSubstr("no 'nope' in the library"));
  EXPECT_TRUE(Run(Request(RulePrompt(4, 4), 2, 0, "y")).status.ok()) << "serving goes on";
  // Not remembered as missing: asked again, the finder looks again.
  EXPECT_EQ(Run(Request(RulePrompt(4, 4), 2, 0, "nope")).status.code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(Finds("nope"), 2);
}

TEST_F(LoraFindTest, FoundAdaptersAreForgottenLeastRecentlyUsedFirst) {
  StartFinding(/*max_adapters=*/3);
  for (const std::string name : {"x", "y", "x", "z"}) {
    const JobEvent e = Run(Request(RulePrompt(5, 2), 2, 0, name));
    ASSERT_TRUE(e.status.ok()) << name << ": " << e.status;
  }
  // Room for three: "z" took the place of "y", used less recently than "x"; "a", given at
  // creation, is never forgotten.
  EXPECT_EQ(generator_->AdapterNames(), (std::vector<std::string>{"a", "x", "z"}));
  EXPECT_EQ(generator_->Stats().num_adapter_evictions, 1);
  const JobEvent y = Run(Request(RulePrompt(5, 2), 2, 0, "y"));
  ASSERT_TRUE(y.status.ok()) << y.status;
  EXPECT_EQ(y.result.usage.cached_tokens, 0) << "found again: a new adapter to the cache";
  EXPECT_EQ(Finds("y"), 2);
  EXPECT_EQ(generator_->AdapterNames(), (std::vector<std::string>{"a", "z", "y"}));
}

}  // namespace
}  // namespace ringserve::engine
