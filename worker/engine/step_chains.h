// One pass's sampling input, built row by row from the samplers of its sampled rows: their
// chains, their penalised tokens (as far as the pass has room), the rows whose raw logits
// the host needs and those whose logprobs it wants (model::StepSampling). The generator and
// the golden tests' own batch loop build their passes with it and finish each row through it.
#ifndef RINGSERVE_WORKER_ENGINE_STEP_CHAINS_H_
#define RINGSERVE_WORKER_ENGINE_STEP_CHAINS_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "kernels/row_sampling.h"
#include "worker/engine/job.h"
#include "worker/engine/sampler.h"
#include "worker/model/llama_model.h"

namespace ringserve::engine {

class StepChains {
 public:
  // Starts a pass whose penalties may take `penalty_room` entries; keeps the memory.
  void Clear(size_t penalty_room);
  // Plans `sampler`'s token `ahead` tokens after its next one, the token before it assumed
  // to be `assumed` (Sampler::Plan), as the pass's next sampled row.
  void Add(Sampler& sampler, int32_t ahead = 0, int32_t assumed = -1);
  // A row that scores `token` (prompt logprobs): its logprobs name the token as chosen,
  // under the raw logits; nothing is sampled from it.
  void AddScored(int32_t token);
  // The host wants the final hidden state of the row added last (an embedding).
  void WantHidden();

  model::StepSampling view() const {
    return {.chains = chains_,
            .penalties = penalties_,
            .logits_rows = logits_rows_,
            .logprob_rows = logprob_rows_,
            .scored_ids =
                any_scored_ ? std::span<const int32_t>(scored_ids_) : std::span<const int32_t>(),
            .hidden_rows = hidden_rows_};
  }
  size_t size() const { return chains_.size(); }
  // The rows whose raw logits the host asked for (its work: penalties the pass had no room
  // for), in row order.
  std::span<const int32_t> logits_rows() const { return logits_rows_; }
  // Whether row `row` has host work (is among logits_rows()).
  bool has_host_work(size_t row) const { return logits_index_[row] >= 0; }
  // sampler.Finish for row `row` of `pass` (the sampler Add planned that row with; a
  // sampler's rows finish in the order they were added).
  SampledToken Finish(Sampler& sampler, const model::SampledPass& pass, size_t row,
                      size_t vocab) const;
  // The logprobs of scored row `row` of `pass` with the `num_top` most likely tokens.
  GeneratedToken Scored(const model::SampledPass& pass, size_t row, int num_top) const;
  // The hidden state of row `row` of `pass`, which WantHidden asked for.
  std::vector<float> Hidden(const model::SampledPass& pass, size_t row) const;

 private:
  size_t penalty_room_ = 0;
  std::vector<kernels::RowSampling> chains_;
  std::vector<kernels::PenaltyEntry> penalties_;
  std::vector<int32_t> logits_rows_;
  std::vector<int32_t> logits_index_;  // per row: its place in logits_rows_, or -1
  std::vector<int32_t> logprob_rows_;
  std::vector<int32_t> logprob_index_;  // per row: its place in logprob_rows_, or -1
  std::vector<int32_t> scored_ids_;     // per row: the token it scores, or -1
  std::vector<int32_t> hidden_rows_;    // rows whose hidden state the host wants, in order
  bool any_scored_ = false;
};

}  // namespace ringserve::engine

#endif  // RINGSERVE_WORKER_ENGINE_STEP_CHAINS_H_
