// A deterministic ModelRunner for tests that need no model: the logits of a sequence are a
// pure function of its token history, and that history is read back from a simulated KV
// store (one token id per slot) through the chunk's block table. A scheduler that hands out
// a wrong block table, forgets a copy-on-write copy or computes a position twice therefore
// changes the outputs, and reading a slot nothing wrote fails the pass.
#ifndef RINGSERVE_WORKER_ENGINE_FAKE_MODEL_RUNNER_H_
#define RINGSERVE_WORKER_ENGINE_FAKE_MODEL_RUNNER_H_

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "worker/engine/model_runner.h"

namespace ringserve::engine {

struct FakeModelRunnerOptions {
  int32_t vocab_size = 64;
  int32_t block_size_tokens = 4;
  int32_t num_kv_blocks = 64;
  int32_t num_host_kv_blocks = 0;  // the host tier's slots (one token id per position too)
  int32_t max_batch_tokens = 64;
  int32_t max_seqs = 8;
  int32_t max_sampled_rows = 0;  // 0 = max_seqs
  int32_t max_context_tokens = 256;
  int64_t max_penalty_entries = 1 << 16;
  // LoRA slots, each the name of the adapter it holds at creation ("" for an empty slot).
  // Every prepared adapter written into a slot (at creation or by SetLoraAdapter) is a load,
  // numbered from 1 in the order each is first written (the same object written again is
  // the same load): its logits are the base row rotated by the load's number, and the K/V it
  // writes is marked with it, so a pass that reads K/V another load computed (the prefix
  // cache sharing blocks across adapters) fails.
  std::vector<std::string> lora_adapters;
  // The token the logits favour after `history` (a strong peak: greedy picks it, sampling
  // almost always does). Unset: every logit is a hash of (history, token id).
  std::function<int32_t(std::span<const int32_t> history)> next_token;
  // The peak's logit (every other logit is 0): 20 nats by default; a low one lets penalties
  // move the pick.
  float next_token_logit = 20.0F;
  // Runs at the start of every pass on the engine thread (tests slow steps down or
  // block them here).
  std::function<void()> on_forward;
};

// One chunk of a recorded pass.
struct FakeChunk {
  int32_t start_position = 0;
  int32_t num_tokens = 0;
  bool sample = false;
  int32_t first_token = 0;
  int32_t num_drafts = 0;
  int32_t num_scored = 0;
};

// Everything one pass was asked to do, for tests to inspect.
struct FakeStep {
  std::vector<FakeChunk> chunks;
  int32_t num_copies_before = 0;      // block copies run since the previous pass
  std::vector<int32_t> logits_rows;   // the sampled rows whose logits the host asked for
  std::vector<int32_t> logprob_rows;  // and those whose logprobs it asked for
  size_t num_penalties = 0;           // penalty entries applied on the "device"
};

// Thread: the runner methods run on the engine thread; Steps()/num_copies() may be called
// from any thread (a mutex guards the records).
class FakeModelRunner final : public ModelRunner {
 public:
  // Values of a row's fake hidden state (StepSampling::hidden_rows): the first ones of its
  // logits, so a function of its history (fewer with a smaller vocabulary).
  static constexpr int32_t kHiddenSize = 8;
  explicit FakeModelRunner(FakeModelRunnerOptions options);

  int32_t vocab_size() const override { return options_.vocab_size; }
  int32_t block_size_tokens() const override { return options_.block_size_tokens; }
  int32_t num_kv_blocks() const override { return options_.num_kv_blocks; }
  int32_t num_host_kv_blocks() const override { return options_.num_host_kv_blocks; }
  int32_t max_batch_tokens() const override { return options_.max_batch_tokens; }
  int32_t max_seqs() const override { return options_.max_seqs; }
  int32_t max_sampled_rows() const override {
    return std::max(options_.max_sampled_rows, options_.max_seqs);
  }
  int32_t max_context_tokens() const override { return options_.max_context_tokens; }
  std::vector<std::shared_ptr<const model::PreparedLora>> lora_adapters() const override {
    return created_adapters_;
  }
  // A prepared adapter with the name only: each preparation is a load of its own.
  absl::StatusOr<std::shared_ptr<const model::PreparedLora>> PrepareLoraAdapter(
      const model::LoraAdapter& adapter) const override;
  absl::Status SetLoraAdapter(int32_t slot,
                              const std::shared_ptr<const model::PreparedLora>& adapter) override;
  // The load slot `slot` holds (0: none): what LogitsAfter's `load` takes.
  int32_t LoadIn(int32_t slot) const { return slot_loads_.at(static_cast<size_t>(slot)); }

  // Picks each row's token with the CPU backend's code (kernels::cpu::PenalizeRow, SampleRow).
  absl::StatusOr<model::SampledPass> ForwardSampled(std::span<const model::SequenceChunk> chunks,
                                                    const model::StepSampling& step) override;
  int64_t max_penalty_entries() const override { return options_.max_penalty_entries; }
  void CopyBlocks(std::span<const kvcache::BlockCopy> copies) override;

  // Runs the pass and returns every sampled row's logits ([num_sampled, vocab]), valid until
  // the next pass: what ForwardSampled samples from.
  absl::StatusOr<std::span<const float>> Forward(std::span<const model::SequenceChunk> chunks);

  // The logits row a pass produces after `history` under adapter load `load` (0: none).
  std::vector<float> LogitsAfter(std::span<const int32_t> history, int32_t load = 0) const;

  std::vector<FakeStep> Steps() const;
  int64_t num_copies() const;

 private:
  std::vector<float> logits_;                   // the last pass's rows
  std::vector<float> asked_logits_;             // the rows ForwardSampled was asked for
  std::vector<int32_t> ids_;                    // the last ForwardSampled's tokens
  std::vector<kernels::RowLogprobs> logprobs_;  // and its logprobs
  std::vector<float> hidden_;                   // and its hidden rows
  // KV slot of `position` under `block_table`.
  size_t Slot(std::span<const int32_t> block_table, int32_t position) const;
  absl::Status Validate(std::span<const model::SequenceChunk> chunks) const;
  absl::Status ReadHistory(const model::SequenceChunk& chunk, std::vector<int32_t>* history) const;

  const FakeModelRunnerOptions options_;
  // The adapter load `chunk` runs under (0: none).
  int32_t LoadOf(const model::SequenceChunk& chunk) const;
  // `adapter`'s load number (0 for null), numbering it when first seen.
  int32_t LoadNumber(const std::shared_ptr<const model::PreparedLora>& adapter);

  // Per KV slot: token id + vocab_size * the adapter load that wrote it; -1 = never written.
  std::vector<int32_t> slots_;
  std::vector<int32_t> host_slots_;  // the host tier, laid out as slots_
  std::vector<int32_t> slot_loads_;  // per LoRA slot: the load it holds, 0 when empty
  std::vector<std::shared_ptr<const model::PreparedLora>> created_adapters_;
  // Every adapter object written, kept alive so that no other takes its address; its index
  // + 1 is its load.
  std::vector<std::shared_ptr<const model::PreparedLora>> loads_;
  mutable std::mutex mu_;
  std::vector<FakeStep> steps_;
  int32_t num_pending_copies_ = 0;
  int64_t num_copies_ = 0;
};

}  // namespace ringserve::engine

#endif  // RINGSERVE_WORKER_ENGINE_FAKE_MODEL_RUNNER_H_
