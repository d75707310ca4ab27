// Per-request token sampler: its own parameters and its own RNG, so a request's tokens
// depend only on (model, input, params, seed), never on its batch-mates.
//
// Chain order (fixed): repetition / presence / frequency penalties -> logit bias ->
// temperature -> top-k -> top-p -> min-p -> draw. temperature 0 is greedy (argmax, lowest id on
// ties). All of it is kernels/row_sampling.h's, which the backend runs on the device for every row
// (Backend::PenalizeRows, SampleRows); the sampler plans each token's chain, penalised
// tokens and draw, and finishes it: the device's pick, or, when the step had no room left
// for its penalties, the same penalties and chain run here on the row's logits
// (kernels::cpu: the same token a device would pick). Logprobs come from the device too
// (Backend::LogprobRows). A job with a response format (Constrain) picks every token on the
// host while the constraint is active: after the penalties, the tokens its grammar refuses
// get -inf, then the chain runs (a triggered constraint is inactive until its trigger).
// Owned by one job; used by one thread at a time.
#ifndef RINGSERVE_WORKER_ENGINE_SAMPLER_H_
#define RINGSERVE_WORKER_ENGINE_SAMPLER_H_

#include <cstdint>
#include <deque>
#include <optional>
#include <random>
#include <span>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "kernels/row_logprobs.h"
#include "kernels/row_sampling.h"
#include "worker/grammar/token_constraint.h"

namespace ringserve::engine {

struct SamplingParams {
  float temperature = 1.0F;         // 0 = greedy
  int top_k = 0;                    // 0 = off
  float top_p = 1.0F;               // (0, 1]
  float min_p = 0.0F;               // [0, 1]
  float repetition_penalty = 1.0F;  // > 0; 1 = off (applies to prompt and output tokens)
  float presence_penalty = 0.0F;    // [-2, 2] (output tokens)
  float frequency_penalty = 0.0F;   // [-2, 2] (output tokens)
  uint64_t seed = 0;
  // Report the chosen token's log-probability and the top-n, 0..kMaxTopLogprobs (0 = none).
  int num_logprobs = 0;
  // (token, bias) pairs with distinct tokens, each bias in [-100, 100], added to the token's
  // logit after the penalties at every step (-100 all but bans it). At most kMaxLogitBias.
  std::vector<std::pair<int32_t, float>> logit_bias = {};
};

inline constexpr int kMaxLogitBias = 1024;
inline constexpr float kMaxLogitBiasValue = 100.0F;

// INVALID_ARGUMENT naming the field when a parameter is out of range (logit_bias token ids
// are checked against the vocabulary by the generator).
absl::Status ValidateSamplingParams(const SamplingParams& params);

struct SampledToken {
  int32_t id = -1;
  // Log-probability of `id` under the model's raw distribution (when num_logprobs > 0).
  float logprob = 0;
  std::vector<std::pair<int32_t, float>> top_logprobs;  // when num_logprobs > 0
};

class Sampler {
 public:
  Sampler(const SamplingParams& params, std::span<const int32_t> prompt_tokens);

  // The chain for Backend::SampleRows of the token `ahead` tokens after the next one (0: the
  // next token). Appends the penalised tokens to the step's `penalties` (the chain's penalty
  // range) when they fit in `capacity` entries; otherwise the host applies them
  // (needs_logits). A sampled token (temperature > 0) takes the job's draw of its place in
  // the output, so a token's draw is the same however many tokens were planned ahead of it.
  // Plan(ahead = 0) starts a step's plans; each ahead > 0 follows ahead - 1 in the same step,
  // for a step that verifies drafts: row `ahead` is the chain of the token after the first
  // `ahead` drafts, `assumed` the last of those, and its penalties and min_tokens suppression
  // are those that hold once they are the output.
  kernels::RowSampling Plan(std::vector<kernels::PenaltyEntry>& penalties, size_t capacity,
                            int32_t ahead = 0, int32_t assumed = -1);
  // Whether Finish reads the last planned row's raw logits: for penalties the step had no
  // room for, or for the response format's mask.
  bool needs_logits() const { return !planned_.empty() && planned_.back().host_pick; }
  // Whether Finish reads the row's logprobs.
  bool wants_logprobs() const { return params_.num_logprobs > 0; }
  // The oldest planned and unfinished token (plans finish in order; those a step leaves
  // unfinished, rejected drafts' rows, are dropped by the next Plan(ahead = 0) and their draws
  // kept for the tokens that take their places): `device_id` (the device's pick), or, with
  // penalties left to the host, the pick from `logits` penalised here under the planned
  // chain; with its logprobs from `logprobs` (the device's, for its pick) when asked for.
  // `logits` may be empty when the row needed none, `logprobs` null when wants_logprobs() is
  // false. Records the token.
  SampledToken Finish(int32_t device_id, std::span<const float> logits,
                      const kernels::RowLogprobs* logprobs);
  // Plan and Finish with the pick made on the host from `logits` (tests and tools).
  SampledToken Sample(std::span<const float> logits);
  // Keeps `ids` from being picked (logit -inf after the penalties and bias) until this
  // sampler has finished `num_tokens` tokens: a request's min_tokens over its end-of-sequence
  // and stop tokens. Called at most once, before the first token.
  void SuppressUntil(std::span<const int32_t> ids, int32_t num_tokens);
  // Picks every token from those `constraint` allows, and records each pick in it. Called
  // at most once, before the first token. A constrained sampler plans no token ahead
  // (drafts): each mask depends on the tokens before it.
  void Constrain(grammar::TokenConstraint constraint);
  bool constrained() const { return constraint_.has_value(); }
  // The response is complete and nothing may follow it: the job ends here.
  bool response_complete() const { return constraint_ && constraint_->finished(); }

 private:
  // The tokens the penalties touch, each once with its output count, and the min_tokens
  // suppression: what Remember changes as tokens are finished. Copied to plan ahead.
  struct PenaltyBook {
    kernels::PenaltyEntry& Penalised(int32_t id);
    // Penalised, with a new entry marked kBiasOnly: a token only a bias touches so far.
    kernels::PenaltyEntry& Biased(int32_t id);
    void EndSuppression();
    void Remember(int32_t id);

    // Whether the repetition, presence or frequency penalties apply (tokens are counted).
    bool counts_output = false;
    std::vector<kernels::PenaltyEntry> entries;
    absl::flat_hash_map<int32_t, int32_t> index;  // token -> its entry
    // SuppressUntil's tokens, with the bias each has once the suppression ends.
    std::vector<std::pair<int32_t, float>> suppressed;
    int32_t suppress_until = 0;
    int32_t num_finished = 0;
  };

  void FillLogprobs(const kernels::RowLogprobs& logprobs, std::span<const float> logits,
                    bool host_picked, SampledToken* out) const;
  double NextUniform();

  struct PlannedRow {
    kernels::RowSampling chain;
    bool host_pick = false;  // Finish picks the token: penalties or a mask the step left
  };

  SamplingParams params_;
  std::mt19937_64 rng_;
  PenaltyBook book_;        // as of the tokens finished
  PenaltyBook ahead_book_;  // as of the drafts assumed by this step's plans ahead
  // The draws of the tokens planned and not yet finished, in output order.
  std::deque<double> draws_;
  std::vector<PlannedRow> planned_;  // this step's plans, from the next token on
  size_t num_planned_finished_ = 0;  // of planned_
  std::vector<float> scratch_;       // the penalised logits
  std::optional<grammar::TokenConstraint> constraint_;
};

}  // namespace ringserve::engine

#endif  // RINGSERVE_WORKER_ENGINE_SAMPLER_H_
