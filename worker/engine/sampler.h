// Per-request token sampler: its own parameters and its own RNG, so a request's tokens
// depend only on (model, input, params, seed), never on its batch-mates.
//
// Chain order (fixed): repetition / presence / frequency penalties -> temperature ->
// top-k -> top-p -> min-p -> draw. temperature 0 is greedy (argmax, lowest id on ties).
// Everything after the penalties is kernels/row_sampling.h's chain, which the backend runs
// on the device for every row (Backend::SampleRows); the sampler plans each token's chain
// and draw, and finishes it: the device's pick, or for a penalised request the same chain
// run here on the penalised logits (kernels::cpu::SampleRow: the same token a device would
// pick from them). Owned by one job; used by one thread at a time.
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
#include "kernels/row_sampling.h"

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

  // The next token's chain for Backend::SampleRows. Takes the job's next draw when it
  // samples (temperature > 0), so every sampled token uses exactly one.
  kernels::RowSampling Plan();
  // Whether Finish reads the row's logits: penalties change them before the chain, and
  // logprobs are computed from them.
  bool needs_logits() const;
  // The planned token: `device_id` (the device's pick), or with penalties the pick from the
  // penalised `logits` under the planned chain; the logprobs from `logits` when asked for.
  // `logits` may be empty when needs_logits() is false. Records the token for the penalties.
  SampledToken Finish(int32_t device_id, std::span<const float> logits);
  // Plan and Finish with the pick made on the host from `logits` (tests and tools).
  SampledToken Sample(std::span<const float> logits);

 private:
  bool penalised() const;
  void Remember(int32_t id);  // for the penalties
  void ApplyPenalties(std::vector<float>& logits) const;
  void FillLogprobs(std::span<const float> logits, SampledToken* out) const;
  double NextUniform();

  SamplingParams params_;
  std::mt19937_64 rng_;
  absl::flat_hash_set<int32_t> prompt_tokens_;
  absl::flat_hash_map<int32_t, int> output_counts_;
  kernels::RowSampling planned_;
  std::vector<float> scratch_;  // the penalised logits
};

}  // namespace ringserve::engine

#endif  // RINGSERVE_WORKER_ENGINE_SAMPLER_H_
