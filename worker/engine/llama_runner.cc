#include "worker/engine/llama_runner.h"

#include <algorithm>
#include <climits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kvcache/sizing.h"

namespace ringserve::engine {

absl::StatusOr<int> KvBlocksForMemory(const KvMemory& memory, const kernels::Backend& backend,
                                      size_t bytes_per_block) {
  if ((memory.bytes > 0) == (memory.fraction_of_free > 0)) {
    return absl::InvalidArgumentError(
        "kv memory: set exactly one of a byte count or a fraction of free memory");
  }
  if (memory.fraction_of_free > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("kv memory: fraction of free memory must be in (0, 1] (got ",
                     memory.fraction_of_free, ")"));
  }
  const size_t free = backend.FreeMemoryBytes();
  const size_t usable = free - std::min(free, backend.RuntimeReserveBytes());
  const size_t bytes =
      memory.bytes > 0 ? memory.bytes
                       : static_cast<size_t>(static_cast<double>(usable) * memory.fraction_of_free);
  const size_t blocks = kvcache::NumBlocksForMemory(bytes, bytes_per_block);
  if (blocks == 0) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "kv memory: ", bytes, " bytes hold no KV block of ", bytes_per_block, " bytes"));
  }
  return static_cast<int>(std::min<size_t>(blocks, INT_MAX));
}

model::ModelOptions ToModelOptions(const LlamaRunnerOptions& options,
                                   const kernels::Backend& backend) {
  model::ModelOptions model_options;
  model_options.block_size = options.block_size_tokens;
  model_options.num_kv_blocks = options.num_kv_blocks;
  model_options.max_batch_tokens = options.max_batch_tokens;
  model_options.max_seqs = options.max_seqs;
  model_options.max_sampled_rows = options.max_sampled_rows;
  if (options.num_kv_blocks <= 0) {
    model_options.size_kv_pool = [memory = options.kv_memory, &backend](size_t bytes_per_block) {
      return KvBlocksForMemory(memory, backend, bytes_per_block);
    };
  }
  return model_options;
}

absl::StatusOr<std::unique_ptr<LlamaRunner>> LlamaRunner::Create(
    const model::Checkpoint& checkpoint, kernels::Backend* backend,
    const LlamaRunnerOptions& options) {
  RS_ASSIGN_OR_RETURN(auto model, model::LlamaModel::Create(checkpoint, backend,
                                                            ToModelOptions(options, *backend)));
  return std::make_unique<LlamaRunner>(std::move(model));
}

absl::StatusOr<std::unique_ptr<LlamaRunner>> LlamaRunner::CreateWithRandomWeights(
    const model::ModelConfig& config, uint64_t seed, kernels::Backend* backend,
    const LlamaRunnerOptions& options) {
  RS_ASSIGN_OR_RETURN(auto model, model::LlamaModel::CreateWithRandomWeights(
                                      config, seed, backend, ToModelOptions(options, *backend)));
  return std::make_unique<LlamaRunner>(std::move(model));
}

void LlamaRunner::CopyBlocks(std::span<const kvcache::BlockCopy> copies) {
  for (const kvcache::BlockCopy& copy : copies) {
    model_->kv_storage().CopyBlock(copy.src_block, copy.dst_block);
  }
}

}  // namespace ringserve::engine
