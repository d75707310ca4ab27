// How one row of logits picks its token: the parameters of Backend::SampleRows and the
// arithmetic every backend shares, so the CUDA kernel, the CPU backend and the engine's host
// path pick the same token from the same logits and the same draw, bit for bit.
//
// Penalties come first (Backend::PenalizeRows, in place): each token of the row's
// PenaltyEntry list gets PenalizedLogit (the repetition, presence and frequency penalties,
// then the request's logit bias). Then the chain for one row with temperature > 0:
//  1. s_i = logit_i * (1 / temperature) in float; m = the largest s_i (NaN ignored).
//  2. The order of the tokens: s descending, then id ascending. SortKey(s_i, i) encodes it in
//     one integer, unique per token, larger first.
//  3. top_k > 0 keeps the first top_k tokens of that order.
//  4. Each token weighs W_i = SampleWeight(s_i, m): Exp(s_i - m) in fixed point with
//     kWeightFractionBits fraction bits. The weights are integers so that every sum is exact
//     in whatever order a backend adds them; a token under 2^-40 of the top one weighs 0.
//  5. top_p < 1 keeps the shortest prefix of the order (within top_k) whose weight reaches
//     NucleusMass(top_p, weight of the top_k tokens).
//  6. min_p > 0 drops the tokens with BelowMinP(s_i, m, min_p).
//  7. The draw: target = DrawTarget(uniform, weight kept); the token is the first id, in
//     ascending id order, at which the running sum of the kept weights exceeds target.
// temperature 0, or a row whose largest s is not finite (all -inf or NaN, an infinite logit,
// an overflowing 1 / temperature), is greedy: the first largest logit (a NaN never wins; one in
// front wins everything).
//
// The top token always survives steps 3, 5 and 6 with weight 2^40, so the kept weight is
// never 0 (the helpers clamp parameters out of range: the engine validates them, the
// backends must not misbehave on any). Distributionally this is sampling from softmax(s) restricted
// by top-k, top-p and min-p; drawing in id order rather than sorted order needs no sort of the
// nucleus.
#ifndef RINGSERVE_KERNELS_ROW_SAMPLING_H_
#define RINGSERVE_KERNELS_ROW_SAMPLING_H_

#include <cstdint>

#include "kernels/exact_float.h"
#include "kernels/host_device.h"

namespace ringserve::kernels {

// One row's parameters (the engine's SamplingParams after validation, and the job's draw).
struct RowSampling {
  float temperature = 0;         // 0 = greedy
  int32_t top_k = 0;             // 0 = off
  float top_p = 1;               // (0, 1]
  float min_p = 0;               // [0, 1]
  float repetition_penalty = 1;  // > 0; 1 = off
  float presence_penalty = 0;
  float frequency_penalty = 0;
  // The row's penalised tokens: entries [penalty_begin, penalty_end) of the step's list.
  int32_t penalty_begin = 0;
  int32_t penalty_end = 0;
  double uniform = 0;  // [0, 1): the job's random draw for this token
};

// A token the penalties touch, once per row: every token of the prompt and the output under
// a repetition penalty, else the output's; `count` = its occurrences in the output, or
// kBiasOnly for a token only the logit bias touches (seen nowhere: no repetition penalty).
inline constexpr int32_t kBiasOnly = -1;
struct PenaltyEntry {
  int32_t token = 0;
  int32_t count = 0;
  float bias = 0;  // the request's logit bias for the token, added last
  // The logit before the penalty, recorded by PenalizeRows so that UnpenalizeRows can give
  // LogprobRows the raw row back (the uploader leaves it 0).
  float raw = 0;
};

// The logit of a penalised token: if it was seen (count >= 0), divided (positive) or
// multiplied (negative) by the repetition penalty; then, if it was generated, lowered by
// presence + frequency * count; then the bias added.
RS_HD float PenalizedLogit(float logit, const RowSampling& p, const PenaltyEntry& entry) {
  if (entry.count >= 0 && p.repetition_penalty != 1.0F) {
    logit = logit > 0.0F ? Div(logit, p.repetition_penalty) : Mul(logit, p.repetition_penalty);
  }
  if (entry.count > 0) {
    logit = Sub(logit,
                Add(p.presence_penalty, Mul(p.frequency_penalty, static_cast<float>(entry.count))));
  }
  if (entry.bias != 0.0F) logit = Add(logit, entry.bias);
  return logit;
}

inline constexpr int kWeightFractionBits = 40;

// 1 / temperature, rounded once.
RS_HD float InverseTemperature(float temperature) { return Div(1.0F, temperature); }

// Larger for earlier tokens of the order: the float's bits made monotonic (-0 counts as +0)
// above the complement of the id. A NaN sorts after everything.
// Selects, not branches: a row's signs are random, and the host computes keys in its hottest
// loops.
RS_HD uint64_t SortKey(float s, int32_t id) {
  const uint32_t bits = s == 0.0F ? 0U : AsBits(s);
  // Negative: every bit flipped; positive: the sign bit set.
  const uint32_t flip = static_cast<uint32_t>(static_cast<int32_t>(bits) >> 31) | 0x80000000U;
  const uint32_t ordered = s == s ? bits ^ flip : 0U;
  return static_cast<uint64_t>(ordered) << 32 | (0xFFFFFFFFU - static_cast<uint32_t>(id));
}

// Exp(s - m) * 2^40, truncated. Below s - m = -27.8 the product is under 1 (exp(-27.8) is
// 8% under 2^-40, far beyond Exp's 2 ulp), so the exponential is skipped there.
inline constexpr float kWeightCut = -27.8F;
inline constexpr float kWeightScale = 1099511627776.0F;  // 2^kWeightFractionBits
RS_HD uint64_t SampleWeight(float s, float m) {
  const float d = Sub(s, m);
  if (!(d >= kWeightCut)) return 0;  // also NaN
  return static_cast<uint64_t>(Mul(ExpInRange(d), kWeightScale));
}

// min-p's cut, relative to the top token (whose Exp(0) is 1). A min_p above 1 counts as 1,
// so the top token always stays.
RS_HD bool BelowMinP(float s, float m, float min_p) {
  return Exp(Sub(s, m)) < (min_p < 1.0F ? min_p : 1.0F);
}

// The weight top-p's prefix must reach: ceil(top_p * total) in double, in [1, total]
// (total >= 1) whatever top_p is.
RS_HD uint64_t NucleusMass(float top_p, uint64_t total) {
  const double want = ceil(static_cast<double>(top_p) * static_cast<double>(total));
  if (!(want >= 1.0)) return 1;  // also NaN
  return want >= static_cast<double>(total) ? total : static_cast<uint64_t>(want);
}

// floor(uniform * kept) in double, in [0, kept) (kept > 0) whatever uniform is.
RS_HD uint64_t DrawTarget(double uniform, uint64_t kept) {
  const double scaled = uniform * static_cast<double>(kept);
  if (!(scaled >= 0.0)) return 0;  // also NaN
  if (!(scaled < static_cast<double>(kept))) return kept - 1;
  const auto target = static_cast<uint64_t>(scaled);
  return target < kept ? target : kept - 1;
}

}  // namespace ringserve::kernels

#endif  // RINGSERVE_KERNELS_ROW_SAMPLING_H_
