// LlamaModel's forward pass: checks a batch against the options, uploads its metadata,
// and enqueues the layers and the output head, op by op or as a replayed decode graph.
// Creation (weights, KV pool, workspace) is llama_model.cc.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kernels/backend.h"
#include "worker/model/batch_metadata.h"
#include "worker/model/llama_model.h"
#include "worker/model/llama_model_state.h"

namespace ringserve::model {

using kernels::Tensor;

// One pass's metadata in device memory.
struct LlamaModel::PassBatch {
  kernels::AttentionBatch attention;
  const int32_t* ids = nullptr;          // [attention.num_tokens]
  const int32_t* sample_rows = nullptr;  // [head_rows]: the sampled rows first, in chunk order
  const int32_t* lora_slots = nullptr;   // [attention.num_tokens]: each row's adapter or -1
  int head_rows = 0;    // rows through the output head: the sampled ones, or a whole bucket
  int num_sampled = 0;  // rows that sample (SampledRows)
};

absl::Status LlamaModel::ValidateBatch(std::span<const SequenceChunk> chunks) const {
  if (chunks.empty()) return absl::InvalidArgumentError("forward: empty batch");
  if (static_cast<int>(chunks.size()) > options_.max_seqs) {
    return absl::InvalidArgumentError(
        absl::StrCat("forward: ", chunks.size(), " sequences exceed max_seqs ", options_.max_seqs));
  }
  int64_t num_tokens = 0;
  for (size_t i = 0; i < chunks.size(); ++i) {
    const SequenceChunk& c = chunks[i];
    const int64_t end = static_cast<int64_t>(c.start_position) + c.tokens.size();
    if (c.tokens.empty() || c.start_position < 0 || end > max_context_len_) {
      return absl::InvalidArgumentError(
          absl::StrCat("forward: sequence ", i, " covers positions [", c.start_position, ", ", end,
                       ") outside the context of ", max_context_len_));
    }
    const int64_t blocks_needed = (end + options_.block_size - 1) / options_.block_size;
    if (static_cast<int64_t>(c.block_table.size()) < blocks_needed) {
      return absl::InvalidArgumentError(
          absl::StrCat("forward: sequence ", i, " has ", c.block_table.size(),
                       " blocks, needs at least ", blocks_needed, " for positions up to ", end));
    }
    if (static_cast<int64_t>(c.block_table.size()) > options_.max_blocks_per_seq) {
      return absl::InvalidArgumentError(
          absl::StrCat("forward: sequence ", i, " has ", c.block_table.size(),
                       " blocks, more than ", "max_blocks_per_seq ", options_.max_blocks_per_seq));
    }
    for (int32_t block : c.block_table) {
      if (block < 0 || block >= options_.num_kv_blocks) {
        return absl::InvalidArgumentError(
            absl::StrCat("forward: sequence ", i, " references KV block ", block));
      }
    }
    for (int32_t token : c.tokens) {
      if (token < 0 || token >= config_.vocab_size) {
        return absl::InvalidArgumentError(absl::StrCat(
            "forward: token id ", token, " outside the vocabulary of ", config_.vocab_size));
      }
    }
    if (c.adapter < -1 || c.adapter >= static_cast<int32_t>(lora_slots_.size())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "forward: sequence ", i, " names LoRA adapter ", c.adapter, " of ", lora_slots_.size()));
    }
    if (!DraftsFit(c)) {
      return absl::InvalidArgumentError(
          absl::StrCat("forward: sequence ", i, " has ", c.num_drafts, " drafts and ", c.num_scored,
                       " scored rows among ", c.tokens.size(), " tokens (sample: ", c.sample, ")"));
    }
    num_tokens += static_cast<int64_t>(c.tokens.size());
  }
  if (num_tokens > options_.max_batch_tokens) {
    return absl::InvalidArgumentError(absl::StrCat(
        "forward: ", num_tokens, " tokens exceed max_batch_tokens ", options_.max_batch_tokens));
  }
  if (const size_t rows = SampledRows(chunks);
      rows > static_cast<size_t>(options_.max_sampled_rows)) {
    return absl::InvalidArgumentError(
        absl::StrCat("forward: ", rows, " sampled rows exceed ", options_.max_sampled_rows));
  }
  return absl::OkStatus();
}

int LlamaModel::DecodeBucket(std::span<const SequenceChunk> chunks) const {
  if (decode_graphs_ == nullptr || !options_.decode_graphs) return 0;
  for (const SequenceChunk& c : chunks) {
    if (c.tokens.size() != 1) return 0;
  }
  return decode_graphs_->BucketFor(static_cast<int>(chunks.size()));
}

LlamaModel::PassBatch LlamaModel::UploadBatch(std::span<const SequenceChunk> chunks,
                                              int padded_size) {
  const PackedBatch packed = PackBatch(chunks, padded_size, options_.block_size,
                                       options_.max_blocks_per_seq, host_meta_.as<int32_t>());
  const MetaLayout& layout = packed.layout;
  backend_->CopyToDevice(ws_->meta.data(), host_meta_.data(), layout.size * sizeof(int32_t));
  const auto* dev = ws_->meta.as<int32_t>();
  PassBatch pass;
  kernels::AttentionBatch& batch = pass.attention;
  batch.num_tokens = packed.num_tokens;
  batch.num_seqs = packed.num_seqs;
  batch.max_blocks_per_seq = options_.max_blocks_per_seq;
  // A graph's launches must fit every pass it replays: size them for the longest context a
  // sequence can reach (not max_seq_len, which may be far beyond what the KV pool holds).
  batch.max_context_len = padded_size > 0 ? max_context_len_ : packed.max_context_len;
  batch.positions = dev + layout.positions;
  batch.slots = dev + layout.slots;
  batch.token_seq = dev + layout.token_seq;
  batch.query_start = dev + layout.query_start;
  batch.context_lens = dev + layout.context_lens;
  batch.block_tables = dev + layout.block_tables;
  pass.ids = dev + layout.ids;
  pass.sample_rows = dev + layout.sample_rows;
  pass.lora_slots = dev + layout.lora_slots;
  pass.head_rows = packed.head_rows;
  pass.num_sampled = packed.num_sampled;
  return pass;
}

absl::StatusOr<int> LlamaModel::EnqueueForward(std::span<const SequenceChunk> chunks) {
  RS_RETURN_IF_ERROR(ValidateBatch(chunks));
  const int bucket = DecodeBucket(chunks);
  const PassBatch pass = UploadBatch(chunks, bucket);
  if (bucket > 0) {
    decode_graphs_->Run(bucket, [&] { EnqueuePass(pass); });
  } else {
    EnqueuePass(pass);
  }
  return pass.num_sampled;
}

absl::StatusOr<std::span<const float>> LlamaModel::Forward(std::span<const SequenceChunk> chunks) {
  RS_ASSIGN_OR_RETURN(const int num_sampled, EnqueueForward(chunks));
  const std::span<const float> logits(host_logits_.as<const float>(),
                                      static_cast<size_t>(num_sampled) * config_.vocab_size);
  // Both wait for the pass, so the next one may overwrite host_meta_.
  if (logits.empty()) {
    backend_->Synchronize();
  } else {
    backend_->CopyToHost(host_logits_.data(), ws_->logits.data(), logits.size_bytes());
  }
  return logits;
}

int64_t LlamaModel::max_penalty_entries() const {
  return options_.max_penalty_entries > 0 ? options_.max_penalty_entries
                                          : int64_t{4096} * options_.max_sampled_rows;
}

absl::Status ValidateStepSampling(const StepSampling& step, size_t num_sampled,
                                  int64_t max_penalty_entries) {
  if (step.chains.size() != num_sampled) {
    return absl::InvalidArgumentError(absl::StrCat(
        "forward: ", step.chains.size(), " sampling chains for ", num_sampled, " sampled rows"));
  }
  if (static_cast<int64_t>(step.penalties.size()) > max_penalty_entries) {
    return absl::InvalidArgumentError(absl::StrCat(
        "forward: ", step.penalties.size(), " penalty entries exceed ", max_penalty_entries));
  }
  for (const kernels::RowSampling& chain : step.chains) {
    if (chain.penalty_begin < 0 || chain.penalty_begin > chain.penalty_end ||
        static_cast<size_t>(chain.penalty_end) > step.penalties.size()) {
      return absl::InvalidArgumentError(absl::StrCat("forward: penalty range [",
                                                     chain.penalty_begin, ", ", chain.penalty_end,
                                                     ") of ", step.penalties.size(), " entries"));
    }
  }
  for (const auto& [rows, what] :
       {std::pair{step.logits_rows, "logits"}, std::pair{step.logprob_rows, "logprob"},
        std::pair{step.hidden_rows, "hidden"}}) {
    if (rows.size() > num_sampled) {
      return absl::InvalidArgumentError(
          absl::StrCat("forward: more ", what, " rows than sampled rows"));
    }
    for (const int32_t row : rows) {
      if (row < 0 || static_cast<size_t>(row) >= num_sampled) {
        return absl::InvalidArgumentError(
            absl::StrCat("forward: ", what, " row ", row, " of ", num_sampled, " sampled rows"));
      }
    }
  }
  if (!step.scored_ids.empty()) {
    if (step.scored_ids.size() != num_sampled) {
      return absl::InvalidArgumentError(absl::StrCat(
          "forward: ", step.scored_ids.size(), " scored ids for ", num_sampled, " sampled rows"));
    }
    for (const int32_t id : step.scored_ids) {
      if (id < -1) return absl::InvalidArgumentError(absl::StrCat("forward: scored id ", id));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<SampledPass> LlamaModel::ForwardSampled(std::span<const SequenceChunk> chunks,
                                                       const StepSampling& step) {
  const size_t num_sampled = SampledRows(chunks);
  RS_RETURN_IF_ERROR(ValidateStepSampling(step, num_sampled, max_penalty_entries()));
  RS_RETURN_IF_ERROR(EnqueueForward(chunks).status());
  SampledPass out;
  if (num_sampled == 0) {
    backend_->Synchronize();  // the next pass may overwrite host_meta_
    return out;
  }
  const auto vocab = static_cast<size_t>(config_.vocab_size);
  // The raw rows first: the penalties change the logits in place.
  float* device_logits = ws_->logits.as<float>();
  float* host_logits = host_logits_.as<float>();
  for (size_t i = 0; i < step.logits_rows.size(); ++i) {
    backend_->CopyToHost(host_logits + i * vocab, device_logits + step.logits_rows[i] * vocab,
                         vocab * sizeof(float));
  }
  std::copy(step.chains.begin(), step.chains.end(), host_sampling_.as<kernels::RowSampling>());
  backend_->CopyToDevice(ws_->sampling.data(), host_sampling_.data(), step.chains.size_bytes());
  const kernels::Tensor logits = ws_->Logits(static_cast<int>(num_sampled));
  const auto* chains = ws_->sampling.as<const kernels::RowSampling>();
  auto* penalties = ws_->penalties.as<kernels::PenaltyEntry>();
  if (!step.penalties.empty()) {
    std::copy(step.penalties.begin(), step.penalties.end(),
              host_penalties_.as<kernels::PenaltyEntry>());
    backend_->CopyToDevice(penalties, host_penalties_.data(), step.penalties.size_bytes());
    backend_->PenalizeRows(logits, chains, penalties);
  }
  backend_->SampleRows(logits, chains, ws_->ids.as<int32_t>());
  UploadScoredIds(step.scored_ids);
  const size_t num_logprobs = step.logprob_rows.size();
  if (num_logprobs > 0) {
    if (!step.penalties.empty()) backend_->UnpenalizeRows(logits, chains, penalties);
    std::copy(step.logprob_rows.begin(), step.logprob_rows.end(), host_logprob_rows_.as<int32_t>());
    backend_->CopyToDevice(ws_->logprob_rows.data(), host_logprob_rows_.data(),
                           step.logprob_rows.size_bytes());
    backend_->LogprobRows(logits, ws_->logprob_rows.as<const int32_t>(),
                          static_cast<int32_t>(num_logprobs), ws_->ids.as<const int32_t>(),
                          ws_->logprobs.as<kernels::RowLogprobs>());
    backend_->CopyToHost(host_logprobs_.data(), ws_->logprobs.data(),
                         num_logprobs * sizeof(kernels::RowLogprobs));
  }
  backend_->CopyToHost(host_ids_.data(), ws_->ids.data(), num_sampled * sizeof(int32_t));
  out.ids = {host_ids_.as<const int32_t>(), num_sampled};
  out.logits = {host_logits, step.logits_rows.size() * vocab};
  out.logprobs = {host_logprobs_.as<const kernels::RowLogprobs>(), num_logprobs};
  out.hidden = DownloadHidden(step.hidden_rows);
  return out;
}

std::span<const float> LlamaModel::DownloadHidden(std::span<const int32_t> rows) {
  const auto dim = static_cast<size_t>(config_.dim);
  const size_t row_bytes = kernels::DTypeBytes(ws_->dtype, dim);
  auto* raw = static_cast<char*>(host_hidden_raw_.data());
  for (size_t i = 0; i < rows.size(); ++i) {
    backend_->CopyToHost(raw + i * row_bytes,
                         static_cast<const char*>(ws_->sampled.data()) + rows[i] * row_bytes,
                         row_bytes);
  }
  float* hidden = host_hidden_.as<float>();
  kernels::ConvertToFloat(ws_->dtype, raw, rows.size() * dim, hidden);
  return {hidden, rows.size() * dim};
}

void LlamaModel::UploadScoredIds(std::span<const int32_t> scored_ids) {
  auto* staged = host_scored_ids_.as<int32_t>();
  std::copy(scored_ids.begin(), scored_ids.end(), staged);
  auto* device_ids = ws_->ids.as<int32_t>();
  // Scored rows come in runs (a chunk's prompt positions): one copy a run.
  for (size_t begin = 0; begin < scored_ids.size();) {
    if (scored_ids[begin] < 0) {
      ++begin;
      continue;
    }
    size_t end = begin + 1;
    while (end < scored_ids.size() && scored_ids[end] >= 0) ++end;
    backend_->CopyToDevice(device_ids + begin, staged + begin, (end - begin) * sizeof(int32_t));
    begin = end;
  }
}

absl::Status LlamaModel::Forward(std::span<const SequenceChunk> chunks,
                                 std::vector<float>* logits) {
  RS_ASSIGN_OR_RETURN(const std::span<const float> rows, Forward(chunks));
  logits->assign(rows.begin(), rows.end());
  return absl::OkStatus();
}

void LlamaModel::EnqueuePass(const PassBatch& pass) {
  const int n = pass.attention.num_tokens;
  const Workspace& w = *ws_;
  backend_->EmbeddingGather(token_embedding_, pass.ids, w.Residual(n));
  backend_->RmsNorm(w.Residual(n), layers_[0].attn_norm, config_.rms_eps, w.Normed(n));
  for (int layer = 0; layer < config_.num_layers; ++layer) RunLayer(layer, pass);
  if (pass.head_rows == 0) return;
  // The last layer left its FFN output in delta; only sampled rows go through the head.
  backend_->AddRmsNorm(w.Residual(n), w.Delta(n), output_norm_, config_.rms_eps, w.Normed(n));
  backend_->GatherRows(w.Normed(n), pass.sample_rows, w.Sampled(pass.head_rows));
  const kernels::Weight& head = output_.rows > 0 ? output_ : token_embedding_;
  backend_->MatMul(w.Sampled(pass.head_rows), head, w.Logits(pass.head_rows));
}

void LlamaModel::MatMulStack(const Tensor& x, const std::vector<kernels::Weight>& stack,
                             const Tensor& y) {
  int64_t column = 0;
  for (const kernels::Weight& part : stack) {
    backend_->MatMul(x, part, y.Columns(column, part.rows));
    column += part.rows;
  }
}

void LlamaModel::AddLora(int layer, LoraTarget target, const Tensor& x, const Tensor& y,
                         const PassBatch& pass) {
  const kernels::LoraStack& stack = layers_[layer].lora[static_cast<size_t>(target)].stack;
  if (stack.rank == 0) return;
  backend_->AddLora(x, stack, pass.lora_slots, ws_->lora_scratch.as<float>(), y);
}

// Expects the layer's attention input already normalised in `normed`; leaves the FFN output
// in `delta` and, for all but the last layer, the next layer's normalised input in `normed`.
void LlamaModel::RunLayer(int layer, const PassBatch& pass) {
  const int n = pass.attention.num_tokens;
  const kernels::AttentionBatch& batch = pass.attention;
  const Workspace& w = *ws_;
  const LayerWeights& lw = layers_[layer];
  const ModelConfig& c = config_;
  const Tensor qkv = w.Qkv(n);
  MatMulStack(w.Normed(n), lw.wqkv, qkv);
  const int64_t q_cols = int64_t{c.num_heads} * c.head_dim;
  const int64_t kv_cols = int64_t{c.num_kv_heads} * c.head_dim;
  AddLora(layer, LoraTarget::kQ, w.Normed(n), qkv.Columns(0, q_cols), pass);
  AddLora(layer, LoraTarget::kK, w.Normed(n), qkv.Columns(q_cols, kv_cols), pass);
  AddLora(layer, LoraTarget::kV, w.Normed(n), qkv.Columns(q_cols + kv_cols, kv_cols), pass);
  if (c.attention_bias) backend_->AddBias(qkv, lw.qkv_bias);
  if (c.qk_norm) {
    backend_->HeadRmsNorm(qkv.Columns(0, q_cols), c.head_dim, lw.q_norm, c.rms_eps);
    backend_->HeadRmsNorm(qkv.Columns(q_cols, kv_cols), c.head_dim, lw.k_norm, c.rms_eps);
  }

  const kernels::AttentionShape shape{c.num_heads, c.num_kv_heads, c.head_dim, attention_scale_,
                                      c.LayerWindow(layer)};
  const kernels::RopeParams rope{inv_freq_.as<float>(),
                                 c.rotary_dim > 0 ? c.rotary_dim : c.head_dim, c.rope_layout};
  const kernels::KvLayerView kv = kv_->Layer(layer);
  backend_->RopeAndWriteKv(qkv, shape, rope, batch, kv);
  kernels::AttentionBatch layer_batch = batch;
  layer_batch.plan_reused = layer > 0;  // the same sequences as layer 0's
  backend_->PagedAttention(qkv, shape, layer_batch, kv, w.Attn(n));
  backend_->MatMul(w.Attn(n), lw.wo, w.Delta(n));
  AddLora(layer, LoraTarget::kO, w.Attn(n), w.Delta(n), pass);

  backend_->AddRmsNorm(w.Residual(n), w.Delta(n), lw.ffn_norm, c.rms_eps, w.Normed(n));
  const Tensor gate_up = w.GateUp(n);
  MatMulStack(w.Normed(n), lw.w_gate_up, gate_up);
  AddLora(layer, LoraTarget::kGate, w.Normed(n), gate_up.Columns(0, c.hidden_dim), pass);
  AddLora(layer, LoraTarget::kUp, w.Normed(n), gate_up.Columns(c.hidden_dim, c.hidden_dim), pass);
  backend_->SiluMul(gate_up, w.Act(n));
  backend_->MatMul(w.Act(n), lw.w_down, w.Delta(n));
  AddLora(layer, LoraTarget::kDown, w.Act(n), w.Delta(n), pass);
  if (layer + 1 < c.num_layers) {
    backend_->AddRmsNorm(w.Residual(n), w.Delta(n), layers_[layer + 1].attn_norm, c.rms_eps,
                         w.Normed(n));
  }
}

}  // namespace ringserve::model
