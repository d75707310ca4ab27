// LlamaModel's LoRA slots: one kernels::LoraStack per projection, allocated at creation for
// every slot, and adapters written into (or cleared from) a slot at start or between passes
// (ModelOptions::lora_adapters, max_loras, max_lora_rank; SetLoraAdapter).
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
  for (int slot = 0; slot < slots; ++slot) {
    if (adapters[slot] != nullptr) RS_RETURN_IF_ERROR(SetLoraAdapter(slot, adapters[slot]));
  }
  return absl::OkStatus();
}

absl::Status LlamaModel::CheckLoraAdapter(const LoraAdapter& adapter) const {
  if (adapter.layers.size() != static_cast<size_t>(config_.num_layers)) {
    return absl::InvalidArgumentError(absl::StrCat("LoRA adapter ", adapter.name, " has ",
                                                   adapter.layers.size(), " layers; the model has ",
                                                   config_.num_layers));
  }
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
    }
  }
  return absl::OkStatus();
}

absl::Status LlamaModel::SetLoraAdapter(int slot, std::shared_ptr<const LoraAdapter> adapter) {
  const int slots = static_cast<int>(options_.lora_adapters.size());
  if (slot < 0 || slot >= slots) {
    return absl::InvalidArgumentError(
        absl::StrCat("LoRA slot ", slot, " is not one of the model's ", slots));
  }
  // Checked whole before anything is written: a refusal leaves the slot as it was.
  if (adapter != nullptr) RS_RETURN_IF_ERROR(CheckLoraAdapter(*adapter));
  const kernels::DType dtype = backend_->activation_dtype();
  for (int layer = 0; layer < config_.num_layers; ++layer) {
    for (int t = 0; t < kNumLoraTargets; ++t) {
      const LayerWeights::Lora& lora = layers_[layer].lora[t];
      const kernels::LoraStack& stack = lora.stack;
      if (stack.rank == 0) continue;
      const LoraMatrices* m = adapter != nullptr ? &adapter->layers[layer][t] : nullptr;
      // The slot's rows, the adapter's first and zeros past its rank (they add nothing).
      for (auto [buffer, cols, values] :
           {std::tuple{&lora.a, stack.in, m != nullptr ? &m->a : nullptr},
            std::tuple{&lora.b_t, stack.out, m != nullptr ? &m->b_t : nullptr}}) {
        std::vector<float> rows(static_cast<size_t>(stack.rank) * cols);
        if (values != nullptr) std::copy(values->begin(), values->end(), rows.begin());
        // The activation dtype's bytes, as GGUF stores f32, f16 and bf16 too.
        const std::vector<uint8_t> bytes = EncodeTensorData(dtype, rows);
        backend_->CopyToDevice(static_cast<char*>(buffer->data()) + slot * bytes.size(),
                               bytes.data(), bytes.size());
      }
    }
  }
  options_.lora_adapters[slot] = std::move(adapter);
  return absl::OkStatus();
}

}  // namespace ringserve::model
