#include "worker/engine/step_chains.h"

namespace ringserve::engine {

void StepChains::Clear(size_t penalty_room) {
  penalty_room_ = penalty_room;
  chains_.clear();
  penalties_.clear();
  logits_rows_.clear();
  logits_index_.clear();
  logprob_rows_.clear();
  logprob_index_.clear();
}

void StepChains::Add(Sampler& sampler, int32_t ahead, int32_t assumed) {
  const auto row = static_cast<int32_t>(chains_.size());
  chains_.push_back(sampler.Plan(penalties_, penalty_room_, ahead, assumed));
  auto list = [row](bool wanted, std::vector<int32_t>& rows, std::vector<int32_t>& index) {
    index.push_back(wanted ? static_cast<int32_t>(rows.size()) : -1);
    if (wanted) rows.push_back(row);
  };
  list(sampler.needs_logits(), logits_rows_, logits_index_);
  list(sampler.wants_logprobs(), logprob_rows_, logprob_index_);
}

SampledToken StepChains::Finish(Sampler& sampler, const model::SampledPass& pass, size_t row,
                                size_t vocab) const {
  const int32_t k = logits_index_[row];
  const std::span<const float> logits =
      k < 0 ? std::span<const float>{} : pass.logits.subspan(static_cast<size_t>(k) * vocab, vocab);
  const int32_t l = logprob_index_[row];
  return sampler.Finish(pass.ids[row], logits, l < 0 ? nullptr : &pass.logprobs[l]);
}

}  // namespace ringserve::engine
