// The Llama forward pass over a Backend: RMSNorm, RoPE (incl. Llama 3 scaling), grouped-query
// attention over paged KV, SwiGLU, tied or untied output.
//
// Owned by the generator (one thread); not thread-safe. Every device buffer a forward pass
// needs is allocated at creation, sized for ModelOptions::max_batch_tokens and max_seqs (the
// backend's attention scratch too: Backend::ReserveAttention), so a step never allocates. Decode
// passes run as captured graphs where the backend has them (decode_graphs.h).
#ifndef RINGSERVE_WORKER_MODEL_LLAMA_MODEL_H_
#define RINGSERVE_WORKER_MODEL_LLAMA_MODEL_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/backend.h"
#include "worker/model/checkpoint.h"
#include "worker/model/decode_graphs.h"
#include "worker/model/kv_storage.h"
#include "worker/model/lora_adapter.h"
#include "worker/model/model_config.h"
#include "worker/model/prepared_lora.h"

namespace ringserve::model {

class WeightSource;

// One sequence's share of a forward pass: its new tokens at consecutive positions starting
// at `start_position`, and the block table that covers positions [0, start_position +
// tokens.size()). KV of positions before start_position must already be in those blocks.
struct SequenceChunk {
  std::span<const int32_t> tokens;
  int32_t start_position = 0;
  std::span<const int32_t> block_table;
  bool sample = false;  // produce logits for the last token of this chunk
  // With sample: the chunk's last num_drafts tokens are draft tokens to verify (speculative
  // decoding), so the rows before the last one sample too: the last 1 + num_drafts rows, in
  // position order. < tokens.size().
  int32_t num_drafts = 0;
  // The LoRA adapter the chunk's rows run with: a slot of ModelOptions::lora_adapters, or -1
  // for the model's own weights.
  int32_t adapter = -1;
  // Rows that score the prompt (GenerateRequest.prompt_logprobs): the num_scored positions
  // just before the sampled ones (the chunk's last num_scored positions without sample) give
  // logits rows too, in position order, each scoring the known token after it.
  int32_t num_scored = 0;
};

// Whether `chunk`'s extra rows fit it: no drafts without sample, no drafts beside scored
// rows, and every row on one of its tokens.
inline bool DraftsFit(const SequenceChunk& chunk) {
  const int64_t rows = int64_t{chunk.num_scored} + (chunk.sample ? 1 + chunk.num_drafts : 0);
  return chunk.num_drafts >= 0 && chunk.num_scored >= 0 &&
         (chunk.num_drafts == 0 || (chunk.sample && chunk.num_scored == 0)) &&
         rows <= static_cast<int64_t>(chunk.tokens.size()) &&
         static_cast<size_t>(chunk.num_drafts) < chunk.tokens.size();
}

// The rows `chunk` samples (scored rows included: they run through the same head).
inline int32_t SampledRows(const SequenceChunk& chunk) {
  return chunk.num_scored + (chunk.sample ? 1 + chunk.num_drafts : 0);
}
// The rows a pass over `chunks` samples.
inline size_t SampledRows(std::span<const SequenceChunk> chunks) {
  size_t rows = 0;
  for (const SequenceChunk& c : chunks) rows += static_cast<size_t>(SampledRows(c));
  return rows;
}

// How a pass's sampled rows pick their tokens (LlamaModel::ForwardSampled).
struct StepSampling {
  std::span<const kernels::RowSampling> chains = {};      // one per sampled row, in chunk order
  std::span<const kernels::PenaltyEntry> penalties = {};  // the chains' penalty ranges index it
  std::span<const int32_t> logits_rows = {};   // sampled rows whose raw logits the host wants
  std::span<const int32_t> logprob_rows = {};  // sampled rows whose logprobs the host wants
  // Empty, or one per sampled row: >= 0 names the token a scored row scores (its logprobs'
  // chosen token, and its id in SampledPass::ids); -1 for a row that samples.
  std::span<const int32_t> scored_ids = {};
  // Sampled rows whose final hidden state (the output norm's, what the head multiplies) the
  // host wants: the embeddings of inputs that end on them.
  std::span<const int32_t> hidden_rows = {};
};

// INVALID_ARGUMENT unless `step` has one chain per sampled row, penalty ranges inside its
// list of at most max_penalty_entries, and logits and logprob rows among the sampled rows. (Every
// runner's ForwardSampled checks its input with it.)
absl::Status ValidateStepSampling(const StepSampling& step, size_t num_sampled,
                                  int64_t max_penalty_entries);

// What LlamaModel::ForwardSampled returns, in the model's host memory.
struct SampledPass {
  std::span<const int32_t> ids;   // each sampled row's token, in chunk order
  std::span<const float> logits;  // [logits_rows.size(), vocab]: the rows asked for, in order
  // One per logprob_rows entry, in order: under the raw logits, with the row's device pick as
  // the chosen token.
  std::span<const kernels::RowLogprobs> logprobs;
  // [hidden_rows.size(), dim] in f32: the rows asked for, in order.
  std::span<const float> hidden;
};

struct ModelOptions {
  int block_size = 16;
  int num_kv_blocks = 0;  // KV pool size in blocks; 0 = ask size_kv_pool
  // Chooses the pool size when num_kv_blocks is 0. Called once, after the weights are
  // uploaded (so free device memory no longer counts them), with the bytes one block
  // takes over all layers; returns the block count (> 0). The engine sizes the pool from
  // --kv-memory here (worker/engine/llama_runner.h).
  std::function<absl::StatusOr<int>(size_t bytes_per_block)> size_kv_pool;
  int max_batch_tokens = 2048;  // most tokens one forward pass may carry
  int max_seqs = 256;           // most sequences one forward pass may carry
  // Most rows one pass samples; 0 = max_seqs (one a sequence). Passes that verify draft
  // tokens sample 1 + num_drafts rows a sequence.
  int max_sampled_rows = 0;
  int max_blocks_per_seq = 0;  // 0 = enough for config.max_seq_len
  // Most penalty entries (penalised tokens over all rows) one pass takes; 0 = 4096 a
  // sequence. The engine runs rows beyond it on the host.
  int max_penalty_entries = 0;
  // Decode passes (one token per sequence) padded to a bucket and replayed as graphs on
  // backends that capture them (CUDA): one launch per step instead of one per op. Results
  // are the same bits either way; false runs every pass op by op (debugging, A/B timing).
  bool decode_graphs = true;
  // Element type of the KV cache; unset = the backend's activation dtype. Others only where
  // Backend::SupportsKvDtype accepts them (the CPU keeps f16 or bf16: half the memory).
  std::optional<kernels::DType> kv_dtype;
  // LoRA adapters served beside the model's own weights, each read for this model's config
  // (lora_adapter.h); a chunk names one by its slot, its index here (SequenceChunk::adapter).
  // All stay on the device; a pass adds each row's adapter to the projections it changes.
  // Creation prepares them (LlamaModel::lora_slots) and empties this list.
  std::vector<std::shared_ptr<const LoraAdapter>> lora_adapters;
  // > 0: this many slots (at least lora_adapters.size()), with room on every projection for
  // adapters of rank up to max_lora_rank (0: 16, or the largest given) loaded later
  // (LlamaModel::SetLoraAdapter). 0: the slots and projections of lora_adapters only.
  int max_loras = 0;
  int max_lora_rank = 0;
};

class LlamaModel {
 public:
  // Uploads the checkpoint's weights to `backend` (which must outlive the model).
  static absl::StatusOr<std::unique_ptr<LlamaModel>> Create(const Checkpoint& checkpoint,
                                                            kernels::Backend* backend,
                                                            const ModelOptions& options);
  // A model of `config` with deterministic random weights (benchmarks at real shapes).
  static absl::StatusOr<std::unique_ptr<LlamaModel>> CreateWithRandomWeights(
      const ModelConfig& config, uint64_t seed, kernels::Backend* backend,
      const ModelOptions& options);

  LlamaModel(const LlamaModel&) = delete;
  LlamaModel& operator=(const LlamaModel&) = delete;
  ~LlamaModel();

  const ModelConfig& config() const { return config_; }
  const ModelOptions& options() const { return options_; }
  kernels::Backend* backend() const { return backend_; }
  KvStorage& kv_storage() { return *kv_; }
  size_t weight_bytes() const { return weight_bytes_; }
  // RESOURCE_EXHAUSTED when the weights, the KV pool and `extra_bytes` more (`extra`, e.g. the
  // flag that asks for them; none when empty) exceed what a backend that backs memory lazily
  // can ever back, naming what to make smaller. OK on a backend that allocates eagerly.
  absl::Status CheckFitsMemory(size_t extra_bytes = 0, std::string_view extra = {}) const;
  // The longest context a sequence can reach: max_seq_len, capped by the KV pool
  // (num_kv_blocks * block_size) and a block table (max_blocks_per_seq * block_size).
  int max_context_len() const { return max_context_len_; }

  // Runs one pass over `chunks` and returns the logits of every sampled row (SampledRows), in
  // chunk order ([num_sampled, vocab_size]), in the model's own host buffer: valid until the
  // next Forward. The buffer is the backend's fastest to copy into (page-locked on a GPU),
  // so the logits come back at bus speed and are never copied again. INVALID_ARGUMENT when
  // the batch exceeds the options or a position or block id is out of range; nothing runs
  // then.
  absl::StatusOr<std::span<const float>> Forward(std::span<const SequenceChunk> chunks);
  // The same, copying the logits into `logits` (resized): for tests and tools.
  absl::Status Forward(std::span<const SequenceChunk> chunks, std::vector<float>* logits);
  // The same pass with the tokens picked on the device: the rows' penalties
  // (Backend::PenalizeRows), then their chains (Backend::SampleRows), then the logprobs of
  // the rows listed in step.logprob_rows (Backend::LogprobRows, on the raw logits). Returns
  // each sampled row's token, those logprobs, and the raw logits (before the penalties) of
  // the rows listed in step.logits_rows, so only those cross the bus. Valid until the next
  // pass.
  // INVALID_ARGUMENT, with nothing run, when there is not one chain per sampled row, a
  // listed row or a chain's penalty range is out of range, or the penalties exceed
  // max_penalty_entries().
  absl::StatusOr<SampledPass> ForwardSampled(std::span<const SequenceChunk> chunks,
                                             const StepSampling& step);
  // Most penalty entries one ForwardSampled takes (ModelOptions::max_penalty_entries).
  int64_t max_penalty_entries() const;

  // Encodes `adapter` for this model's LoRA slots. INVALID_ARGUMENT for an adapter of another
  // model, FAILED_PRECONDITION for one that changes a projection the model keeps no room for
  // or at a larger rank (ModelOptions::max_loras, max_lora_rank). Any thread: it reads only
  // what creation fixed.
  absl::StatusOr<std::shared_ptr<const PreparedLora>> PrepareLoraAdapter(
      const LoraAdapter& adapter) const;
  // Writes a prepared adapter into LoRA slot `slot` (null empties it), for the passes
  // enqueued after this call; captured decode graphs stay valid. Between passes only. Device
  // copies of its rows, and zeros over the rows the slot's previous adapter had beyond them.
  // INVALID_ARGUMENT for a slot out of range or an adapter prepared for another model; the
  // slot is unchanged then.
  absl::Status SetLoraAdapter(int slot, std::shared_ptr<const PreparedLora> adapter);
  // Each LoRA slot's adapter, null where one is empty; a chunk names a slot by its index.
  const std::vector<std::shared_ptr<const PreparedLora>>& lora_slots() const { return lora_slots_; }

  // How decode passes have run: graphs captured, replays (all zero without graphs).
  DecodeGraphStats decode_graph_stats() const;
  // Turns decode graphs on or off from the next pass (A/B timing); graphs already captured
  // are kept.
  void set_decode_graphs(bool enabled) { options_.decode_graphs = enabled; }

 private:
  struct LayerWeights;
  struct Workspace;
  struct PassBatch;

  LlamaModel(const ModelConfig& config, kernels::Backend* backend, const ModelOptions& options);
  absl::Status UploadWeights(WeightSource& source);
  // Allocates the LoRA slots (LayerWeights::lora) and writes options_.lora_adapters into
  // them (llama_lora.cc).
  absl::Status UploadLoraAdapters();
  // Sets options_.kv_dtype (the backend's activation dtype when unset); INVALID_ARGUMENT when
  // the backend cannot keep the cache in it.
  absl::Status ResolveKvDtype();
  absl::Status Init();
  // The longest context a sequence can reach with the options as they are (no pool cap
  // while num_kv_blocks is still to be sized).
  int LongestContext() const;
  // Backend::ReserveAttention for every pass the options allow.
  absl::Status ReserveAttention();
  absl::Status AllocateWorkspace();
  absl::Status ValidateBatch(std::span<const SequenceChunk> chunks) const;
  // The bucket a decode graph runs `chunks` in, or 0 to run them op by op.
  int DecodeBucket(std::span<const SequenceChunk> chunks) const;
  // Packs the batch's metadata into one host array and uploads it in one copy; with
  // padded_size > 0, as a batch of that many sequences of one token each (see
  // kernels::AttentionBatch on padding).
  PassBatch UploadBatch(std::span<const SequenceChunk> chunks, int padded_size);
  // Enqueues the whole pass (layers and output head), without waiting.
  void EnqueuePass(const PassBatch& pass);
  // Validates, uploads and enqueues a pass (replaying a decode graph where one fits);
  // returns how many rows sample.
  absl::StatusOr<int> EnqueueForward(std::span<const SequenceChunk> chunks);
  void RunLayer(int layer, const PassBatch& pass);
  // y += the LoRA adapters' terms of `target` for the rows that use one (no-op when no
  // adapter changes it).
  void AddLora(int layer, LoraTarget target, const kernels::Tensor& x, const kernels::Tensor& y,
               const PassBatch& pass);
  // Overwrites the scored rows' picks with the tokens they score (StepSampling::scored_ids),
  // so LogprobRows scores those tokens.
  void UploadScoredIds(std::span<const int32_t> scored_ids);
  // The final hidden states of `rows` (sampled rows of the last pass), in f32.
  std::span<const float> DownloadHidden(std::span<const int32_t> rows);
  // y = x times a stack's parts, their outputs side by side (LayerWeights).
  void MatMulStack(const kernels::Tensor& x, const std::vector<kernels::Weight>& stack,
                   const kernels::Tensor& y);

  ModelConfig config_;
  kernels::Backend* backend_;
  ModelOptions options_;
  std::vector<LayerWeights> layers_;
  kernels::Weight token_embedding_;
  kernels::Weight output_norm_;
  kernels::Weight output_;  // empty when tied to token_embedding_
  kernels::DeviceBuffer inv_freq_;
  float attention_scale_ = 0;  // AttentionScale(config_)
  std::unique_ptr<KvStorage> kv_;
  std::unique_ptr<Workspace> ws_;
  // Host side of the per-pass copies: batch metadata and sampling chains up, logits and
  // tokens down.
  kernels::HostBuffer host_meta_, host_sampling_, host_penalties_, host_logits_, host_ids_;
  kernels::HostBuffer host_logprob_rows_, host_logprobs_, host_scored_ids_;
  // Hidden rows (StepSampling::hidden_rows) as the activations hold them, then in f32.
  kernels::HostBuffer host_hidden_raw_, host_hidden_;
  std::unique_ptr<DecodeGraphs> decode_graphs_;  // null when the backend cannot capture
  size_t weight_bytes_ = 0;
  std::vector<std::shared_ptr<const PreparedLora>> lora_slots_;
  int max_context_len_ = 0;  // see max_context_len()
};

// Rotary inverse frequencies for `config` (rotary_dim / 2 values), its rope scaling and
// rope_freq_divisors applied.
std::vector<float> RopeInverseFrequencies(const ModelConfig& config);

// The softmax scale: 1 / sqrt(head_dim), times the square of the rope scaling's attention
// factor (yarn's), which multiplies every rotated q and k and so their products.
float AttentionScale(const ModelConfig& config);

}  // namespace ringserve::model

#endif  // RINGSERVE_WORKER_MODEL_LLAMA_MODEL_H_
