#include "worker/engine/step_chains.h"

#include <algorithm>
#include <vector>

#include "common/check.h"

namespace ringserve::engine {

void StepChains::Clear(size_t penalty_room) {
  penalty_room_ = penalty_room;
  chains_.clear();
  penalties_.clear();
  logits_rows_.clear();
  logits_index_.clear();
  logprob_rows_.clear();
  logprob_index_.clear();
  scored_ids_.clear();
  hidden_rows_.clear();
  any_scored_ = false;
}

void StepChains::WantHidden() { hidden_rows_.push_back(static_cast<int32_t>(chains_.size()) - 1); }

std::vector<float> StepChains::Hidden(const model::SampledPass& pass, size_t row) const {
  const auto it = std::find(hidden_rows_.begin(), hidden_rows_.end(), static_cast<int32_t>(row));
  RS_CHECK(it != hidden_rows_.end() && !pass.hidden.empty());
  const size_t dim = pass.hidden.size() / hidden_rows_.size();
  const auto from = pass.hidden.subspan(static_cast<size_t>(it - hidden_rows_.begin()) * dim, dim);
  return {from.begin(), from.end()};
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
  scored_ids_.push_back(-1);
}

void StepChains::AddScored(int32_t token) {
  const auto row = static_cast<int32_t>(chains_.size());
  chains_.push_back(kernels::RowSampling{});  // greedy, no penalties: the cheapest chain
  logits_index_.push_back(-1);
  logprob_index_.push_back(static_cast<int32_t>(logprob_rows_.size()));
  logprob_rows_.push_back(row);
  scored_ids_.push_back(token);
  any_scored_ = true;
}

GeneratedToken StepChains::Scored(const model::SampledPass& pass, size_t row, int num_top) const {
  const kernels::RowLogprobs& logprobs = pass.logprobs[logprob_index_[row]];
  GeneratedToken out;
  out.id = scored_ids_[row];
  out.logprob = logprobs.chosen;
  for (int k = 0; k < std::min(num_top, kernels::kMaxTopLogprobs); ++k) {
    if (logprobs.top_ids[k] < 0) break;
    out.top_logprobs.emplace_back(logprobs.top_ids[k], logprobs.top_logprobs[k]);
  }
  return out;
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
