// Per-request token sampler: its own parameters and its own RNG, so a request's tokens
// depend only on (model, input, params, seed), never on its batch-mates.
//
// Chain order (fixed): repetition / presence / frequency penalties -> temperature ->
// top-k -> top-p -> min-p -> draw. temperature 0 is greedy (argmax, lowest id on ties).
// Owned by one job and used only by the generator thread.
#ifndef RINGSERVE_WORKER_ENGINE_SAMPLER_H_
#define RINGSERVE_WORKER_ENGINE_SAMPLER_H_

#include <cstdint>
#include <random>
#include <span>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"

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
  // Report the chosen token's log-probability and the top-n, 0..20 (0 = none).
  int num_logprobs = 0;
};

// The first index of the largest logit (a NaN never wins): greedy decoding's token.
int32_t GreedyToken(std::span<const float> logits);

// INVALID_ARGUMENT naming the field when a parameter is out of range.
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

  // Picks the next token from one row of logits and records it for the penalties.
  SampledToken Sample(std::span<const float> logits);
  // Greedy with no penalty and no logprobs: the token is the row's first largest logit and
  // nothing else is read, so the device may pick it (Backend::ArgmaxRows).
  bool greedy_only() const;
  // Records a token picked elsewhere (a greedy_only sampler's, on the device).
  SampledToken Record(int32_t id);

 private:
  struct Candidate {
    float value;
    int32_t id;
  };
  bool penalised() const;
  void Remember(int32_t id);  // for the penalties
  void ApplyPenalties(std::vector<float>& logits) const;
  int32_t Draw(std::vector<float>& logits);
  void SortNucleus(double total);
  void FillLogprobs(std::span<const float> logits, SampledToken* out) const;
  double NextUniform();

  SamplingParams params_;
  std::mt19937_64 rng_;
  absl::flat_hash_set<int32_t> prompt_tokens_;
  absl::flat_hash_map<int32_t, int> output_counts_;
  std::vector<float> scratch_;
  std::vector<Candidate> candidates_;
};

}  // namespace ringserve::engine

#endif  // RINGSERVE_WORKER_ENGINE_SAMPLER_H_
