// KV-cache bookkeeping benchmarks: admit + commit + release at several prefix-hit rates,
// Match() on a long prompt, and the per-token decode path. Block size 16, as served.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>
#include <numeric>
#include <vector>

#include "kvcache/kv_cache_manager.h"

namespace ringserve::kvcache {
namespace {

constexpr int32_t kBlockSize = 16;
constexpr int32_t kNumBlocks = 8192;

std::vector<int32_t> Iota(int32_t num_tokens, int32_t first) {
  std::vector<int32_t> tokens(static_cast<size_t>(num_tokens));
  std::iota(tokens.begin(), tokens.end(), first);
  return tokens;
}

KvCacheManager MakeManager() {
  return KvCacheManager({.num_blocks = kNumBlocks, .block_size_tokens = kBlockSize});
}

// Admits and computes a whole prompt; the benchmarks' set-up never runs out of blocks.
void Prefill(KvCacheManager& manager, SeqId seq, const std::vector<int32_t>& prompt) {
  const int32_t num_tokens = static_cast<int32_t>(prompt.size());
  const std::optional<Admission> admission = manager.Admit(seq, prompt, num_tokens);
  if (!admission.has_value()) std::abort();
  manager.Commit(seq, admission->num_new_tokens);
}

// One request's whole life in the cache: admit a 640-token prompt (40 blocks) of which
// range(0) percent of the blocks are a cached system prompt, commit it, release it. The
// uncached tail differs every iteration (one changed token changes every later key), so it
// is registered and later evicted on reuse, as in a busy server.
void BM_AdmitCommitRelease(benchmark::State& state) {
  const int32_t hit_percent = static_cast<int32_t>(state.range(0));
  constexpr int32_t kPromptTokens = 640;
  const int32_t hit_tokens = kPromptTokens * hit_percent / 100;
  KvCacheManager manager = MakeManager();
  std::vector<int32_t> prompt = Iota(kPromptTokens, 1000);
  const std::vector<int32_t> warm = Iota(kPromptTokens, 1000);
  Prefill(manager, 0, warm);
  manager.Release(0);
  int32_t unique = 1 << 20;
  SeqId seq = 1;
  for (auto _ : state) {
    prompt[static_cast<size_t>(hit_tokens)] = unique++;
    const std::optional<Admission> admission = manager.Admit(seq, prompt, kPromptTokens);
    if (!admission.has_value()) {
      state.SkipWithError("admission refused");
      break;
    }
    manager.Commit(seq, admission->num_new_tokens);
    manager.Release(seq++);
  }
  const KvCacheStats stats = manager.Stats();
  state.SetItemsProcessed(state.iterations());
  state.counters["prompt_tokens/s"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * kPromptTokens, benchmark::Counter::kIsRate);
  state.counters["hit_rate"] = static_cast<double>(stats.num_hit_tokens) /
                               static_cast<double>(stats.num_prefix_lookup_tokens);
}
BENCHMARK(BM_AdmitCommitRelease)->Arg(0)->Arg(50)->Arg(90);

// The scheduler's look-up before admitting: a 4096-token prompt whose prefix is all cached
// (255 keys hashed and compared).
void BM_Match4kPrompt(benchmark::State& state) {
  constexpr int32_t kPromptTokens = 4096;
  KvCacheManager manager = MakeManager();
  const std::vector<int32_t> prompt = Iota(kPromptTokens, 7);
  Prefill(manager, 0, prompt);
  manager.Release(0);
  for (auto _ : state) {
    benchmark::DoNotOptimize(manager.Match(prompt));
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * kPromptTokens * int64_t{sizeof(int32_t)});
  state.counters["tokens/s"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * kPromptTokens, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Match4kPrompt);

// Decode bookkeeping for a batch of 64 sequences: append the sampled token, reserve one
// slot, commit it (a block fills and is keyed every 16 steps).
void BM_DecodeStepBatch64(benchmark::State& state) {
  constexpr int32_t kBatch = 64;
  KvCacheManager manager = MakeManager();
  for (SeqId seq = 0; seq < kBatch; ++seq) {
    Prefill(manager, seq, Iota(100, static_cast<int32_t>(seq) * 1000));
  }
  int32_t token = 0;
  int64_t num_steps = 0;
  for (auto _ : state) {
    for (SeqId seq = 0; seq < kBatch; ++seq) {
      const int32_t sampled = token++;
      manager.AppendTokens(seq, std::span<const int32_t>(&sampled, 1));
      if (!manager.Reserve(seq, 1)) {
        state.SkipWithError("pool exhausted");
        return;
      }
      manager.Commit(seq, 1);
    }
    if (++num_steps % 1024 == 0) {  // restart the batch before the pool runs out
      state.PauseTiming();
      for (SeqId seq = 0; seq < kBatch; ++seq) {
        manager.Release(seq);
        Prefill(manager, seq, Iota(100, static_cast<int32_t>(seq) * 1000));
      }
      state.ResumeTiming();
    }
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}
BENCHMARK(BM_DecodeStepBatch64);

}  // namespace
}  // namespace ringserve::kvcache
