// Creating a LlamaModel: the weights uploaded (or made) on the backend, the limits checked,
// the attention scratch reserved, the KV pool and the workspace allocated, so that the
// forward pass (llama_forward.cc) never allocates.
#include "worker/model/llama_model.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kernels/backend.h"
#include "worker/model/batch_metadata.h"
#include "worker/model/llama_model_state.h"
#include "worker/model/weight_source.h"
#include "worker/model/weight_upload.h"

namespace ringserve::model {

LlamaModel::LlamaModel(const ModelConfig& config, kernels::Backend* backend,
                       const ModelOptions& options)
    : config_(config), backend_(backend), options_(options) {}

LlamaModel::~LlamaModel() = default;

std::vector<float> RopeInverseFrequencies(const ModelConfig& config) {
  const int rotary_dim = config.rotary_dim > 0 ? config.rotary_dim : config.head_dim;
  const std::vector<double> scaled =
      ScaledInverseFrequencies(config.rope_scaling, config.rope_theta, rotary_dim);
  std::vector<float> inv_freq(scaled.size());
  for (size_t i = 0; i < scaled.size(); ++i) {
    double f = scaled[i];
    if (i < config.rope_freq_divisors.size()) f /= config.rope_freq_divisors[i];
    inv_freq[i] = static_cast<float>(f);
  }
  return inv_freq;
}

float AttentionScale(const ModelConfig& config) {
  const double factor = RopeAttentionFactor(config.rope_scaling);
  return static_cast<float>(factor * factor / std::sqrt(static_cast<double>(config.head_dim)));
}

absl::StatusOr<std::unique_ptr<LlamaModel>> LlamaModel::Create(const Checkpoint& checkpoint,
                                                               kernels::Backend* backend,
                                                               const ModelOptions& options) {
  auto model = std::unique_ptr<LlamaModel>(new LlamaModel(checkpoint.config, backend, options));
  RS_RETURN_IF_ERROR(model->config_.Validate());
  RS_RETURN_IF_ERROR(model->ResolveKvDtype());
  CheckpointWeightSource source(checkpoint, backend->TakesCompactWeights());
  RS_RETURN_IF_ERROR(model->UploadWeights(source));
  RS_RETURN_IF_ERROR(model->UploadLoraAdapters());
  RS_RETURN_IF_ERROR(model->Init());
  return model;
}

absl::StatusOr<std::unique_ptr<LlamaModel>> LlamaModel::CreateWithRandomWeights(
    const ModelConfig& config, uint64_t seed, kernels::Backend* backend,
    const ModelOptions& options) {
  auto model = std::unique_ptr<LlamaModel>(new LlamaModel(config, backend, options));
  RS_RETURN_IF_ERROR(model->config_.Validate());
  RS_RETURN_IF_ERROR(model->ResolveKvDtype());
  RandomWeightSource source(model->config_, seed);
  RS_RETURN_IF_ERROR(model->UploadWeights(source));
  RS_RETURN_IF_ERROR(model->UploadLoraAdapters());
  RS_RETURN_IF_ERROR(model->Init());
  return model;
}

// Before the weights upload, so that a cache type the backend cannot keep fails at once.
absl::Status LlamaModel::ResolveKvDtype() {
  const kernels::DType dtype = options_.kv_dtype.value_or(backend_->activation_dtype());
  if (!backend_->SupportsKvDtype(dtype)) {
    return absl::InvalidArgumentError(
        absl::StrCat("the ", std::string(backend_->name()), " backend cannot keep the KV cache in ",
                     std::string(kernels::DTypeName(dtype)), " (it computes in ",
                     std::string(kernels::DTypeName(backend_->activation_dtype())), ")"));
  }
  options_.kv_dtype = dtype;
  return absl::OkStatus();
}

absl::Status LlamaModel::Init() {
  const ModelConfig& c = config_;
  if (options_.block_size <= 0) {
    return absl::InvalidArgumentError("model options: block_size must be positive");
  }
  if (options_.max_blocks_per_seq <= 0) {
    // In int64: a block size near INT_MAX would overflow the sum.
    options_.max_blocks_per_seq = static_cast<int>(
        (static_cast<int64_t>(c.max_seq_len) + options_.block_size - 1) / options_.block_size);
  }
  if (options_.max_batch_tokens <= 0 || options_.max_seqs <= 0) {
    return absl::InvalidArgumentError(
        "model options: max_batch_tokens and max_seqs must be positive");
  }
  // Every pass may sample one row a sequence (padded decode buckets included).
  options_.max_sampled_rows = std::max(options_.max_sampled_rows, options_.max_seqs);
  // Before a pool sized from free memory, so that it leaves room for the scratch; such a
  // pool cannot cap the context the scratch is reserved for (LongestContext).
  RS_RETURN_IF_ERROR(ReserveAttention());
  // A KV slot (block * block_size + offset) is an int32 in a pass's metadata and the kernels:
  // a larger pool (a tiny model on a large GPU) would wrap slots to negative, which the
  // kernels take for padding and silently write no K/V for.
  const int max_kv_blocks = std::numeric_limits<int32_t>::max() / options_.block_size;
  if (options_.num_kv_blocks <= 0 && options_.size_kv_pool) {
    RS_ASSIGN_OR_RETURN(const int blocks, options_.size_kv_pool(KvStorage::BytesPerBlock(
                                              c, options_.block_size, *options_.kv_dtype)));
    options_.num_kv_blocks = std::min(blocks, max_kv_blocks);
  }
  if (options_.num_kv_blocks <= 0 || options_.num_kv_blocks > max_kv_blocks) {
    return absl::InvalidArgumentError(absl::StrCat("model options: num_kv_blocks must be in [1, ",
                                                   max_kv_blocks, "] (int32 KV slots), got ",
                                                   options_.num_kv_blocks));
  }
  RS_RETURN_IF_ERROR(CheckFitsMemory());
  max_context_len_ = LongestContext();
  const std::vector<float> inv_freq = RopeInverseFrequencies(c);
  attention_scale_ = AttentionScale(c);
  RS_ASSIGN_OR_RETURN(inv_freq_, backend_->Allocate(inv_freq.size() * sizeof(float)));
  backend_->CopyToDevice(inv_freq_.data(), inv_freq.data(), inv_freq.size() * sizeof(float));
  RS_ASSIGN_OR_RETURN(kv_, KvStorage::Create(c, backend_, *options_.kv_dtype,
                                             options_.num_kv_blocks, options_.block_size));
  RS_RETURN_IF_ERROR(AllocateWorkspace());
  if (backend_->can_capture_graphs()) {
    // A bucket is a batch of one-token sequences: at most max_seqs, and max_batch_tokens.
    decode_graphs_ = std::make_unique<DecodeGraphs>(
        backend_, std::min(options_.max_seqs, options_.max_batch_tokens));
  }
  return absl::OkStatus();
}

// On a device that backs memory lazily the pool's allocation succeeds at any size and the
// process is killed once the pool fills; refuse at start a pool that, with the weights
// already uploaded, can never be backed.
absl::Status LlamaModel::CheckFitsMemory(size_t extra_bytes, std::string_view extra) const {
  const size_t limit = backend_->LazyMemoryLimitBytes();
  if (limit == 0) return absl::OkStatus();
  const size_t kv_bytes =
      KvStorage::BytesPerBlock(config_, options_.block_size, *options_.kv_dtype) *
      static_cast<size_t>(options_.num_kv_blocks);
  if (kv_bytes <= limit && weight_bytes_ <= limit - kv_bytes &&
      extra_bytes <= limit - kv_bytes - weight_bytes_) {
    return absl::OkStatus();
  }
  return absl::ResourceExhaustedError(absl::StrCat(
      "the KV pool (", options_.num_kv_blocks, " blocks of ", options_.block_size, " tokens, ",
      kv_bytes >> 20, " MiB) and the weights (", weight_bytes_ >> 20, " MiB)",
      extra.empty() ? ""
                    : absl::StrCat(" with ", std::string(extra), " (", extra_bytes >> 20, " MiB)"),
      " need more than the ", limit >> 20,
      " MiB this process may ever use (physical memory, "
      "or its cgroup's limit; ",
      std::string(backend_->name()), " backend); make ",
      extra.empty() ? std::string("the pool") : std::string(extra), " smaller"));
}

// Positions past a block table's length or the pool's capacity have nowhere to live.
int LlamaModel::LongestContext() const {
  int64_t tokens =
      std::min(static_cast<int64_t>(config_.max_seq_len),
               static_cast<int64_t>(options_.max_blocks_per_seq) * options_.block_size);
  if (options_.num_kv_blocks > 0) {
    tokens = std::min(tokens, static_cast<int64_t>(options_.num_kv_blocks) * options_.block_size);
  }
  return static_cast<int>(tokens);
}

// Every pass ValidateBatch accepts fits these limits, padded decode buckets too (at most
// min(max_seqs, max_batch_tokens) one-token sequences).
absl::Status LlamaModel::ReserveAttention() {
  const ModelConfig& c = config_;
  return backend_->ReserveAttention({.max_tokens = options_.max_batch_tokens,
                                     .max_seqs = options_.max_seqs,
                                     .max_context_len = LongestContext(),
                                     .num_q_heads = c.num_heads,
                                     .num_kv_heads = c.num_kv_heads,
                                     .head_dim = c.head_dim});
}

absl::Status LlamaModel::AllocateWorkspace() {
  const ModelConfig& c = config_;
  ws_ = std::make_unique<Workspace>();
  Workspace& w = *ws_;
  w.dtype = backend_->activation_dtype();
  w.dim = c.dim;
  w.q_cols = static_cast<int64_t>(c.num_heads) * c.head_dim;
  w.qkv_cols = w.q_cols + 2LL * c.num_kv_heads * c.head_dim;
  w.hidden = c.hidden_dim;
  w.vocab = c.vocab_size;
  const int64_t t = options_.max_batch_tokens;
  const int64_t s = options_.max_seqs;
  const int64_t rows = options_.max_sampled_rows;
  // The Workspace's accessors say which buffers are f32 (Wide) and which are w.dtype (Make).
  auto alloc = [&](kernels::DeviceBuffer* b, kernels::DType dtype,
                   int64_t elements) -> absl::Status {
    RS_ASSIGN_OR_RETURN(*b, backend_->Allocate(kernels::DTypeBytes(dtype, elements)));
    return absl::OkStatus();
  };
  constexpr kernels::DType kF32 = kernels::DType::kF32;
  RS_RETURN_IF_ERROR(alloc(&w.residual, kF32, t * w.dim));
  RS_RETURN_IF_ERROR(alloc(&w.normed, w.dtype, t * w.dim));
  RS_RETURN_IF_ERROR(alloc(&w.qkv, kF32, t * w.qkv_cols));
  RS_RETURN_IF_ERROR(alloc(&w.attn, w.dtype, t * w.q_cols));
  RS_RETURN_IF_ERROR(alloc(&w.delta, kF32, t * w.dim));
  RS_RETURN_IF_ERROR(alloc(&w.gate_up, w.dtype, t * 2 * w.hidden));
  RS_RETURN_IF_ERROR(alloc(&w.act, w.dtype, t * w.hidden));
  RS_RETURN_IF_ERROR(alloc(&w.sampled, w.dtype, rows * w.dim));
  RS_RETURN_IF_ERROR(alloc(&w.logits, kF32, rows * w.vocab));
  int max_lora_rank = 0;  // of the LoRA slots' stacks (llama_lora.cc)
  for (const LayerWeights& layer : layers_) {
    for (const LayerWeights::Lora& lora : layer.lora) {
      max_lora_rank = std::max(max_lora_rank, lora.stack.rank);
    }
  }
  if (max_lora_rank > 0) RS_RETURN_IF_ERROR(alloc(&w.lora_scratch, kF32, t * max_lora_rank));
  const int64_t meta_ints = MetaLayout(t, s, rows, options_.max_blocks_per_seq).size;
  RS_ASSIGN_OR_RETURN(host_meta_, backend_->AllocateHost(meta_ints * sizeof(int32_t)));
  RS_ASSIGN_OR_RETURN(w.meta, backend_->Allocate(meta_ints * sizeof(int32_t)));
  RS_ASSIGN_OR_RETURN(host_logits_, backend_->AllocateHost(w.logits.bytes()));
  RS_ASSIGN_OR_RETURN(w.ids, backend_->Allocate(rows * sizeof(int32_t)));
  RS_ASSIGN_OR_RETURN(host_ids_, backend_->AllocateHost(rows * sizeof(int32_t)));
  RS_ASSIGN_OR_RETURN(host_scored_ids_, backend_->AllocateHost(rows * sizeof(int32_t)));
  RS_ASSIGN_OR_RETURN(w.sampling, backend_->Allocate(rows * sizeof(kernels::RowSampling)));
  RS_ASSIGN_OR_RETURN(host_sampling_, backend_->AllocateHost(rows * sizeof(kernels::RowSampling)));
  const size_t penalty_bytes = max_penalty_entries() * sizeof(kernels::PenaltyEntry);
  RS_ASSIGN_OR_RETURN(w.penalties, backend_->Allocate(penalty_bytes));
  RS_ASSIGN_OR_RETURN(host_penalties_, backend_->AllocateHost(penalty_bytes));
  RS_ASSIGN_OR_RETURN(w.logprob_rows, backend_->Allocate(rows * sizeof(int32_t)));
  RS_ASSIGN_OR_RETURN(host_logprob_rows_, backend_->AllocateHost(rows * sizeof(int32_t)));
  RS_ASSIGN_OR_RETURN(w.logprobs, backend_->Allocate(rows * sizeof(kernels::RowLogprobs)));
  RS_ASSIGN_OR_RETURN(host_logprobs_, backend_->AllocateHost(rows * sizeof(kernels::RowLogprobs)));
  RS_ASSIGN_OR_RETURN(host_hidden_raw_, backend_->AllocateHost(w.sampled.bytes()));
  RS_ASSIGN_OR_RETURN(host_hidden_,
                      backend_->AllocateHost(kernels::DTypeBytes(kF32, rows * w.dim)));
  return absl::OkStatus();
}

DecodeGraphStats LlamaModel::decode_graph_stats() const {
  return decode_graphs_ != nullptr ? decode_graphs_->stats() : DecodeGraphStats{};
}

absl::Status LlamaModel::UploadWeights(WeightSource& source) {
  const ModelConfig& c = config_;
  // Checked before the first allocation: the CPU backend's memory is backed only as the
  // weights are written, so a model too large for the machine would load part-way and then
  // be killed for memory, with nothing said.
  const size_t needed_bytes = source.BytesOn(*backend_).value_or(
      kernels::DTypeBytes(backend_->activation_dtype(), static_cast<size_t>(c.NumParameters())));
  if (const size_t free_bytes = backend_->FreeMemoryBytes();
      free_bytes > 0 && needed_bytes > free_bytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the model's weights need ", needed_bytes >> 20, " MiB (", c.NumParameters(),
                     " parameters) on ", std::string(backend_->name()), ", but it has ",
                     free_bytes >> 20, " MiB free"));
  }
  const int64_t q_dim = static_cast<int64_t>(c.num_heads) * c.head_dim;
  const int64_t kv_dim = static_cast<int64_t>(c.num_kv_heads) * c.head_dim;
  size_t* bytes = &weight_bytes_;
  RS_ASSIGN_OR_RETURN(token_embedding_, UploadMatrix(source, backend_, "token_embd.weight",
                                                     {c.vocab_size, c.dim}, bytes));
  RS_ASSIGN_OR_RETURN(output_norm_,
                      UploadMatrix(source, backend_, "output_norm.weight", {c.dim}, bytes));
  if (source.Has("output.weight")) {
    RS_ASSIGN_OR_RETURN(
        output_, UploadMatrix(source, backend_, "output.weight", {c.vocab_size, c.dim}, bytes));
  }
  layers_.resize(c.num_layers);
  for (int l = 0; l < c.num_layers; ++l) {
    const std::string p = absl::StrCat("blk.", l, ".");
    LayerWeights& w = layers_[l];
    RS_ASSIGN_OR_RETURN(w.attn_norm,
                        UploadMatrix(source, backend_, p + "attn_norm.weight", {c.dim}, bytes));
    RS_ASSIGN_OR_RETURN(w.wqkv,
                        UploadStack(source, backend_,
                                    {p + "attn_q.weight", p + "attn_k.weight", p + "attn_v.weight"},
                                    {q_dim, kv_dim, kv_dim}, c.dim, bytes));
    if (c.attention_bias) {
      RS_ASSIGN_OR_RETURN(
          w.qkv_bias, UploadJoinedVectors(source, backend_,
                                          {p + "attn_q.bias", p + "attn_k.bias", p + "attn_v.bias"},
                                          {q_dim, kv_dim, kv_dim}, bytes));
    }
    if (c.qk_norm) {
      RS_ASSIGN_OR_RETURN(
          w.q_norm, UploadMatrix(source, backend_, p + "attn_q_norm.weight", {c.head_dim}, bytes));
      RS_ASSIGN_OR_RETURN(
          w.k_norm, UploadMatrix(source, backend_, p + "attn_k_norm.weight", {c.head_dim}, bytes));
    }
    RS_ASSIGN_OR_RETURN(
        w.wo, UploadMatrix(source, backend_, p + "attn_output.weight", {c.dim, q_dim}, bytes));
    RS_ASSIGN_OR_RETURN(w.ffn_norm,
                        UploadMatrix(source, backend_, p + "ffn_norm.weight", {c.dim}, bytes));
    RS_ASSIGN_OR_RETURN(w.w_gate_up,
                        UploadStack(source, backend_, {p + "ffn_gate.weight", p + "ffn_up.weight"},
                                    {c.hidden_dim, c.hidden_dim}, c.dim, bytes));
    RS_ASSIGN_OR_RETURN(w.w_down, UploadMatrix(source, backend_, p + "ffn_down.weight",
                                               {c.dim, c.hidden_dim}, bytes));
  }
  return absl::OkStatus();
}

}  // namespace ringserve::model
