#include "worker/engine/fake_model_runner.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/check.h"
#include "common/hash.h"
#include "common/status_macros.h"
#include "kernels/cpu/cpu_sampling.h"

namespace ringserve::engine {

FakeModelRunner::FakeModelRunner(FakeModelRunnerOptions options)
    : options_(std::move(options)),
      slots_(static_cast<size_t>(options_.num_kv_blocks) * options_.block_size_tokens, -1),
      host_slots_(static_cast<size_t>(options_.num_host_kv_blocks) * options_.block_size_tokens,
                  -1) {
  for (const std::string& name : options_.lora_adapters) {
    std::shared_ptr<model::PreparedLora> adapter;
    if (!name.empty()) {
      adapter = std::make_shared<model::PreparedLora>();
      adapter->name = name;
    }
    created_adapters_.push_back(adapter);
    slot_loads_.push_back(LoadNumber(adapter));
  }
}

absl::StatusOr<std::shared_ptr<const model::PreparedLora>> FakeModelRunner::PrepareLoraAdapter(
    const model::LoraAdapter& adapter) const {
  if (slot_loads_.empty()) return absl::FailedPreconditionError("fake: no LoRA slots");
  auto prepared = std::make_shared<model::PreparedLora>();
  prepared->name = adapter.name;
  return prepared;
}

int32_t FakeModelRunner::LoadNumber(const std::shared_ptr<const model::PreparedLora>& adapter) {
  if (adapter == nullptr) return 0;
  auto it = std::find(loads_.begin(), loads_.end(), adapter);
  if (it == loads_.end()) it = loads_.insert(loads_.end(), adapter);
  return static_cast<int32_t>(it - loads_.begin()) + 1;
}

int32_t FakeModelRunner::LoadOf(const model::SequenceChunk& chunk) const {
  return chunk.adapter >= 0 ? slot_loads_[static_cast<size_t>(chunk.adapter)] : 0;
}

absl::Status FakeModelRunner::SetLoraAdapter(
    int32_t slot, const std::shared_ptr<const model::PreparedLora>& adapter) {
  if (slot < 0 || slot >= static_cast<int32_t>(slot_loads_.size())) {
    return absl::InvalidArgumentError(absl::StrCat("fake: LoRA slot ", slot));
  }
  slot_loads_[static_cast<size_t>(slot)] = LoadNumber(adapter);
  return absl::OkStatus();
}

std::vector<float> FakeModelRunner::LogitsAfter(std::span<const int32_t> history,
                                                int32_t load) const {
  std::vector<float> row(static_cast<size_t>(options_.vocab_size));
  if (options_.next_token) {
    // A peak of 20 nats: greedy always picks it, temperature 1 almost always.
    row[static_cast<size_t>(options_.next_token(history))] = options_.next_token_logit;
  } else {
    const uint64_t seed = Hash64(history.data(), history.size_bytes());
    for (int32_t id = 0; id < options_.vocab_size; ++id) {
      const uint64_t h = Hash64(&id, sizeof(id), seed);
      row[static_cast<size_t>(id)] = static_cast<float>(h % 1000) / 200.0F;  // [0, 5)
    }
  }
  if (load > 0) std::rotate(row.begin(), row.begin() + load % options_.vocab_size, row.end());
  return row;
}

size_t FakeModelRunner::Slot(std::span<const int32_t> block_table, int32_t position) const {
  const int32_t block_size = options_.block_size_tokens;
  return static_cast<size_t>(block_table[static_cast<size_t>(position / block_size)]) *
             static_cast<size_t>(block_size) +
         static_cast<size_t>(position % block_size);
}

absl::Status FakeModelRunner::Validate(std::span<const model::SequenceChunk> chunks) const {
  if (chunks.empty()) return absl::InvalidArgumentError("fake forward: empty batch");
  if (static_cast<int32_t>(chunks.size()) > options_.max_seqs) {
    return absl::InvalidArgumentError(absl::StrCat("fake forward: ", chunks.size(), " sequences"));
  }
  int64_t num_tokens = 0;
  for (const model::SequenceChunk& c : chunks) {
    num_tokens += static_cast<int64_t>(c.tokens.size());
    const int64_t end = c.start_position + static_cast<int64_t>(c.tokens.size());
    if (c.tokens.empty() || c.start_position < 0 || end > options_.max_context_tokens ||
        static_cast<int64_t>(c.block_table.size()) * options_.block_size_tokens < end) {
      return absl::InvalidArgumentError(absl::StrCat("fake forward: chunk at ", c.start_position,
                                                     " of ", c.tokens.size(), " tokens with ",
                                                     c.block_table.size(), " blocks"));
    }
    for (const int32_t block : c.block_table) {
      if (block < 0 || block >= options_.num_kv_blocks) {
        return absl::InvalidArgumentError(absl::StrCat("fake forward: block ", block));
      }
    }
    for (const int32_t token : c.tokens) {
      if (token < 0 || token >= options_.vocab_size) {
        return absl::InvalidArgumentError(absl::StrCat("fake forward: token ", token));
      }
    }
    if (c.adapter < -1 || c.adapter >= static_cast<int32_t>(slot_loads_.size())) {
      return absl::InvalidArgumentError(absl::StrCat("fake forward: adapter ", c.adapter));
    }
    if (!model::DraftsFit(c)) {
      return absl::InvalidArgumentError(
          absl::StrCat("fake forward: ", c.num_drafts, " drafts, ", c.num_scored, " scored rows"));
    }
  }
  if (num_tokens > options_.max_batch_tokens) {
    return absl::InvalidArgumentError(absl::StrCat("fake forward: ", num_tokens, " tokens"));
  }
  if (model::SampledRows(chunks) > static_cast<size_t>(max_sampled_rows())) {
    return absl::InvalidArgumentError("fake forward: too many sampled rows");
  }
  return absl::OkStatus();
}

absl::Status FakeModelRunner::ReadHistory(const model::SequenceChunk& chunk,
                                          std::vector<int32_t>* history) const {
  const int32_t end = chunk.start_position + static_cast<int32_t>(chunk.tokens.size());
  history->clear();
  for (int32_t position = 0; position < end; ++position) {
    const size_t slot = Slot(chunk.block_table, position);
    const int32_t value = slots_[slot];
    if (value < 0) {
      return absl::InternalError(absl::StrCat("fake forward: position ", position,
                                              " reads KV slot ", slot, " that nothing wrote"));
    }
    const int32_t load = value / options_.vocab_size;
    if (load != LoadOf(chunk)) {
      return absl::InternalError(absl::StrCat("fake forward: position ", position,
                                              " under adapter load ", LoadOf(chunk),
                                              " reads K/V load ", load, " computed"));
    }
    history->push_back(value % options_.vocab_size);
  }
  return absl::OkStatus();
}

absl::StatusOr<model::SampledPass> FakeModelRunner::ForwardSampled(
    std::span<const model::SequenceChunk> chunks, const model::StepSampling& step) {
  const size_t num_sampled = model::SampledRows(chunks);
  RS_RETURN_IF_ERROR(model::ValidateStepSampling(step, num_sampled, options_.max_penalty_entries));
  RS_ASSIGN_OR_RETURN(const std::span<const float> logits, Forward(chunks));
  const auto vocab = static_cast<size_t>(options_.vocab_size);
  {
    std::lock_guard<std::mutex> lock(mu_);
    steps_.back().logits_rows.assign(step.logits_rows.begin(), step.logits_rows.end());
    steps_.back().logprob_rows.assign(step.logprob_rows.begin(), step.logprob_rows.end());
    steps_.back().num_penalties = step.penalties.size();
  }
  asked_logits_.clear();
  for (const int32_t row : step.logits_rows) {
    const auto from = logits.subspan(static_cast<size_t>(row) * vocab, vocab);
    asked_logits_.insert(asked_logits_.end(), from.begin(), from.end());
  }
  ids_.clear();
  std::vector<float> row;
  std::vector<kernels::PenaltyEntry> entries;
  for (size_t r = 0; r < step.chains.size(); ++r) {
    const kernels::RowSampling& chain = step.chains[r];
    const auto raw = logits.subspan(r * vocab, vocab);
    row.assign(raw.begin(), raw.end());
    entries.assign(step.penalties.begin() + chain.penalty_begin,
                   step.penalties.begin() + chain.penalty_end);
    kernels::cpu::PenalizeRow(row, chain, entries);
    const bool scored = !step.scored_ids.empty() && step.scored_ids[r] >= 0;
    ids_.push_back(scored ? step.scored_ids[r] : kernels::cpu::SampleRow(row, chain));
  }
  logprobs_.clear();
  for (const int32_t r : step.logprob_rows) {
    logprobs_.push_back(kernels::cpu::LogprobRow(logits.subspan(r * vocab, vocab), ids_[r]));
  }
  // A row's "hidden state": the first values of its logits, a function of its history.
  hidden_.clear();
  const size_t width = std::min<size_t>(kHiddenSize, vocab);
  for (const int32_t r : step.hidden_rows) {
    const auto from = logits.subspan(static_cast<size_t>(r) * vocab, width);
    hidden_.insert(hidden_.end(), from.begin(), from.end());
  }
  return model::SampledPass{
      .ids = ids_, .logits = asked_logits_, .logprobs = logprobs_, .hidden = hidden_};
}

absl::StatusOr<std::span<const float>> FakeModelRunner::Forward(
    std::span<const model::SequenceChunk> chunks) {
  if (options_.on_forward) options_.on_forward();
  RS_RETURN_IF_ERROR(Validate(chunks));
  FakeStep step;
  // "Attention" writes every chunk's K/V first, as the real pass does layer by layer.
  for (const model::SequenceChunk& c : chunks) {
    for (size_t i = 0; i < c.tokens.size(); ++i) {
      const int32_t position = c.start_position + static_cast<int32_t>(i);
      slots_[Slot(c.block_table, position)] = c.tokens[i] + options_.vocab_size * LoadOf(c);
    }
    step.chunks.push_back({c.start_position, static_cast<int32_t>(c.tokens.size()), c.sample,
                           c.tokens.front(), c.num_drafts, c.num_scored});
  }
  logits_.clear();
  std::vector<int32_t> history;
  for (const model::SequenceChunk& c : chunks) {
    const int32_t rows = model::SampledRows(c);
    if (rows == 0) continue;
    RS_RETURN_IF_ERROR(ReadHistory(c, &history));
    // Each of the chunk's last `rows` positions gives the row that follows the history up to it.
    for (int32_t r = rows - 1; r >= 0; --r) {
      const std::vector<float> row =
          LogitsAfter(std::span(history).first(history.size() - static_cast<size_t>(r)), LoadOf(c));
      logits_.insert(logits_.end(), row.begin(), row.end());
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  step.num_copies_before = std::exchange(num_pending_copies_, 0);
  steps_.push_back(std::move(step));
  return std::span<const float>(logits_);
}

void FakeModelRunner::CopyBlocks(std::span<const kvcache::BlockCopy> copies) {
  const auto block_size = static_cast<size_t>(options_.block_size_tokens);
  for (const kvcache::BlockCopy& copy : copies) {
    const std::vector<int32_t>& from =
        copy.kind == kvcache::CopyKind::kFromHost ? host_slots_ : slots_;
    std::vector<int32_t>& to = copy.kind == kvcache::CopyKind::kToHost ? host_slots_ : slots_;
    RS_CHECK(static_cast<size_t>(copy.src_block + 1) * block_size <= from.size());
    RS_CHECK(static_cast<size_t>(copy.dst_block + 1) * block_size <= to.size());
    std::copy_n(from.begin() + static_cast<ptrdiff_t>(copy.src_block * block_size), block_size,
                to.begin() + static_cast<ptrdiff_t>(copy.dst_block * block_size));
  }
  std::lock_guard<std::mutex> lock(mu_);
  num_pending_copies_ += static_cast<int32_t>(copies.size());
  num_copies_ += static_cast<int64_t>(copies.size());
}

std::vector<FakeStep> FakeModelRunner::Steps() const {
  std::lock_guard<std::mutex> lock(mu_);
  return steps_;
}

int64_t FakeModelRunner::num_copies() const {
  std::lock_guard<std::mutex> lock(mu_);
  return num_copies_;
}

}  // namespace ringserve::engine
