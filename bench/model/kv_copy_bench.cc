// What the KV cache's host tier costs per block (--kv-host-memory): KvStorage's copies of
// whole blocks, every layer's K and V, to page-locked host memory and back, as
// LlamaRunner::CopyBlocks runs them before a pass. At Llama-3-8B's shape in bf16 a block of
// 16 tokens is 2 MiB in 64 rows of 32 KiB (one per layer and tensor), one strided copy
// (cudaMemcpy2DAsync on a GPU): the figure says whether that reaches the bus's rate.
//
// The backend comes from $RINGSERVE_BENCH_DEVICE ("cpu" by default, "cuda:0" on a GPU);
// deploy/gpu/check.sh's kv_host stage runs it there.
#include <cstdlib>
#include <memory>
#include <string>

#include "benchmark/benchmark.h"
#include "kernels/backend.h"
#include "worker/model/kv_storage.h"
#include "worker/model/presets.h"

namespace ringserve::model {
namespace {

constexpr int kBlockSize = 16;
constexpr int kPoolBlocks = 512;  // 1 GiB at Llama-3-8B bf16: beyond any cache

std::string Device() {
  const char* device = std::getenv("RINGSERVE_BENCH_DEVICE");
  return device != nullptr && *device != '\0' ? device : "cpu";
}

// Copies state.range(0) blocks to host memory (to_host) or back, spread over the pool.
void BM_KvBlocksHostCopy(benchmark::State& state, bool to_host) {
  absl::StatusOr<ModelConfig> config = PresetConfig("llama-3-8b");
  if (config.ok()) {
    if (absl::Status derived = config->Validate(); !derived.ok()) config = derived;
  }
  auto backend = kernels::CreateBackend(Device(), kernels::BackendOptions{});
  if (!config.ok() || !backend.ok()) {
    state.SkipWithError(
        std::string((config.ok() ? backend.status() : config.status()).message()).c_str());
    return;
  }
  auto kv =
      KvStorage::Create(*config, backend->get(), kernels::DType::kBF16, kPoolBlocks, kBlockSize);
  if (!kv.ok()) {
    state.SkipWithError(std::string(kv.status().message()).c_str());
    return;
  }
  const auto num_blocks = static_cast<int>(state.range(0));
  const size_t block_bytes = (*kv)->bytes_per_block();
  auto host = (*backend)->AllocateHost(block_bytes * static_cast<size_t>(num_blocks));
  if (!host.ok()) {
    state.SkipWithError(std::string(host.status().message()).c_str());
    return;
  }
  auto* slots = host->as<uint8_t>();
  const auto copy_all = [&] {
    for (int i = 0; i < num_blocks; ++i) {
      const int block = (i * 37) % kPoolBlocks;  // scattered, as a pool's blocks are
      uint8_t* slot = slots + static_cast<size_t>(i) * block_bytes;
      if (to_host) {
        (*kv)->CopyBlockToHost(block, slot);
      } else {
        (*kv)->CopyBlockFromHost(slot, block);
      }
    }
    (*backend)->Synchronize();
  };
  copy_all();  // first touch of the pages (a CPU pool is mapped lazily) out of the timing
  for (auto _ : state) copy_all();
  const int64_t bytes = static_cast<int64_t>(block_bytes) * num_blocks;
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * bytes);
  state.counters["block_MiB"] = static_cast<double>(block_bytes) / (1 << 20);
  state.counters["us_per_block"] = benchmark::Counter(
      static_cast<double>(num_blocks) * 1e-6,
      benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
  state.SetLabel(Device());
}

BENCHMARK_CAPTURE(BM_KvBlocksHostCopy, llama_3_8b_bf16_to_host, true)
    ->Arg(1)
    ->Arg(16)
    ->Arg(128)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_KvBlocksHostCopy, llama_3_8b_bf16_from_host, false)
    ->Arg(1)
    ->Arg(16)
    ->Arg(128)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace ringserve::model
