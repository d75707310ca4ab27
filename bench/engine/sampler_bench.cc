// Host-side sampling of one logits row at Llama-3's vocabulary (128256): what a CPU
// worker's SampleRows (and LogprobRows) costs per row, and on a GPU worker what a row that
// needs the host (penalties beyond the step's room) costs on the sampling threads. Other
// rows are picked, and their logprobs taken, on the device.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <vector>

#include "worker/engine/sampler.h"

namespace ringserve::engine {
namespace {

constexpr int kVocab = 128256;

std::vector<float> RandomLogits(int vocab) {
  std::mt19937_64 rng(7);
  std::normal_distribution<float> normal(0.0F, 3.0F);
  std::vector<float> logits(vocab);
  for (float& l : logits) l = normal(rng);
  return logits;
}

void RunSampler(benchmark::State& state, const SamplingParams& params) {
  const std::vector<float> logits = RandomLogits(static_cast<int>(state.range(0)));
  Sampler sampler(params, {});
  for (auto _ : state) benchmark::DoNotOptimize(sampler.Sample(logits));
  state.SetItemsProcessed(state.iterations());
}

void BM_SampleGreedy(benchmark::State& state) { RunSampler(state, {.temperature = 0.0F}); }
BENCHMARK(BM_SampleGreedy)->Arg(kVocab)->Arg(32000);

void BM_SampleGreedyWithPenalty(benchmark::State& state) {
  RunSampler(state, {.temperature = 0.0F, .repetition_penalty = 1.1F});
}
BENCHMARK(BM_SampleGreedyWithPenalty)->Arg(kVocab);

void BM_SampleTopP(benchmark::State& state) {
  RunSampler(state, {.temperature = 0.8F, .top_p = 0.95F});
}
BENCHMARK(BM_SampleTopP)->Arg(kVocab);

void BM_SampleTopK(benchmark::State& state) {
  RunSampler(state, {.temperature = 0.8F, .top_k = 50});
}
BENCHMARK(BM_SampleTopK)->Arg(kVocab);

// A request that asks for logprobs: the row's log-softmax and its top 5 as well.
void BM_SampleGreedyWithLogprobs(benchmark::State& state) {
  RunSampler(state, {.temperature = 0.0F, .num_logprobs = 5});
}
BENCHMARK(BM_SampleGreedyWithLogprobs)->Arg(kVocab);

}  // namespace
}  // namespace ringserve::engine
