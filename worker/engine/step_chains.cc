#include "worker/engine/step_chains.h"

namespace ringserve::engine {

void StepChains::Clear(size_t penalty_room) {
  penalty_room_ = penalty_room;
  chains_.clear();
  penalties_.clear();
  logits_rows_.clear();
  logits_index_.clear();
}

void StepChains::Add(Sampler& sampler) {
  const auto row = static_cast<int32_t>(chains_.size());
  chains_.push_back(sampler.Plan(penalties_, penalty_room_));
  if (sampler.needs_logits()) {
    logits_index_.push_back(static_cast<int32_t>(logits_rows_.size()));
    logits_rows_.push_back(row);
  } else {
    logits_index_.push_back(-1);
  }
}

std::span<const float> StepChains::LogitsOf(const model::SampledPass& pass, size_t row,
                                            size_t vocab) const {
  const int32_t k = logits_index_[row];
  if (k < 0) return {};
  return pass.logits.subspan(static_cast<size_t>(k) * vocab, vocab);
}

}  // namespace ringserve::engine
