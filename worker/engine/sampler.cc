#include "worker/engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "kernels/cpu/cpu_sampling.h"

namespace ringserve::engine {
namespace {

struct Candidate {
  float value;
  int32_t id;
};

// Sorted descending by value, ascending id on ties: the order is total, so the top
// logprobs never depend on how the sort breaks ties.
bool Before(const Candidate& a, const Candidate& b) {
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
    for (const int32_t id : prompt_tokens) Penalised(id);
  }
}

double Sampler::NextUniform() {
  // 53 random bits -> [0, 1): identical on every platform, unlike std distributions.
  return static_cast<double>(rng_() >> 11) * (1.0 / 9007199254740992.0);
}

bool Sampler::penalised() const {
  return params_.repetition_penalty != 1.0F || params_.presence_penalty != 0.0F ||
         params_.frequency_penalty != 0.0F;
}

kernels::PenaltyEntry& Sampler::Penalised(int32_t id) {
  const auto [it, added] = penalty_index_.try_emplace(id, static_cast<int32_t>(penalties_.size()));
  if (added) penalties_.push_back({.token = id, .count = 0});
  return penalties_[static_cast<size_t>(it->second)];
}

void Sampler::Remember(int32_t id) {
  if (penalised()) ++Penalised(id).count;
}

kernels::RowSampling Sampler::Plan(std::vector<kernels::PenaltyEntry>& penalties, size_t capacity) {
  planned_ = {.temperature = params_.temperature,
              .top_k = params_.top_k,
              .top_p = params_.top_p,
              .min_p = params_.min_p,
              .repetition_penalty = params_.repetition_penalty,
              .presence_penalty = params_.presence_penalty,
              .frequency_penalty = params_.frequency_penalty,
              .uniform = params_.temperature > 0.0F ? NextUniform() : 0.0};
  host_penalties_ = false;
  if (!penalties_.empty()) {
    if (penalties.size() + penalties_.size() <= capacity) {
      planned_.penalty_begin = static_cast<int32_t>(penalties.size());
      penalties.insert(penalties.end(), penalties_.begin(), penalties_.end());
      planned_.penalty_end = static_cast<int32_t>(penalties.size());
    } else {
      host_penalties_ = true;
    }
  }
  return planned_;
}

bool Sampler::needs_logits() const { return host_penalties_ || params_.num_logprobs > 0; }

SampledToken Sampler::Finish(int32_t device_id, std::span<const float> logits) {
  SampledToken out;
  out.id = device_id;
  if (host_penalties_) {
    scratch_.assign(logits.begin(), logits.end());
    kernels::cpu::PenalizeRow(scratch_, planned_, penalties_);
    out.id = kernels::cpu::SampleRow(scratch_, planned_);
  }
  if (params_.num_logprobs > 0) FillLogprobs(logits, &out);
  Remember(out.id);
  return out;
}

SampledToken Sampler::Sample(std::span<const float> logits) {
  std::vector<kernels::PenaltyEntry> none;
  const kernels::RowSampling chain = Plan(none, 0);  // penalties, if any, on the host
  return Finish(host_penalties_ ? -1 : kernels::cpu::SampleRow(logits, chain), logits);
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
  std::partial_sort(top.begin(), top.begin() + static_cast<std::ptrdiff_t>(n), top.end(), Before);
  for (size_t i = 0; i < n; ++i) {
    out->top_logprobs.emplace_back(top[i].id, static_cast<float>(top[i].value - log_total));
  }
}

}  // namespace ringserve::engine
