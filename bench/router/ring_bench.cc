// Ring benchmarks (Envoy's ring_hash benchmarks are the model): building a snapshot for a
// fleet, one pick, and how evenly and how stably keys spread (counters, not times).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "router/ring.h"
#include "router/session_key.h"

namespace ringserve::router {
namespace {

constexpr int kNumKeys = 100'000;

std::vector<std::shared_ptr<Endpoint>> MakeEndpoints(int n) {
  std::vector<std::shared_ptr<Endpoint>> endpoints;
  for (int i = 0; i < n; ++i) {
    endpoints.push_back(std::make_shared<Endpoint>(absl::StrCat("10.0.0.", i, ":50051")));
  }
  return endpoints;
}

std::shared_ptr<const Ring> MakeRing(std::vector<std::shared_ptr<Endpoint>> endpoints,
                                     int probes_per_key = RingOptions{}.probes_per_key) {
  return *Ring::Create(std::move(endpoints), {.probes_per_key = probes_per_key});
}

std::vector<uint64_t> KeyHashes(int n) {
  std::vector<uint64_t> hashes;
  for (int i = 0; i < n; ++i) hashes.push_back(SessionHash(absl::StrCat("session-", i)));
  return hashes;
}

// Arg: workers. 160 points each.
void BM_RingBuild(benchmark::State& state) {
  const auto endpoints = MakeEndpoints(static_cast<int>(state.range(0)));
  for (auto _ : state) {
    auto ring = Ring::Create(endpoints);
    benchmark::DoNotOptimize(ring);
  }
  state.counters["points"] = static_cast<double>(state.range(0) * 160);
}
BENCHMARK(BM_RingBuild)->Arg(8)->Arg(64)->Unit(benchmark::kMicrosecond);

// One bounded-load pick (what a Generate with a session id costs the router), with every
// worker carrying a few requests so the bound is live. Args: workers, probes per key.
void BM_RingPick(benchmark::State& state) {
  auto endpoints = MakeEndpoints(static_cast<int>(state.range(0)));
  auto ring = MakeRing(endpoints, static_cast<int>(state.range(1)));
  std::vector<InFlight> load;
  for (const auto& endpoint : endpoints) {
    for (int i = 0; i < 4; ++i) load.emplace_back(endpoint);
  }
  const std::vector<uint64_t> keys = KeyHashes(4096);
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(ring->Pick(keys[i++ & 4095], 0));
  }
}
BENCHMARK(BM_RingPick)->Args({64, 1})->Args({64, 3})->Args({8, 3});

// One power-of-two-choices pick (a Generate without a session id).
void BM_RingPickLessLoaded(benchmark::State& state) {
  auto ring = MakeRing(MakeEndpoints(64));
  uint64_t bits = 0x9e3779b97f4a7c15ull;
  for (auto _ : state) {
    bits = bits * 6364136223846793005ull + 1442695040888963407ull;
    benchmark::DoNotOptimize(ring->PickLessLoaded(bits));
  }
}
BENCHMARK(BM_RingPickLessLoaded);

// Not a timing: the share of 100k keys whose owner changes when one of N workers leaves
// (ideal 1/N), and the busiest worker's keys over the mean. Args: workers, probes per key.
void BM_KeysMovedWhenWorkerLeaves(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  const int probes = static_cast<int>(state.range(1));
  const auto endpoints = MakeEndpoints(n);
  const std::vector<uint64_t> keys = KeyHashes(kNumKeys);
  double moved_share = 0;
  double max_over_mean = 0;
  for (auto _ : state) {
    auto full = MakeRing(endpoints, probes);
    auto without_one = MakeRing({endpoints.begin() + 1, endpoints.end()}, probes);
    std::vector<int> counts(n, 0);
    int moved = 0;
    for (uint64_t key : keys) {
      const auto owner = full->Owner(key, 0);
      moved += owner != without_one->Owner(key, 0);
      const auto it = std::find(full->endpoints().begin(), full->endpoints().end(), owner);
      ++counts[it - full->endpoints().begin()];
    }
    moved_share = static_cast<double>(moved) / kNumKeys;
    max_over_mean =
        *std::max_element(counts.begin(), counts.end()) / (static_cast<double>(kNumKeys) / n);
  }
  state.counters["moved_share"] = moved_share;
  state.counters["ideal_share"] = 1.0 / n;
  state.counters["max_over_mean"] = max_over_mean;
}
BENCHMARK(BM_KeysMovedWhenWorkerLeaves)
    ->Args({8, 1})
    ->Args({8, 3})
    ->Args({64, 1})
    ->Args({64, 3})
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace ringserve::router
