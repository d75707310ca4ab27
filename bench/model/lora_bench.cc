// What preparing a LoRA adapter for a model's slots costs (LlamaModel::PrepareLoraAdapter:
// every matrix encoded in the activation dtype). A worker pays it once per adapter, on the
// thread that loads it; before adapters were kept prepared, the engine thread paid it (over
// the slot's whole room) on every write into a slot, with every running sequence waiting.
#include <string>

#include "benchmark/benchmark.h"
#include "kernels/dtype.h"
#include "worker/model/gguf_writer.h"
#include "worker/model/lora_adapter.h"
#include "worker/model/presets.h"

namespace ringserve::model {
namespace {

void BM_EncodeLoraAdapter(benchmark::State& state, const std::string& preset,
                          kernels::DType dtype) {
  const absl::StatusOr<ModelConfig> config = PresetConfig(preset);
  if (!config.ok()) {
    state.SkipWithError(std::string(config.status().message()).c_str());
    return;
  }
  const LoraAdapter adapter =
      RandomLoraAdapter("bench", *config, static_cast<int>(state.range(0)), /*seed=*/1);
  size_t bytes = 0;
  for (auto _ : state) {
    bytes = 0;
    for (const auto& layer : adapter.layers) {
      for (const LoraMatrices& m : layer) {
        if (m.rank == 0) continue;
        const std::vector<uint8_t> a = EncodeTensorData(dtype, m.a);
        const std::vector<uint8_t> b_t = EncodeTensorData(dtype, m.b_t);
        bytes += a.size() + b_t.size();
        benchmark::DoNotOptimize(a.data());
        benchmark::DoNotOptimize(b_t.data());
      }
    }
  }
  state.counters["MB"] = static_cast<double>(bytes) / 1e6;
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(bytes));
}

BENCHMARK_CAPTURE(BM_EncodeLoraAdapter, llama_3_8b_bf16, "llama-3-8b", kernels::DType::kBF16)
    ->Arg(16)
    ->Arg(64)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_EncodeLoraAdapter, llama_3_2_1b_bf16, "llama-3.2-1b", kernels::DType::kBF16)
    ->Arg(16)
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace ringserve::model
