// LlamaModel's LoRA slots: one kernels::LoraStack per projection, allocated at creation for
// every slot; adapters prepared for them (encoded in the activation dtype, on any thread)
// and written into (or cleared from) a slot at start or between passes
// (ModelOptions::lora_adapters, max_loras, max_lora_rank; PrepareLoraAdapter, SetLoraAdapter).
#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kernels/backend.h"
#include "kernels/dtype.h"
#include "worker/model/gguf_writer.h"
#include "worker/model/llama_model.h"
#include "worker/model/llama_model_state.h"

namespace ringserve::model {
namespace {

std::string TargetName(int target) {
  return std::string(LoraTargetName(static_cast<LoraTarget>(target)));
}

}  // namespace

absl::Status LlamaModel::UploadLoraAdapters() {
  std::vector<std::shared_ptr<const LoraAdapter>>& adapters = options_.lora_adapters;
  const bool room_for_more = options_.max_loras > 0;
  if (options_.max_loras < 0 || options_.max_lora_rank < 0 ||
      options_.max_lora_rank > kMaxLoraRank ||
      (room_for_more && static_cast<size_t>(options_.max_loras) < adapters.size())) {
    return absl::InvalidArgumentError(
        absl::StrCat("model options: max_loras (", options_.max_loras, ") must hold the ",
                     adapters.size(), " adapters given, and max_lora_rank (",
                     options_.max_lora_rank, ") be in [0, ", kMaxLoraRank, "]"));
  }
  const int slots = room_for_more ? options_.max_loras : static_cast<int>(adapters.size());
  if (slots == 0) return absl::OkStatus();
  adapters.resize(static_cast<size_t>(slots));
  for (const auto& adapter : adapters) {
    if (adapter != nullptr && adapter->layers.size() != static_cast<size_t>(config_.num_layers)) {
      return absl::InvalidArgumentError(
          absl::StrCat("LoRA adapter ", adapter->name, " has ", adapter->layers.size(),
                       " layers; the model has ", config_.num_layers));
    }
  }
  // With room for adapters loaded later every projection gets a stack, of max_lora_rank
  // (vLLM's default 16 when unset) or the largest given; otherwise only the projections the
  // given adapters change, each of their largest rank there.
  int room_rank = 0;
  if (room_for_more) {
    room_rank = options_.max_lora_rank > 0 ? options_.max_lora_rank : 16;
    for (const auto& adapter : adapters) {
      if (adapter != nullptr) room_rank = std::max(room_rank, adapter->rank);
    }
  }
  const kernels::DType dtype = backend_->activation_dtype();
  for (int layer = 0; layer < config_.num_layers; ++layer) {
    for (int t = 0; t < kNumLoraTargets; ++t) {
      int rank = room_rank;
      for (const auto& adapter : adapters) {
        if (adapter != nullptr) rank = std::max(rank, adapter->layers[layer][t].rank);
      }
      if (rank == 0) continue;
      const auto [out, in] = LoraTargetShape(config_, static_cast<LoraTarget>(t));
      LayerWeights::Lora& lora = layers_[layer].lora[t];
      for (auto [buffer, cols] : {std::pair{&lora.a, in}, std::pair{&lora.b_t, out}}) {
        const size_t bytes = kernels::DTypeBytes(dtype, static_cast<size_t>(slots) * rank * cols);
        RS_ASSIGN_OR_RETURN(*buffer, backend_->Allocate(bytes));
        backend_->Fill(buffer->data(), bytes, 0);  // an empty slot adds zeros
        weight_bytes_ += bytes;
      }
      lora.stack = {lora.a.data(), lora.b_t.data(), slots, rank, in, out};
    }
  }
  lora_slots_.resize(static_cast<size_t>(slots));
  for (int slot = 0; slot < slots; ++slot) {
    if (adapters[slot] == nullptr) continue;
    RS_ASSIGN_OR_RETURN(std::shared_ptr<const PreparedLora> prepared,
                        PrepareLoraAdapter(*adapters[slot]));
    RS_RETURN_IF_ERROR(SetLoraAdapter(slot, std::move(prepared)));
  }
  adapters.clear();  // kept prepared in lora_slots_
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const PreparedLora>> LlamaModel::PrepareLoraAdapter(
    const LoraAdapter& adapter) const {
  if (adapter.layers.size() != static_cast<size_t>(config_.num_layers)) {
    return absl::InvalidArgumentError(absl::StrCat("LoRA adapter ", adapter.name, " has ",
                                                   adapter.layers.size(), " layers; the model has ",
                                                   config_.num_layers));
  }
  auto prepared = std::make_shared<PreparedLora>();
  prepared->name = adapter.name;
  prepared->dtype = backend_->activation_dtype();
  prepared->layers.resize(adapter.layers.size());
  for (int layer = 0; layer < config_.num_layers; ++layer) {
    for (int t = 0; t < kNumLoraTargets; ++t) {
      const LoraMatrices& m = adapter.layers[layer][t];
      if (m.rank == 0) continue;
      const kernels::LoraStack& stack = layers_[layer].lora[t].stack;
      if (m.rank > stack.rank) {
        return absl::FailedPreconditionError(
            absl::StrCat("LoRA adapter ", adapter.name, " has rank ", m.rank, " on layer ", layer,
                         "'s ", TargetName(t), "; the model keeps room for rank ", stack.rank,
                         " there (--max-lora-rank)"));
      }
      const auto [out, in] = LoraTargetShape(config_, static_cast<LoraTarget>(t));
      if (m.a.size() != static_cast<size_t>(m.rank * in) ||
          m.b_t.size() != static_cast<size_t>(m.rank * out)) {
        return absl::InvalidArgumentError(absl::StrCat("LoRA adapter ", adapter.name, ": layer ",
                                                       layer, " ", TargetName(t),
                                                       " does not fit the model"));
      }
      // The activation dtype's bytes, as GGUF stores f32, f16 and bf16 too.
      PreparedLoraMatrices& p = prepared->layers[layer][t];
      p.rank = m.rank;
      p.a = EncodeTensorData(prepared->dtype, m.a);
      p.b_t = EncodeTensorData(prepared->dtype, m.b_t);
    }
  }
  return prepared;
}

absl::Status LlamaModel::SetLoraAdapter(int slot, std::shared_ptr<const PreparedLora> adapter) {
  const int slots = static_cast<int>(lora_slots_.size());
  if (slot < 0 || slot >= slots) {
    return absl::InvalidArgumentError(
        absl::StrCat("LoRA slot ", slot, " is not one of the model's ", slots));
  }
  const kernels::DType dtype = backend_->activation_dtype();
  // Checked whole before anything is written: a refusal leaves the slot as it was.
  if (adapter != nullptr) {
    bool fits = adapter->dtype == dtype &&
                adapter->layers.size() == static_cast<size_t>(config_.num_layers);
    for (int layer = 0; fits && layer < config_.num_layers; ++layer) {
      for (int t = 0; fits && t < kNumLoraTargets; ++t) {
        const PreparedLoraMatrices& m = adapter->layers[layer][t];
        const kernels::LoraStack& stack = layers_[layer].lora[t].stack;
        fits = m.rank <= stack.rank &&
               m.a.size() == kernels::DTypeBytes(dtype, static_cast<size_t>(m.rank) * stack.in) &&
               m.b_t.size() == kernels::DTypeBytes(dtype, static_cast<size_t>(m.rank) * stack.out);
      }
    }
    if (!fits) {
      return absl::InvalidArgumentError(
          absl::StrCat("LoRA adapter ", adapter->name, " was prepared for another model's slots"));
    }
  }
  const PreparedLora* previous = lora_slots_[static_cast<size_t>(slot)].get();
  for (int layer = 0; layer < config_.num_layers; ++layer) {
    for (int t = 0; t < kNumLoraTargets; ++t) {
      const LayerWeights::Lora& lora = layers_[layer].lora[t];
      const kernels::LoraStack& stack = lora.stack;
      if (stack.rank == 0) continue;
      const PreparedLoraMatrices* m = adapter != nullptr ? &adapter->layers[layer][t] : nullptr;
      const int rank = m != nullptr ? m->rank : 0;
      const int stale = previous != nullptr ? previous->layers[layer][t].rank : 0;
      // The adapter's rows, then zeros over the previous adapter's rows past them (the slot's
      // rows past both are zeros already): rows past an adapter's rank add nothing.
      for (auto [buffer, cols, bytes] :
           {std::tuple{&lora.a, stack.in, m != nullptr ? &m->a : nullptr},
            std::tuple{&lora.b_t, stack.out, m != nullptr ? &m->b_t : nullptr}}) {
        const size_t row_bytes = kernels::DTypeBytes(dtype, static_cast<size_t>(cols));
        char* rows = static_cast<char*>(buffer->data()) +
                     static_cast<size_t>(slot) * static_cast<size_t>(stack.rank) * row_bytes;
        if (rank > 0) backend_->CopyToDevice(rows, bytes->data(), bytes->size());
        if (stale > rank) {
          backend_->Fill(rows + static_cast<size_t>(rank) * row_bytes,
                         static_cast<size_t>(stale - rank) * row_bytes, 0);
        }
      }
    }
  }
  lora_slots_[static_cast<size_t>(slot)] = std::move(adapter);
  return absl::OkStatus();
}

}  // namespace ringserve::model
