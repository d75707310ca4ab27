// The generator over the real tiny model (../shared/models/stories260K): batch invariance
// (bit for bit, in every dtype, since every backend is batch invariant) and, in f32, the
// shared reference vectors; prefix caching, memory pressure, stop strings and text deltas.
// On the CPU and the GPU in f32 and bf16 (test_devices.h); on the CPU emulation of the CUDA
// sources only a small invariance case, for time. Skips when ../shared is absent.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "kvcache/sizing.h"
#include "nlohmann/json.hpp"
#include "tests/unit/model/test_devices.h"
#include "tests/unit/shared_dir.h"
#include "worker/engine/generator.h"
#include "worker/engine/llama_runner.h"
#include "worker/grammar/matcher.h"
#include "worker/model/checkpoint.h"
#include "worker/tokenizer/tokenizer.h"

namespace ringserve::engine {
namespace {

namespace fs = std::filesystem;

struct Case {
  std::vector<int32_t> prompt_ids;
  std::vector<int32_t> generated_ids;
  std::string text;
};

const fs::path kShared = SharedDataDir();

std::vector<Case> LoadCases() {
  std::ifstream in(kShared / "vectors/stories260K-greedy.json");
  const auto doc = nlohmann::json::parse(in, nullptr, false);
  std::vector<Case> cases;
  if (doc.is_discarded()) return cases;
  for (const auto& c : doc["cases"])
    cases.push_back({c["prompt_ids"], c["generated_ids"], c["text"]});
  return cases;
}

std::vector<int32_t> Ids(const JobEvent& e) {
  std::vector<int32_t> ids;
  for (const GeneratedToken& t : e.tokens) ids.push_back(t.id);
  return ids;
}

using ringserve::testing::TestDevice;

class GeneratorModelTest : public ::testing::TestWithParam<TestDevice> {
 protected:
  void SetUp() override {
    const fs::path model = kShared / "models/stories260K.bin";
    if (!fs::exists(model)) GTEST_SKIP() << model << " not present";
    cases_ = LoadCases();
    ASSERT_FALSE(cases_.empty());
    auto backend = GetParam().create();
    if (!backend.ok()) GTEST_SKIP() << GetParam().name << ": " << backend.status();
    backend_ = *std::move(backend);
    auto checkpoint =
        model::OpenCheckpoint(model.string(), (kShared / "models/tok512.bin").string());
    ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
    checkpoint_ = *std::move(checkpoint);
    auto tok = tokenizer::Tokenizer::Create(*checkpoint_->vocabulary);
    ASSERT_TRUE(tok.ok()) << tok.status();
    tokenizer_ = *std::move(tok);
  }

  // speculate > 0: that many draft tokens a step (GeneratorOptions::speculate_tokens);
  // prompt_rows: scored prompt positions a step (GeneratorOptions::prompt_logprob_rows);
  // host_bytes: the KV cache's host tier (LlamaRunnerOptions::kv_host_memory_bytes).
  std::unique_ptr<Generator> Make(int32_t num_kv_blocks, int32_t max_batch_tokens = 64,
                                  int32_t speculate = 0, int32_t prompt_rows = 0,
                                  size_t host_bytes = 0) {
    LlamaRunnerOptions options;
    options.block_size_tokens = 16;
    options.max_batch_tokens = max_batch_tokens;  // small: forces chunked prefill
    options.max_seqs = 16;
    options.max_sampled_rows = options.max_seqs * (1 + speculate) + prompt_rows;
    options.num_kv_blocks = num_kv_blocks;
    options.kv_host_memory_bytes = host_bytes;
    auto runner = LlamaRunner::Create(*checkpoint_, backend_.get(), options);
    EXPECT_TRUE(runner.ok()) << runner.status();
    if (!runner.ok()) return nullptr;
    GeneratorOptions generator_options;
    generator_options.speculate_tokens = speculate;
    generator_options.prompt_logprob_rows = prompt_rows;
    auto generator = Generator::Create(*std::move(runner), tokenizer_.get(), generator_options);
    EXPECT_TRUE(generator.ok()) << generator.status();
    return generator.ok() ? *std::move(generator) : nullptr;
  }

  // See the definition.
  void CheckAnEvictedPrefixComesBackFromTheHostTier(int32_t prefix_blocks);

  // Greedy for even cases, temperature 0.8 for odd ones; seeds fixed per case.
  std::vector<JobRequest> Requests(bool sampled) const {
    std::vector<JobRequest> requests;
    for (size_t i = 0; i < cases_.size(); ++i) {
      JobRequest r;
      r.tokens = cases_[i].prompt_ids;
      r.max_tokens = static_cast<int32_t>(cases_[i].generated_ids.size());
      r.ignore_eos = true;
      r.sampling.temperature = sampled ? 0.8F : 0.0F;
      r.sampling.seed = 1234 + i;
      requests.push_back(r);
    }
    return requests;
  }

  int32_t BlocksFor(const std::vector<JobRequest>& requests) const {
    int32_t blocks = 0;
    for (const JobRequest& r : requests) {
      blocks += static_cast<int32_t>(
          kvcache::NumBlocksForTokens(static_cast<int64_t>(r.tokens.size()) + *r.max_tokens, 16));
    }
    return blocks;
  }

  static std::vector<JobEvent> RunAlone(Generator& g, const std::vector<JobRequest>& requests) {
    std::vector<JobEvent> out;
    for (const JobRequest& r : requests) out.push_back(g.Submit(r)->Collect());
    return out;
  }

  // The first half is submitted, then the rest once the first request is decoding, so
  // sequences join the batch at different steps.
  static std::vector<JobEvent> RunStaggered(Generator& g, const std::vector<JobRequest>& requests) {
    std::vector<JobHandle> handles;
    const size_t half = requests.size() / 2;
    for (size_t i = 0; i < half; ++i) handles.push_back(*g.Submit(requests[i]));
    std::optional<JobEvent> first = handles[0].Next();
    for (size_t i = half; i < requests.size(); ++i) handles.push_back(*g.Submit(requests[i]));
    std::vector<JobEvent> out;
    for (JobHandle& h : handles) out.push_back(h.Collect());
    // Put the first event back in front of the rest of request 0's output.
    JobEvent& zero = out[0];
    zero.tokens.insert(zero.tokens.begin(), first->tokens.begin(), first->tokens.end());
    zero.text = first->text + zero.text;
    return out;
  }

  // Runs every request alone, then all of them staggered through one generator's batches,
  // and expects the same tokens and text both ways and every KV block back at the end.
  // Returns the runs alone.
  std::vector<JobEvent> RunAloneAndBatched(const std::vector<JobRequest>& requests) {
    auto g = Make(BlocksFor(requests));
    if (g == nullptr) return {};
    std::vector<JobEvent> alone = RunAlone(*g, requests);
    const std::vector<JobEvent> together = RunStaggered(*g, requests);
    for (size_t i = 0; i < requests.size(); ++i) {
      EXPECT_TRUE(alone[i].status.ok()) << alone[i].status;
      EXPECT_TRUE(together[i].status.ok()) << together[i].status;
      EXPECT_EQ(Ids(together[i]), Ids(alone[i])) << "request " << i;
      EXPECT_EQ(together[i].text, alone[i].text) << "request " << i;
    }
    EXPECT_EQ(g->Stats().kv.num_used_blocks, 0);
    return alone;
  }

  // Makes a generator without drafts (*plain) and one with 4 (*fast), runs `requests` alone
  // through both and expects the same tokens; returns the runs without drafts.
  std::vector<JobEvent> RunAloneWithAndWithoutDrafts(const std::vector<JobRequest>& requests,
                                                     std::unique_ptr<Generator>* plain,
                                                     std::unique_ptr<Generator>* fast) {
    *plain = Make(BlocksFor(requests));
    *fast = Make(BlocksFor(requests), /*max_batch_tokens=*/64, /*speculate=*/4);
    if (*plain == nullptr || *fast == nullptr) {
      ADD_FAILURE() << "no generator";
      return {};
    }
    std::vector<JobEvent> expected = RunAlone(**plain, requests);
    const std::vector<JobEvent> got = RunAlone(**fast, requests);
    for (size_t i = 0; i < requests.size(); ++i) {
      EXPECT_TRUE(got[i].status.ok()) << got[i].status;
      EXPECT_EQ(Ids(got[i]), Ids(expected[i])) << "request " << i;
    }
    return expected;
  }

  // Generates num_cases sampled texts (max_tokens > 0: that many tokens each, else the
  // case's), then scores each prompt with its text, and expects every generated token's score
  // to be the logprob it was generated with.
  void CheckScoresOfGeneratedTexts(size_t num_cases, int32_t max_tokens) {
    std::vector<JobRequest> requests = Requests(/*sampled=*/true);
    requests.resize(num_cases);
    if (max_tokens > 0) {
      for (JobRequest& r : requests) r.max_tokens = max_tokens;
    }
    auto g = Make(BlocksFor(requests) * 2, /*max_batch_tokens=*/64, /*speculate=*/0,
                  /*prompt_rows=*/24);
    ASSERT_NE(g, nullptr);
    const bool exact = GetParam().name.starts_with("cpu");
    for (JobRequest& r : requests) {
      r.sampling.num_logprobs = 4;
      const JobEvent generated = g->Submit(r)->Collect();
      ASSERT_TRUE(generated.status.ok()) << generated.status;
      JobRequest scoring;
      scoring.tokens = r.tokens;
      for (const GeneratedToken& t : generated.tokens) scoring.tokens.push_back(t.id);
      scoring.max_tokens = 1;
      scoring.prompt_logprobs = 4;
      const JobEvent scored = g->Submit(scoring)->Collect();
      ASSERT_TRUE(scored.status.ok()) << scored.status;
      ASSERT_EQ(scored.prompt_logprobs.size(), scoring.tokens.size() - 1);
      EXPECT_EQ(scored.result.usage.cached_tokens, 0);  // the prompt's blocks were cached
      for (size_t k = 0; k < generated.tokens.size(); ++k) {
        const GeneratedToken& want = generated.tokens[k];
        const GeneratedToken& got = scored.prompt_logprobs[r.tokens.size() - 1 + k];
        EXPECT_EQ(got.id, want.id);
        ASSERT_EQ(got.top_logprobs.size(), 4U);
        if (exact) {
          EXPECT_EQ(got.logprob, want.logprob) << "token " << k;
          EXPECT_EQ(got.top_logprobs, want.top_logprobs) << "token " << k;
        } else {
          EXPECT_NEAR(got.logprob, want.logprob, 0.05) << "token " << k;
        }
      }
    }
    EXPECT_EQ(g->Stats().kv.num_used_blocks, 0);
  }

  // Embeds each of the first num_cases prompts and a one-token input alone, then the same
  // beside generating requests that join at different steps: the same bits both ways, one
  // value per model dimension, and every block back.
  void CheckEmbeddingsAloneAndBatched(size_t num_cases) {
    std::vector<JobRequest> requests = Requests(/*sampled=*/true);
    requests.resize(num_cases);
    std::vector<JobRequest> embeds;
    for (const JobRequest& r : requests) {
      JobRequest e;
      e.tokens = r.tokens;
      e.max_tokens = 0;
      e.embed = true;
      embeds.push_back(e);
    }
    embeds.push_back(embeds.back());
    embeds.back().tokens.resize(1);
    auto g = Make(BlocksFor(requests) + BlocksFor(embeds));
    ASSERT_NE(g, nullptr);
    const std::vector<JobEvent> alone = RunAlone(*g, embeds);
    std::vector<JobRequest> mixed;
    for (size_t i = 0; i < embeds.size(); ++i) {
      if (i < requests.size()) mixed.push_back(requests[i]);
      mixed.push_back(embeds[i]);
    }
    const std::vector<JobEvent> together = RunStaggered(*g, mixed);
    size_t k = 0;
    for (size_t i = 0; i < mixed.size(); ++i) {
      ASSERT_TRUE(together[i].status.ok()) << together[i].status;
      if (!mixed[i].embed) continue;
      ASSERT_TRUE(alone[k].status.ok()) << alone[k].status;
      EXPECT_EQ(alone[k].result.embedding.size(), static_cast<size_t>(checkpoint_->config.dim));
      EXPECT_TRUE(alone[k].tokens.empty());
      EXPECT_EQ(together[i].result.embedding, alone[k].result.embedding) << "embedding " << k;
      ++k;
    }
    EXPECT_EQ(k, embeds.size());
    EXPECT_EQ(g->Stats().kv.num_used_blocks, 0);
  }

  std::vector<Case> cases_;
  std::unique_ptr<kernels::Backend> backend_;
  std::unique_ptr<model::Checkpoint> checkpoint_;
  std::unique_ptr<tokenizer::Tokenizer> tokenizer_;
};

TEST_P(GeneratorModelTest, GreedyMatchesTheReferenceVectorsAloneAndBatched) {
  const std::vector<JobEvent> alone = RunAloneAndBatched(Requests(/*sampled=*/false));
  ASSERT_EQ(alone.size(), cases_.size());
  if (!GetParam().exact_tokens()) return;  // the references are f32 greedy runs
  for (size_t i = 0; i < cases_.size(); ++i) {
    EXPECT_EQ(Ids(alone[i]), cases_[i].generated_ids) << "case " << i;
    EXPECT_EQ(alone[i].text, cases_[i].text) << "case " << i;  // deltas add up
  }
}

TEST_P(GeneratorModelTest, SampledTokensDoNotDependOnTheBatch) {
  const std::vector<JobEvent> alone = RunAloneAndBatched(Requests(/*sampled=*/true));
  ASSERT_EQ(alone.size(), cases_.size());
  int differs_from_greedy = 0;
  for (size_t i = 0; i < cases_.size(); ++i) {
    differs_from_greedy += Ids(alone[i]) != cases_[i].generated_ids ? 1 : 0;
  }
  EXPECT_GT(differs_from_greedy, 0);  // the sampler really sampled
}

TEST_P(GeneratorModelTest, UnderAQuarterOfTheMemoryEveryRequestGivesTheSameTokens) {
  std::vector<JobRequest> requests = Requests(/*sampled=*/false);
  const std::vector<JobRequest> sampled = Requests(/*sampled=*/true);
  requests.insert(requests.end(), sampled.begin(), sampled.end());
  auto roomy = Make(BlocksFor(requests));
  ASSERT_NE(roomy, nullptr);
  const std::vector<JobEvent> expected = RunAlone(*roomy, requests);
  auto tight = Make(BlocksFor(requests) / 4, /*max_batch_tokens=*/128);
  ASSERT_NE(tight, nullptr);
  std::vector<JobHandle> handles;
  for (const JobRequest& r : requests) handles.push_back(*tight->Submit(r));
  for (size_t i = 0; i < requests.size(); ++i) {
    JobEvent e = handles[i].Collect();
    ASSERT_TRUE(e.status.ok()) << e.status;
    EXPECT_EQ(Ids(e), Ids(expected[i])) << "request " << i;
  }
  const GeneratorStats stats = tight->Stats();
  EXPECT_GT(stats.num_preemptions, 0);
  EXPECT_EQ(stats.kv.num_used_blocks, 0);
  std::cout << "quarter memory: " << stats.num_preemptions << " preemptions over "
            << requests.size() << " requests\n";
}

TEST_P(GeneratorModelTest, ASharedPrefixOf256TokensIsServedFromTheCache) {
  auto g = Make(128);
  ASSERT_NE(g, nullptr);
  std::vector<int32_t> prefix;
  for (int i = 0; prefix.size() < 256; ++i) prefix.push_back(3 + (i * 37) % 500);
  JobRequest first;
  first.tokens = prefix;
  first.tokens.insert(first.tokens.end(), {10, 11, 12});
  first.max_tokens = 4;
  first.sampling.temperature = 0;
  JobEvent a = g->Submit(first)->Collect();
  ASSERT_TRUE(a.status.ok()) << a.status;
  EXPECT_EQ(a.result.usage.cached_tokens, 0);
  const int64_t computed_before = g->Stats().num_computed_tokens;

  JobRequest second = first;
  second.tokens.resize(256);
  second.tokens.insert(second.tokens.end(), {20, 21, 22, 23});
  JobEvent b = g->Submit(second)->Collect();
  ASSERT_TRUE(b.status.ok()) << b.status;
  EXPECT_GE(b.result.usage.cached_tokens, 240);
  EXPECT_EQ(b.result.usage.prompt_tokens, 260);
  // Only the uncached tail and the decode steps ran through the model.
  EXPECT_LE(g->Stats().num_computed_tokens - computed_before, 260 - 240 + 4);
  EXPECT_EQ(g->Stats().kv.num_used_blocks, 0);
}

// A prompt whose blocks another prompt evicted: with a host tier they come back from host
// memory (the chain's head still on the device, the rest copied back) and give the tokens
// the prompt gave when it was computed; without one they are computed again.
void GeneratorModelTest::CheckAnEvictedPrefixComesBackFromTheHostTier(int32_t prefix_blocks) {
  const int32_t prefix_tokens = prefix_blocks * 16;
  JobRequest first;
  for (int i = 0; static_cast<int32_t>(first.tokens.size()) < prefix_tokens + 3; ++i) {
    first.tokens.push_back(3 + (i * 37) % 500);
  }
  first.max_tokens = 4;
  first.ignore_eos = true;
  JobRequest other = first;
  for (int32_t& t : other.tokens) t = 3 + (t * 11) % 500;
  other.tokens.resize(static_cast<size_t>(prefix_tokens + 40));
  // The other prompt needs all but one block of the pool: every cached block of the first
  // but its head is evicted (a released prefix goes tail first).
  const auto pool = static_cast<int32_t>(kvcache::NumBlocksForTokens(prefix_tokens + 44, 16)) + 1;
  for (const size_t host_bytes : {size_t{0}, size_t{16} << 20}) {
    SCOPED_TRACE(::testing::Message() << host_bytes << " bytes of host memory");
    auto g = Make(pool, 64, 0, 0, host_bytes);
    ASSERT_NE(g, nullptr);
    const JobEvent a = g->Submit(first)->Collect();
    ASSERT_TRUE(a.status.ok()) << a.status;
    ASSERT_TRUE(g->Submit(other)->Collect().status.ok());
    const JobEvent again = g->Submit(first)->Collect();
    ASSERT_TRUE(again.status.ok()) << again.status;
    EXPECT_EQ(Ids(again), Ids(a));
    const GeneratorStats stats = g->Stats();
    if (host_bytes == 0) {
      EXPECT_EQ(again.result.usage.cached_tokens, 16);
      EXPECT_EQ(stats.kv.num_host_blocks, 0);
    } else {
      EXPECT_EQ(again.result.usage.cached_tokens, prefix_tokens);
      EXPECT_EQ(stats.kv.num_host_hit_tokens, prefix_tokens - 16);
      EXPECT_GT(stats.kv.num_host_blocks, pool);
    }
  }
}

TEST_P(GeneratorModelTest, AnEvictedPrefixComesBackFromTheHostTier) {
  CheckAnEvictedPrefixComesBackFromTheHostTier(16);
}

TEST_P(GeneratorModelTest, StopStringsEndTheTextBeforeTheMatch) {
  auto g = Make(64);
  ASSERT_NE(g, nullptr);
  JobRequest r;
  r.tokens = cases_[0].prompt_ids;
  r.max_tokens = 64;
  r.ignore_eos = true;
  r.sampling.temperature = 0;
  // This device's own greedy text (the reference's in f32; bf16 may take another path).
  const JobEvent full = g->Submit(r)->Collect();
  ASSERT_TRUE(full.status.ok()) << full.status;
  // A stop string from the middle of the text, likely spanning tokens.
  const std::string stop = full.text.substr(full.text.size() / 2, 5);
  r.stop_strings = {stop};
  JobEvent e = g->Submit(r)->Collect();
  ASSERT_TRUE(e.status.ok()) << e.status;
  EXPECT_EQ(e.result.finish_reason, FinishReason::kStopString);
  EXPECT_EQ(e.result.stop_match, stop);
  EXPECT_EQ(e.text, full.text.substr(0, full.text.find(stop)));
  EXPECT_LT(e.tokens.size(), full.tokens.size());
  // Included, the match ends the text; the tokens are the same.
  r.include_stop_string = true;
  const JobEvent included = g->Submit(r)->Collect();
  ASSERT_TRUE(included.status.ok()) << included.status;
  EXPECT_EQ(included.result.finish_reason, FinishReason::kStopString);
  EXPECT_EQ(included.text, full.text.substr(0, full.text.find(stop) + stop.size()));
  EXPECT_EQ(Ids(included), Ids(e));
}

// Structured output on a model that knows no JSON: every text is a prefix of a value its
// schema accepts, one that ends complete parses and has its required properties, the tokens
// are the same alone, batched and on a generator that drafts (constrained jobs never do),
// and a free-text job in the same batch is unaffected.
TEST_P(GeneratorModelTest, ResponseFormatsKeepEveryTextInTheirGrammar) {
  auto schema = grammar::Grammar::FromSchema(
      R"({"type":"object","properties":{"mood":{"enum":["happy","sad"]},)"
      R"("name":{"type":"string","maxLength":8},"friends":{"type":"integer"}},)"
      R"("required":["mood","name"]})");
  ASSERT_TRUE(schema.ok()) << schema.status();
  const std::vector<std::shared_ptr<const grammar::Grammar>> formats = {
      *schema, grammar::Grammar::AnyObject(), nullptr};
  std::vector<JobRequest> requests;
  for (size_t i = 0; i < cases_.size(); ++i) {
    JobRequest r;
    r.tokens = cases_[i].prompt_ids;
    r.max_tokens = 160;
    r.sampling.temperature = i % 2 == 0 ? 0.0F : 0.8F;
    r.sampling.seed = 77 + i;
    r.response_format = formats[i % formats.size()];
    requests.push_back(r);
  }
  std::unique_ptr<Generator> plain, fast;
  const std::vector<JobEvent> alone = RunAloneWithAndWithoutDrafts(requests, &plain, &fast);
  ASSERT_FALSE(HasFailure());
  const std::vector<JobEvent> together = RunStaggered(*plain, requests);
  int num_complete = 0;
  for (size_t i = 0; i < requests.size(); ++i) {
    ASSERT_TRUE(together[i].status.ok()) << together[i].status;
    EXPECT_EQ(Ids(together[i]), Ids(alone[i])) << "request " << i;
    if (requests[i].response_format == nullptr) continue;
    const std::string& text = alone[i].text;
    grammar::Matcher matcher(requests[i].response_format);
    EXPECT_TRUE(matcher.Advance(text)) << "request " << i << ": " << text;
    if (alone[i].result.finish_reason != FinishReason::kResponseComplete) {
      EXPECT_EQ(alone[i].result.finish_reason, FinishReason::kMaxTokens) << text;
      continue;
    }
    ++num_complete;
    EXPECT_TRUE(matcher.IsFinished()) << text;
    const auto value = nlohmann::json::parse(text, nullptr, false);
    ASSERT_TRUE(value.is_object()) << text;
    if (requests[i].response_format == *schema) {
      EXPECT_TRUE(value.contains("mood") && value.contains("name")) << text;
      ASSERT_TRUE(value["name"].is_string()) << text;
      EXPECT_LE(value["name"].get<std::string>().size(), 8U * 4) << text;  // <= 8 code points
    }
  }
  EXPECT_GT(num_complete, 0) << "no constrained reply completed within 160 tokens";
  EXPECT_EQ(plain->Stats().kv.num_used_blocks, 0);
}

// Drafts are verified in chunks that hold a sequence's last token and the drafts after it;
// a backend whose rows keep their bits in any chunk gives every token, greedy or sampled,
// exactly as plain decoding does, alone and in a batch that changes while it decodes.
TEST_P(GeneratorModelTest, SpeculativeDecodingGivesTheSameTokens) {
  std::vector<JobRequest> requests = Requests(/*sampled=*/false);
  const std::vector<JobRequest> sampled = Requests(/*sampled=*/true);
  requests.insert(requests.end(), sampled.begin(), sampled.end());
  std::unique_ptr<Generator> plain, fast;
  const std::vector<JobEvent> expected = RunAloneWithAndWithoutDrafts(requests, &plain, &fast);
  ASSERT_FALSE(HasFailure());
  const GeneratorStats alone_stats = fast->Stats();
  const std::vector<JobEvent> together = RunStaggered(*fast, requests);
  for (size_t i = 0; i < requests.size(); ++i) {
    ASSERT_TRUE(together[i].status.ok()) << together[i].status;
    EXPECT_EQ(Ids(together[i]), Ids(expected[i])) << "request " << i;
    EXPECT_EQ(together[i].text, expected[i].text) << "request " << i;
  }
  EXPECT_GT(alone_stats.num_accepted_tokens, 0);
  EXPECT_LT(alone_stats.num_steps, plain->Stats().num_steps);
  EXPECT_EQ(fast->Stats().kv.num_used_blocks, 0);
  std::cout << GetParam().name << ", alone: " << alone_stats.num_accepted_tokens << " of "
            << alone_stats.num_draft_tokens << " drafts accepted, "
            << alone_stats.num_generated_tokens << " tokens in " << alone_stats.num_steps
            << " steps (plain: " << plain->Stats().num_steps << ")\n";
}

// Scoring a text the model generated gives, at each generated token, the logprobs its
// generation reported: the same logits, computed in a prefill chunk instead of a decode step.
// The CPU's rows keep their bits in any chunk, so there they are equal bit for bit.
TEST_P(GeneratorModelTest, PromptLogprobsOfAGeneratedTextAreThoseItWasGeneratedWith) {
  CheckScoresOfGeneratedTexts(/*num_cases=*/3, /*max_tokens=*/0);
}

// An embedding is the same alone and beside generating requests, on every device.
TEST_P(GeneratorModelTest, EmbeddingsDoNotDependOnTheBatch) { CheckEmbeddingsAloneAndBatched(4); }

INSTANTIATE_TEST_SUITE_P(Devices, GeneratorModelTest,
                         ::testing::ValuesIn(ringserve::testing::TestDevicesWhere(
                             [](const TestDevice& d) { return !d.emulated; })),
                         [](const auto& info) { return info.param.name; });

// The emulation runs a step in ~35 ms, so it gets a few short sampled requests: each one's
// tokens alone and in a batch that changes while it decodes must be the same.
class GeneratorEmulatedTest : public GeneratorModelTest {};

TEST_P(GeneratorEmulatedTest, SampledTokensDoNotDependOnTheBatch) {
  std::vector<JobRequest> requests = Requests(/*sampled=*/true);
  requests.resize(4);
  for (JobRequest& r : requests) r.max_tokens = 8;
  const std::vector<JobEvent> alone = RunAloneAndBatched(requests);
  ASSERT_EQ(alone.size(), requests.size());
  for (const JobEvent& e : alone) EXPECT_EQ(e.tokens.size(), 8U);
}

// The CUDA sources' rows verifying drafts (a chunk of the last token and the drafts after it)
// against their decode rows, on the emulation: the same tokens with and without drafts.
TEST_P(GeneratorEmulatedTest, SpeculativeDecodingGivesTheSameTokens) {
  std::vector<JobRequest> requests = Requests(/*sampled=*/false);
  requests.resize(2);
  for (JobRequest& r : requests) r.max_tokens = 24;
  requests[1].sampling.temperature = 0.8F;
  std::unique_ptr<Generator> plain, fast;
  RunAloneWithAndWithoutDrafts(requests, &plain, &fast);
  ASSERT_FALSE(HasFailure());
  EXPECT_GT(fast->Stats().num_draft_tokens, 0);
}

// The CUDA sources' scored rows (the tokens they score written over their picks before
// LogprobRows) on the emulation.
TEST_P(GeneratorEmulatedTest, PromptLogprobsOfAGeneratedTextAreThoseItWasGeneratedWith) {
  CheckScoresOfGeneratedTexts(/*num_cases=*/1, /*max_tokens=*/4);
}

// The copies to and from host memory through the CUDA sources' stream (queued device-to-host
// copies, then host-to-device ones).
TEST_P(GeneratorEmulatedTest, AnEvictedPrefixComesBackFromTheHostTier) {
  CheckAnEvictedPrefixComesBackFromTheHostTier(4);
}

TEST_P(GeneratorEmulatedTest, EmbeddingsDoNotDependOnTheBatch) {
  CheckEmbeddingsAloneAndBatched(2);
}

INSTANTIATE_TEST_SUITE_P(Devices, GeneratorEmulatedTest,
                         ::testing::ValuesIn(ringserve::testing::TestDevicesWhere(
                             [](const TestDevice& d) { return d.emulated; })),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace ringserve::engine
