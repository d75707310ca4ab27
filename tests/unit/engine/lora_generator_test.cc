// LoRA adapters in the generator, over the fake model (each adapter shifts its logits, and
// a pass that reads K/V another adapter computed fails): requests with different adapters
// batch together, the prefix cache and sessions never hand one adapter's K/V to another, and
// an unknown adapter is refused.
#include <memory>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "worker/engine/fake_model_runner.h"
#include "worker/engine/generator.h"

namespace ringserve::engine {
namespace {

using ::testing::HasSubstr;

constexpr int32_t kVocab = 64;

int32_t NextToken(std::span<const int32_t> history) {
  int64_t h = static_cast<int64_t>(history.size());
  for (int32_t t : history) h = (h * 31 + t) % 1000003;
  return static_cast<int32_t>(2 + h % (kVocab - 2));
}

// Greedy tokens after `history` under `adapter`: the fake rotates adapter a's logits left by
// a + 1, which moves the peak down by as much.
std::vector<int32_t> Expected(std::vector<int32_t> history, int n, int32_t adapter) {
  std::vector<int32_t> out;
  for (int i = 0; i < n; ++i) {
    int32_t next = NextToken(history);
    if (adapter >= 0) next = (next - adapter - 1 + kVocab) % kVocab;
    out.push_back(next);
    history.push_back(next);
  }
  return out;
}

std::vector<int32_t> Prompt(int n, int32_t salt) {
  std::vector<int32_t> p(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) p[static_cast<size_t>(i)] = 2 + (salt * 13 + i * 7) % (kVocab - 2);
  return p;
}

std::vector<int32_t> Ids(const JobEvent& e) {
  std::vector<int32_t> ids;
  for (const GeneratedToken& t : e.tokens) ids.push_back(t.id);
  return ids;
}

JobRequest Request(std::vector<int32_t> tokens, int max_tokens, int32_t adapter) {
  JobRequest r;
  r.tokens = std::move(tokens);
  r.max_tokens = max_tokens;
  r.sampling.temperature = 0;
  r.adapter = adapter;
  return r;
}

class LoraGeneratorTest : public ::testing::Test {
 protected:
  LoraGeneratorTest() {
    FakeModelRunnerOptions fake;
    fake.vocab_size = kVocab;
    fake.next_token = NextToken;
    fake.num_lora_adapters = 2;
    auto created = Generator::Create(std::make_unique<FakeModelRunner>(std::move(fake)), nullptr,
                                     GeneratorOptions{});
    EXPECT_TRUE(created.ok()) << created.status();
    generator_ = *std::move(created);
  }
  JobEvent Run(JobRequest request) {
    absl::StatusOr<JobHandle> handle = generator_->Submit(std::move(request));
    if (!handle.ok()) {
      JobEvent refused;
      refused.finished = true;
      refused.status = handle.status();
      return refused;
    }
    return handle->Collect();
  }
  std::unique_ptr<Generator> generator_;
};

TEST_F(LoraGeneratorTest, AdaptersBatchTogetherEachWithItsOwnWeights) {
  const std::vector<int32_t> prompt = Prompt(13, 1);
  std::vector<JobHandle> handles;
  for (const int32_t adapter : {-1, 0, 1, 0}) {
    absl::StatusOr<JobHandle> h = generator_->Submit(Request(prompt, 10, adapter));
    ASSERT_TRUE(h.ok()) << h.status();
    handles.push_back(*std::move(h));
  }
  const std::vector<int32_t> adapters = {-1, 0, 1, 0};
  for (size_t i = 0; i < handles.size(); ++i) {
    const JobEvent e = handles[i].Collect();
    ASSERT_TRUE(e.status.ok()) << e.status;
    EXPECT_EQ(Ids(e), Expected(prompt, 10, adapters[i])) << "adapter " << adapters[i];
  }
  EXPECT_NE(Expected(prompt, 10, 0), Expected(prompt, 10, 1));
}

TEST_F(LoraGeneratorTest, PrefixCacheKeepsEachAdaptersBlocksApart) {
  const std::vector<int32_t> prompt = Prompt(30, 2);
  const JobEvent first = Run(Request(prompt, 4, 0));
  ASSERT_TRUE(first.status.ok()) << first.status;
  EXPECT_EQ(first.result.usage.cached_tokens, 0);
  // The same prompt under another adapter (or none) finds nothing cached...
  for (const int32_t other : {1, -1}) {
    const JobEvent e = Run(Request(prompt, 4, other));
    ASSERT_TRUE(e.status.ok()) << e.status;
    EXPECT_EQ(e.result.usage.cached_tokens, 0) << "adapter " << other;
    EXPECT_EQ(Ids(e), Expected(prompt, 4, other));
  }
  // ...and under its own adapter finds its whole blocks.
  const JobEvent again = Run(Request(prompt, 4, 0));
  ASSERT_TRUE(again.status.ok()) << again.status;
  EXPECT_GT(again.result.usage.cached_tokens, 0);
  EXPECT_EQ(Ids(again), Expected(prompt, 4, 0));
}

TEST_F(LoraGeneratorTest, SessionContinuesItsPinOnlyUnderTheSameAdapter) {
  const std::vector<int32_t> prompt = Prompt(10, 3);
  JobRequest turn1 = Request(prompt, 5, 0);
  turn1.session_id = "s";
  const JobEvent e1 = Run(turn1);
  ASSERT_TRUE(e1.status.ok()) << e1.status;
  std::vector<int32_t> history = prompt;
  const std::vector<int32_t> out1 = Expected(history, 5, 0);
  EXPECT_EQ(Ids(e1), out1);
  history.insert(history.end(), out1.begin(), out1.end());

  JobRequest turn2 = Request({7, 8, 9}, 4, 0);
  turn2.session_id = "s";
  turn2.append = true;
  const JobEvent e2 = Run(turn2);
  ASSERT_TRUE(e2.status.ok()) << e2.status;
  // The pin holds every token's K/V but the last generated one's.
  EXPECT_EQ(e2.result.usage.cached_tokens, static_cast<int32_t>(history.size()) - 1);
  history.insert(history.end(), {7, 8, 9});
  const std::vector<int32_t> out2 = Expected(history, 4, 0);
  EXPECT_EQ(Ids(e2), out2);
  history.insert(history.end(), out2.begin(), out2.end());

  // Another adapter computes the whole history again under its own weights.
  JobRequest turn3 = Request({5}, 3, 1);
  turn3.session_id = "s";
  turn3.append = true;
  const JobEvent e3 = Run(turn3);
  ASSERT_TRUE(e3.status.ok()) << e3.status;
  EXPECT_EQ(e3.result.usage.cached_tokens, 0);
  history.push_back(5);
  EXPECT_EQ(Ids(e3), Expected(history, 3, 1));
}

TEST_F(LoraGeneratorTest, UnknownAdapterIsRefused) {
  for (const int32_t adapter : {2, -2}) {
    const JobEvent e = Run(Request(Prompt(4, 4), 2, adapter));
    EXPECT_EQ(e.status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(e.status.message(), HasSubstr("adapter"));
  }
}

}  // namespace
}  // namespace ringserve::engine
