#include "worker/engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"

namespace ringserve::engine {
namespace {

int32_t Argmax(std::span<const float> v) {
  int32_t best = 0;
  for (int32_t i = 1; i < static_cast<int32_t>(v.size()); ++i) {
    if (v[i] > v[best]) best = i;
  }
  return best;
}

// Sorted descending by value, ascending id on ties: the order is total, so selection never
// depends on how the sort breaks ties.
template <typename C>
bool Before(const C& a, const C& b) {
  return a.value > b.value || (a.value == b.value && a.id < b.id);
}

}  // namespace

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

SampledToken Sampler::Sample(std::span<const float> logits) {
  SampledToken out;
  scratch_.assign(logits.begin(), logits.end());
  ApplyPenalties(scratch_);
  out.id = params_.temperature == 0.0F ? Argmax(scratch_) : Draw(scratch_);
  if (params_.num_logprobs > 0) FillLogprobs(logits, &out);
  ++output_counts_[out.id];
  if (params_.repetition_penalty != 1.0F) prompt_tokens_.insert(out.id);
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
  // Sort growing prefixes until one holds the top_p mass; the nucleus is usually a few
  // hundred tokens even for large vocabularies.
  for (size_t prefix = 256;; prefix *= 4) {
    prefix = std::min(prefix, candidates_.size());
    std::partial_sort(candidates_.begin(), candidates_.begin() + static_cast<ptrdiff_t>(prefix),
                      candidates_.end(), Before<Candidate>);
    double mass = 0;
    for (size_t i = 0; i < prefix; ++i) mass += candidates_[i].value;
    if (prefix == candidates_.size() || mass >= params_.top_p * total) return;
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
