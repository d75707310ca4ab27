// The seam between the generator and the model: the engine plans batches of sequence
// chunks over block ids; a ModelRunner executes them on whatever holds the K/V tensors.
// LlamaRunner (llama_runner.h) runs the real model; FakeModelRunner (fake_model_runner.h)
// is a deterministic stand-in for scheduler and generator tests.
#ifndef RINGSERVE_WORKER_ENGINE_MODEL_RUNNER_H_
#define RINGSERVE_WORKER_ENGINE_MODEL_RUNNER_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "kvcache/kv_cache_manager.h"
#include "worker/model/llama_model.h"

namespace ringserve::engine {

// Owner: the generator. Thread: the engine thread only (one call at a time). The limits
// are fixed at creation: the generator sizes its KV bookkeeping and token budget from them.
class ModelRunner {
 public:
  virtual ~ModelRunner() = default;

  virtual int32_t vocab_size() const = 0;
  virtual int32_t block_size_tokens() const = 0;
  virtual int32_t num_kv_blocks() const = 0;
  // Blocks of host memory that keep K/V the device pool evicts (kvcache::HostBlockIndex);
  // 0 without a host tier.
  virtual int32_t num_host_kv_blocks() const { return 0; }
  // Most tokens and sequences one Forward() may carry.
  virtual int32_t max_batch_tokens() const = 0;
  virtual int32_t max_seqs() const = 0;
  // Most rows one Forward() may sample (>= max_seqs): a chunk verifying drafts samples 1 +
  // SequenceChunk::num_drafts.
  virtual int32_t max_sampled_rows() const { return max_seqs(); }
  // Most tokens one sequence may hold (the model's context length).
  virtual int32_t max_context_tokens() const = 0;
  // The LoRA slots a chunk may name (model::SequenceChunk::adapter: an index here): each
  // one's adapter at creation, null where a slot is empty.
  virtual std::vector<std::shared_ptr<const model::PreparedLora>> lora_adapters() const {
    return {};
  }
  // Encodes `adapter` for the slots, or refuses it, as model::LlamaModel::PrepareLoraAdapter.
  // Any thread.
  virtual absl::StatusOr<std::shared_ptr<const model::PreparedLora>> PrepareLoraAdapter(
      const model::LoraAdapter& /*adapter*/) const {
    return absl::FailedPreconditionError("this model runner has no LoRA slots");
  }
  // Writes a prepared adapter into `slot` for the passes after this call (null empties it),
  // as model::LlamaModel::SetLoraAdapter. Between passes, on the engine thread.
  virtual absl::Status SetLoraAdapter(
      int32_t /*slot*/, const std::shared_ptr<const model::PreparedLora>& /*adapter*/) {
    return absl::FailedPreconditionError("this model runner has no LoRA slots");
  }

  // Runs one pass over `chunks` (see model::SequenceChunk) and picks a token for every
  // sampled row (model::SampledRows), in chunk order: row i's penalties, then its chain
  // step.chains[i] (kernels/row_sampling.h, the same token on every backend). Also returns the raw
  // logits of the sampled rows listed in step.logits_rows ([logits_rows.size(), vocab_size]), for
  // the rows the host must see. Both in the runner's own memory, valid until the next pass.
  virtual absl::StatusOr<model::SampledPass> ForwardSampled(
      std::span<const model::SequenceChunk> chunks, const model::StepSampling& step) = 0;
  // Most penalty entries one pass takes.
  virtual int64_t max_penalty_entries() const = 0;

  // Copies whole KV blocks in order (kvcache::BlockCopy: on the device, or to and from the
  // host tier's slots), before the next Forward() reads them.
  virtual void CopyBlocks(std::span<const kvcache::BlockCopy> copies) = 0;
};

}  // namespace ringserve::engine

#endif  // RINGSERVE_WORKER_ENGINE_MODEL_RUNNER_H_
