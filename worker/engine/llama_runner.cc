#include "worker/engine/llama_runner.h"

#include <algorithm>
#include <climits>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/check.h"
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
  auto runner = std::make_unique<LlamaRunner>(std::move(model));
  RS_RETURN_IF_ERROR(runner->AllocateHostTier(options.kv_host_memory_bytes));
  return runner;
}

absl::StatusOr<std::unique_ptr<LlamaRunner>> LlamaRunner::CreateWithRandomWeights(
    const model::ModelConfig& config, uint64_t seed, kernels::Backend* backend,
    const LlamaRunnerOptions& options) {
  RS_ASSIGN_OR_RETURN(auto model, model::LlamaModel::CreateWithRandomWeights(
                                      config, seed, backend, ToModelOptions(options, *backend)));
  auto runner = std::make_unique<LlamaRunner>(std::move(model));
  RS_RETURN_IF_ERROR(runner->AllocateHostTier(options.kv_host_memory_bytes));
  return runner;
}

absl::Status LlamaRunner::AllocateHostTier(size_t bytes) {
  RS_CHECK(num_host_blocks_ == 0);
  if (bytes == 0) return absl::OkStatus();
  const size_t block_bytes = model_->kv_storage().bytes_per_block();
  const size_t blocks = std::min<size_t>(bytes / block_bytes, INT32_MAX);
  if (blocks == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "kv host memory: ", bytes, " bytes hold no KV block of ", block_bytes, " bytes"));
  }
  // Where host memory is backed lazily (a CPU worker: the tier is plain memory) a tier that
  // can never be backed would end in the process being killed once it fills.
  RS_RETURN_IF_ERROR(model_->CheckFitsMemory(blocks * block_bytes, "--kv-host-memory"));
  RS_ASSIGN_OR_RETURN(host_tier_, model_->backend()->AllocateHost(blocks * block_bytes));
  num_host_blocks_ = static_cast<int32_t>(blocks);
  return absl::OkStatus();
}

void LlamaRunner::CopyBlocks(std::span<const kvcache::BlockCopy> copies) {
  model::KvStorage& kv = model_->kv_storage();
  const size_t block_bytes = kv.bytes_per_block();
  const auto host_block = [&](int32_t slot) {
    RS_CHECK(slot >= 0 && slot < num_host_blocks_);
    return host_tier_.as<uint8_t>() + static_cast<size_t>(slot) * block_bytes;
  };
  for (const kvcache::BlockCopy& copy : copies) {
    switch (copy.kind) {
      case kvcache::CopyKind::kOnDevice:
        kv.CopyBlock(copy.src_block, copy.dst_block);
        break;
      case kvcache::CopyKind::kToHost:
        kv.CopyBlockToHost(copy.src_block, host_block(copy.dst_block));
        break;
      case kvcache::CopyKind::kFromHost:
        kv.CopyBlockFromHost(host_block(copy.src_block), copy.dst_block);
        break;
    }
  }
}

}  // namespace ringserve::engine
