// ringserve-generator-overhead-bench: the engine thread's own time per decode step (plan,
// block tables, delivery, detokenisation, stop strings: everything but the pass) at P
// concurrent jobs, against FakeModelRunner, whose pass is host work excluded from the
// figure. On a GPU this time is not overlapped with the pass: the engine plans step N + 1
// once step N's tokens are back, so it adds to every step.
//
// Counters, over the steps where all P jobs decode: engine_us (from one step's start to the
// next's, less the pass; median), engine_us_per_seq, and step_us (the interval, median). `text`:
// the jobs are detokenised with the built-in tiny model's vocabulary and carry a stop string, as
// requests with text do.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "worker/engine/fake_model_runner.h"
#include "worker/engine/generator.h"
#include "worker/model/tiny_model.h"
#include "worker/tokenizer/tokenizer.h"

namespace ringserve::engine {
namespace {

constexpr int32_t kPromptTokens = 64;
constexpr int32_t kGenTokens = 64;
constexpr int32_t kBlockSize = 16;

double Median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

void BM_EngineOverheadPerDecodeStep(benchmark::State& state) {
  const auto parallel = static_cast<int32_t>(state.range(0));
  const bool text = state.range(1) != 0;
  std::unique_ptr<tokenizer::Tokenizer> tokenizer;
  if (text) tokenizer = *tokenizer::Tokenizer::Create(model::TinyVocabulary());
  // Vocabulary ids 3.. are real pieces of the tiny vocabulary; the next token is a function
  // of the history, so sequences stay distinct.
  const int32_t vocab = 512;
  std::vector<double> engine_us;
  std::vector<double> step_us;
  for (auto _ : state) {  // NOLINT(clang-analyzer-deadcode.DeadStores): the benchmark loop
    FakeModelRunnerOptions fake;
    fake.vocab_size = vocab;
    fake.block_size_tokens = kBlockSize;
    fake.max_seqs = parallel;
    fake.max_batch_tokens = std::max(2048, parallel);
    fake.max_context_tokens = kPromptTokens + kGenTokens;
    fake.num_kv_blocks = parallel * ((kPromptTokens + kGenTokens) / kBlockSize + 1);
    fake.next_token = [](std::span<const int32_t> history) {
      return 3 + static_cast<int32_t>((static_cast<size_t>(history.back()) * 31 + history.size()) %
                                      500);
    };
    std::mutex mu;
    std::vector<StepRecord> steps;
    auto created =
        Generator::Create(std::make_unique<FakeModelRunner>(std::move(fake)), tokenizer.get(),
                          GeneratorOptions{}, [&](const StepRecord& step) {
                            std::lock_guard<std::mutex> lock(mu);
                            steps.push_back(step);
                          });
    if (!created.ok()) {
      state.SkipWithError(created.status().ToString().c_str());
      return;
    }
    std::vector<JobHandle> handles;
    for (int32_t j = 0; j < parallel; ++j) {
      JobRequest request;
      for (int32_t i = 0; i < kPromptTokens; ++i) request.tokens.push_back(3 + (j * 7 + i) % 500);
      request.max_tokens = kGenTokens;
      request.ignore_eos = true;
      if (text) request.stop_strings = {"never appears in this output \x01"};
      handles.push_back(*(*created)->Submit(std::move(request)));
    }
    for (JobHandle& handle : handles) {
      const JobEvent event = handle.Collect();
      if (!event.status.ok()) {
        state.SkipWithError(event.status.ToString().c_str());
        return;
      }
    }
    created->reset();  // the engine thread stops: no more records
    // From one all-decode step's start to the next's, less the pass: the loop's whole
    // host time (the inbox, publishing stats and final events included).
    for (size_t i = 0; i + 1 < steps.size(); ++i) {
      const StepRecord& step = steps[i];
      if (step.num_decode_seqs != parallel || step.num_tokens != parallel) continue;
      const double interval_us = absl::ToDoubleMicroseconds(steps[i + 1].start - step.start);
      engine_us.push_back(interval_us - step.forward_seconds * 1e6);
      step_us.push_back(interval_us);
    }
  }
  const double engine = Median(engine_us);
  state.counters["engine_us"] = engine;
  state.counters["engine_us_per_seq"] = engine / parallel;
  state.counters["step_us"] = Median(step_us);
  state.counters["decode_steps"] = static_cast<double>(engine_us.size());
}
BENCHMARK(BM_EngineOverheadPerDecodeStep)
    ->ArgNames({"P", "text"})
    ->ArgsProduct({{1, 64, 256}, {0, 1}})
    ->Unit(benchmark::kMillisecond)
    ->Iterations(3);

}  // namespace
}  // namespace ringserve::engine
