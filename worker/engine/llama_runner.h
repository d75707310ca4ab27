// ModelRunner over the Llama forward pass: LlamaModel owns the weights and the K/V
// tensors; this adapter sizes the KV pool from the engine's memory setting, owns the host
// tier's memory and copies blocks (copy-on-write, to and from the host tier).
#ifndef RINGSERVE_WORKER_ENGINE_LLAMA_RUNNER_H_
#define RINGSERVE_WORKER_ENGINE_LLAMA_RUNNER_H_

#include <cstddef>
#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "kernels/backend.h"
#include "worker/engine/model_runner.h"
#include "worker/model/checkpoint.h"
#include "worker/model/llama_model.h"

namespace ringserve::engine {

// How much device memory the KV pool takes (--kv-memory). Exactly one is set.
struct KvMemory {
  size_t bytes = 0;             // > 0: this many bytes
  double fraction_of_free = 0;  // in (0, 1]: this share of the memory free after the weights
};

struct LlamaRunnerOptions {
  int32_t block_size_tokens = 16;
  int32_t max_batch_tokens = 2048;  // the step's token budget (and the workspace's size)
  int32_t max_seqs = 256;           // most sequences per step
  int32_t max_sampled_rows = 0;     // most sampled rows per step; 0 = max_seqs
  int32_t num_kv_blocks = 0;        // > 0: exactly this many blocks, kv_memory ignored
  KvMemory kv_memory = {.fraction_of_free = 0.9};
  // Host memory for the KV cache's host tier (--kv-host-memory): blocks the pool evicts are
  // kept there and copied back when a prompt needs them again. 0: none.
  size_t kv_host_memory_bytes = 0;
};

// Blocks of bytes_per_block that `memory` holds on `backend` (a fraction is of the free
// memory less the backend's RuntimeReserveBytes). INVALID_ARGUMENT for a bad setting,
// RESOURCE_EXHAUSTED when not even one block fits.
absl::StatusOr<int> KvBlocksForMemory(const KvMemory& memory, const kernels::Backend& backend,
                                      size_t bytes_per_block);

// The model options `options` describe; the KV pool is sized after the weight upload.
model::ModelOptions ToModelOptions(const LlamaRunnerOptions& options,
                                   const kernels::Backend& backend);

// Owner: the generator. Thread: the engine thread only. The backend must outlive it.
class LlamaRunner final : public ModelRunner {
 public:
  static absl::StatusOr<std::unique_ptr<LlamaRunner>> Create(const model::Checkpoint& checkpoint,
                                                             kernels::Backend* backend,
                                                             const LlamaRunnerOptions& options);
  // Deterministic random weights at the shape of `config` (benchmarks at real shapes).
  static absl::StatusOr<std::unique_ptr<LlamaRunner>> CreateWithRandomWeights(
      const model::ModelConfig& config, uint64_t seed, kernels::Backend* backend,
      const LlamaRunnerOptions& options);
  explicit LlamaRunner(std::unique_ptr<model::LlamaModel> model) : model_(std::move(model)) {}

  // Allocates the host tier: as many whole blocks as `bytes` hold (0: none), page-locked on a
  // GPU. RESOURCE_EXHAUSTED when the memory cannot be had. Once, before the first pass.
  absl::Status AllocateHostTier(size_t bytes);

  int32_t vocab_size() const override { return model_->config().vocab_size; }
  int32_t block_size_tokens() const override { return model_->options().block_size; }
  int32_t num_kv_blocks() const override { return model_->options().num_kv_blocks; }
  int32_t num_host_kv_blocks() const override { return num_host_blocks_; }
  std::vector<std::shared_ptr<const model::PreparedLora>> lora_adapters() const override {
    return model_->lora_slots();
  }
  absl::StatusOr<std::shared_ptr<const model::PreparedLora>> PrepareLoraAdapter(
      const model::LoraAdapter& adapter) const override {
    return model_->PrepareLoraAdapter(adapter);
  }
  absl::Status SetLoraAdapter(int32_t slot,
                              const std::shared_ptr<const model::PreparedLora>& adapter) override {
    return model_->SetLoraAdapter(slot, adapter);
  }
  int32_t max_batch_tokens() const override { return model_->options().max_batch_tokens; }
  int32_t max_seqs() const override { return model_->options().max_seqs; }
  int32_t max_sampled_rows() const override { return model_->options().max_sampled_rows; }
  int32_t max_context_tokens() const override { return model_->config().max_seq_len; }

  absl::StatusOr<model::SampledPass> ForwardSampled(std::span<const model::SequenceChunk> chunks,
                                                    const model::StepSampling& step) override {
    return model_->ForwardSampled(chunks, step);
  }
  int64_t max_penalty_entries() const override { return model_->max_penalty_entries(); }
  void CopyBlocks(std::span<const kvcache::BlockCopy> copies) override;

  model::LlamaModel& model() { return *model_; }

 private:
  std::unique_ptr<model::LlamaModel> model_;
  kernels::HostBuffer host_tier_;  // num_host_blocks_ blocks of KvStorage::bytes_per_block()
  int32_t num_host_blocks_ = 0;
};

}  // namespace ringserve::engine

#endif  // RINGSERVE_WORKER_ENGINE_LLAMA_RUNNER_H_
