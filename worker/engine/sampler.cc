#include "worker/engine/sampler.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <limits>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "absl/strings/str_cat.h"

namespace ringserve::engine {
namespace {

constexpr int32_t kLanes = 16;

// Lane j of `best` / `index` takes the largest of v[j], v[j + 16], ... below `end` and the
// first index holding it. Returns the end of the part scanned.
int32_t ScanLanes(std::span<const float> v, std::array<float, kLanes>& best,
                  std::array<int32_t, kLanes>& index) {
  const auto n = static_cast<int32_t>(v.size());
  int32_t i = 0;
#if defined(__SSE2__)
  // The compiler does not vectorize the select of an index by a float compare: SSE2 by hand,
  // four registers of four lanes.
  __m128 b[4];
  __m128i ix[4];
  for (size_t k = 0; k < 4; ++k) {
    b[k] = _mm_loadu_ps(&best[4 * k]);
    ix[k] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(&index[4 * k]));
  }
  const __m128i lane = _mm_setr_epi32(0, 1, 2, 3);
  for (; i + kLanes <= n; i += kLanes) {
    for (int k = 0; k < 4; ++k) {
      const __m128 x = _mm_loadu_ps(&v[i + 4 * k]);
      const __m128 better = _mm_cmpgt_ps(x, b[k]);
      b[k] = _mm_or_ps(_mm_and_ps(better, x), _mm_andnot_ps(better, b[k]));
      const __m128i at = _mm_add_epi32(lane, _mm_set1_epi32(i + 4 * k));
      const __m128i mask = _mm_castps_si128(better);
      ix[k] = _mm_or_si128(_mm_and_si128(mask, at), _mm_andnot_si128(mask, ix[k]));
    }
  }
  for (size_t k = 0; k < 4; ++k) {
    _mm_storeu_ps(&best[4 * k], b[k]);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(&index[4 * k]), ix[k]);
  }
#else
  for (; i + kLanes <= n; i += kLanes) {
    for (int32_t j = 0; j < kLanes; ++j) {
      if (v[i + j] > best[j]) {
        best[j] = v[i + j];
        index[j] = i + j;
      }
    }
  }
#endif
  return i;
}

int32_t ArgmaxLanes(std::span<const float> v) {
  if (v.empty() || std::isnan(v[0])) return 0;
  const auto n = static_cast<int32_t>(v.size());
  std::array<float, kLanes> best;
  std::array<int32_t, kLanes> index;
  best.fill(v[0]);
  index.fill(0);
  int32_t i = ScanLanes(v, best, index);
  int32_t winner = 0;
  for (int32_t j = 0; j < kLanes; ++j) {
    if (best[j] > best[winner] || (best[j] == best[winner] && index[j] < index[winner])) {
      winner = j;
    }
  }
  int32_t result = index[winner];
  for (; i < n; ++i) {
    if (v[i] > v[result]) result = i;
  }
  return result;
}

// Sorted descending by value, ascending id on ties: the order is total, so selection never
// depends on how the sort breaks ties.
template <typename C>
bool Before(const C& a, const C& b) {
  return a.value > b.value || (a.value == b.value && a.id < b.id);
}

}  // namespace

// The first index of the largest value, as a plain scan with `>` finds it (a NaN never wins;
// a NaN in front wins everything), in independent lanes: at a 128k vocabulary greedy
// decoding samples every running sequence's row each step.
int32_t GreedyToken(std::span<const float> logits) { return ArgmaxLanes(logits); }

absl::Status ValidateSamplingParams(const SamplingParams& p) {
  auto bad = [](std::string_view field, std::string_view rule, double value) {
    return absl::InvalidArgumentError(
        absl::StrCat(std::string(field), " must be ", std::string(rule), " (got ", value, ")"));
  };
  if (!(p.temperature >= 0.0F) || !std::isfinite(p.temperature)) {
    return bad("temperature", ">= 0", p.temperature);
  }
  if (p.top_k < 0) return bad("top_k", ">= 0", p.top_k);
  if (!(p.top_p > 0.0F && p.top_p <= 1.0F)) return bad("top_p", "in (0, 1]", p.top_p);
  if (!(p.min_p >= 0.0F && p.min_p <= 1.0F)) return bad("min_p", "in [0, 1]", p.min_p);
  if (!(p.repetition_penalty > 0.0F) || !std::isfinite(p.repetition_penalty)) {
    return bad("repetition_penalty", "> 0", p.repetition_penalty);
  }
  if (!(std::fabs(p.presence_penalty) <= 2.0F)) {
    return bad("presence_penalty", "in [-2, 2]", p.presence_penalty);
  }
  if (!(std::fabs(p.frequency_penalty) <= 2.0F)) {
    return bad("frequency_penalty", "in [-2, 2]", p.frequency_penalty);
  }
  if (p.num_logprobs < 0 || p.num_logprobs > 20) {
    return bad("num_logprobs", "in [0, 20]", p.num_logprobs);
  }
  return absl::OkStatus();
}

Sampler::Sampler(const SamplingParams& params, std::span<const int32_t> prompt_tokens)
    : params_(params), rng_(params.seed) {
  if (params_.repetition_penalty != 1.0F) {
    prompt_tokens_.insert(prompt_tokens.begin(), prompt_tokens.end());
  }
}

double Sampler::NextUniform() {
  // 53 random bits -> [0, 1): identical on every platform, unlike std distributions.
  return static_cast<double>(rng_() >> 11) * (1.0 / 9007199254740992.0);
}

void Sampler::ApplyPenalties(std::vector<float>& logits) const {
  const float rep = params_.repetition_penalty;
  if (rep != 1.0F) {
    auto penalise = [&](int32_t id) {
      float& l = logits[id];
      l = l > 0 ? l / rep : l * rep;
    };
    for (int32_t id : prompt_tokens_) penalise(id);
    for (const auto& [id, count] : output_counts_) {
      if (!prompt_tokens_.contains(id)) penalise(id);
    }
  }
  if (params_.presence_penalty != 0.0F || params_.frequency_penalty != 0.0F) {
    for (const auto& [id, count] : output_counts_) {
      logits[id] -= params_.presence_penalty + params_.frequency_penalty * count;
    }
  }
}

bool Sampler::penalised() const {
  return params_.repetition_penalty != 1.0F || params_.presence_penalty != 0.0F ||
         params_.frequency_penalty != 0.0F;
}

bool Sampler::greedy_only() const {
  return params_.temperature == 0.0F && !penalised() && params_.num_logprobs == 0;
}

void Sampler::Remember(int32_t id) {
  ++output_counts_[id];
  if (params_.repetition_penalty != 1.0F) prompt_tokens_.insert(id);
}

SampledToken Sampler::Record(int32_t id) {
  Remember(id);
  SampledToken out;
  out.id = id;
  return out;
}

SampledToken Sampler::Sample(std::span<const float> logits) {
  SampledToken out;
  if (params_.temperature == 0.0F && !penalised()) {
    out.id = GreedyToken(logits);  // the row as it is: no copy
  } else {
    scratch_.assign(logits.begin(), logits.end());
    ApplyPenalties(scratch_);
    out.id = params_.temperature == 0.0F ? GreedyToken(scratch_) : Draw(scratch_);
  }
  if (params_.num_logprobs > 0) FillLogprobs(logits, &out);
  Remember(out.id);
  return out;
}

int32_t Sampler::Draw(std::vector<float>& logits) {
  const auto vocab = static_cast<int32_t>(logits.size());
  const float inv_t = 1.0F / params_.temperature;
  candidates_.resize(vocab);
  for (int32_t i = 0; i < vocab; ++i) candidates_[i] = {logits[i] * inv_t, i};
  // Sorting is only needed for top-k and top-p; it is done on as short a prefix as
  // possible because a full sort of a 128k vocabulary per token would dominate the step.
  bool sorted = false;
  if (params_.top_k > 0 && params_.top_k < vocab) {
    std::partial_sort(candidates_.begin(), candidates_.begin() + params_.top_k, candidates_.end(),
                      Before<Candidate>);
    candidates_.resize(params_.top_k);
    sorted = true;
  }
  float max_value = -std::numeric_limits<float>::infinity();
  for (const Candidate& c : candidates_) max_value = std::max(max_value, c.value);
  // Probabilities (unnormalised), stored in place of the scaled logits.
  double total = 0;
  for (Candidate& c : candidates_) {
    c.value = std::exp(c.value - max_value);
    total += c.value;
  }
  if (params_.top_p < 1.0F) {
    if (!sorted) SortNucleus(total);
    double mass = 0;
    size_t keep = candidates_.size();
    for (size_t i = 0; i < candidates_.size(); ++i) {
      mass += candidates_[i].value;
      if (mass >= params_.top_p * total) {
        keep = i + 1;
        break;
      }
    }
    candidates_.resize(keep);
  }
  if (params_.min_p > 0.0F) {  // relative to the top token, whose weight is exp(0) = 1
    std::erase_if(candidates_, [&](const Candidate& c) { return c.value < params_.min_p; });
  }
  double kept_total = 0;
  for (const Candidate& c : candidates_) kept_total += c.value;
  const double target = NextUniform() * kept_total;
  double acc = 0;
  for (const Candidate& c : candidates_) {
    acc += c.value;
    if (target < acc) return c.id;
  }
  return candidates_.back().id;
}

void Sampler::SortNucleus(double total) {
  // Every weight is exp(x - max) in (0, 1]; group them by float exponent (a weight in group
  // e is in [2^(e-127), 2^(e-126))) and add up each group's mass. The groups from the top
  // down to the first one that brings the mass to top_p hold the nucleus, and every weight
  // outside them is smaller than every weight inside: moving those to the front and sorting
  // only them gives the same sorted prefix as sorting everything, for thousands of tokens
  // instead of the vocabulary.
  std::array<double, 256> group_mass{};
  auto group_of = [](float w) { return std::bit_cast<uint32_t>(w) >> 23 & 0xFFU; };
  for (const Candidate& c : candidates_) group_mass[group_of(c.value)] += c.value;
  const double want = params_.top_p * total;
  double mass = 0;
  uint32_t lowest = 0;
  for (int g = 255; g >= 0; --g) {
    mass += group_mass[g];
    if (mass >= want) {
      lowest = static_cast<uint32_t>(g);
      break;
    }
  }
  const auto end = std::partition(candidates_.begin(), candidates_.end(),
                                  [&](const Candidate& c) { return group_of(c.value) >= lowest; });
  std::sort(candidates_.begin(), end, Before<Candidate>);
  // The groups' mass was summed in another order than the prefix the caller sums: where the
  // two round differently at the boundary, sort growing prefixes of everything instead.
  double prefix_mass = 0;
  for (auto it = candidates_.begin(); it != end; ++it) prefix_mass += it->value;
  if (prefix_mass >= want) return;
  for (size_t prefix = 256;; prefix *= 4) {
    prefix = std::min(prefix, candidates_.size());
    std::partial_sort(candidates_.begin(), candidates_.begin() + static_cast<ptrdiff_t>(prefix),
                      candidates_.end(), Before<Candidate>);
    double sorted_mass = 0;
    for (size_t i = 0; i < prefix; ++i) sorted_mass += candidates_[i].value;
    if (prefix == candidates_.size() || sorted_mass >= want) return;
  }
}

void Sampler::FillLogprobs(std::span<const float> logits, SampledToken* out) const {
  double max_value = -std::numeric_limits<double>::infinity();
  for (float l : logits) max_value = std::max<double>(max_value, l);
  double total = 0;
  for (float l : logits) total += std::exp(static_cast<double>(l) - max_value);
  const double log_total = std::log(total) + max_value;
  out->logprob = static_cast<float>(logits[out->id] - log_total);
  std::vector<Candidate> top(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) top[i] = {logits[i], static_cast<int32_t>(i)};
  const auto n = std::min<size_t>(params_.num_logprobs, top.size());
  std::partial_sort(top.begin(), top.begin() + static_cast<std::ptrdiff_t>(n), top.end(),
                    Before<Candidate>);
  for (size_t i = 0; i < n; ++i) {
    out->top_logprobs.emplace_back(top[i].id, static_cast<float>(top[i].value - log_total));
  }
}

}  // namespace ringserve::engine
