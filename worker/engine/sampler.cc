#include "worker/engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string_view>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/check.h"
#include "kernels/cpu/cpu_sampling.h"

namespace ringserve::engine {

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
  if (p.num_logprobs < 0 || p.num_logprobs > kernels::kMaxTopLogprobs) {
    return bad("num_logprobs", absl::StrCat("in [0, ", kernels::kMaxTopLogprobs, "]"),
               p.num_logprobs);
  }
  if (p.logit_bias.size() > static_cast<size_t>(kMaxLogitBias)) {
    return absl::InvalidArgumentError(absl::StrCat("logit_bias: at most ", kMaxLogitBias,
                                                   " tokens (got ", p.logit_bias.size(), ")"));
  }
  absl::flat_hash_set<int32_t> biased;
  for (const auto& [token, bias] : p.logit_bias) {
    if (!(std::fabs(bias) <= kMaxLogitBiasValue)) {
      return absl::InvalidArgumentError(absl::StrCat("logit_bias: the bias of token ", token,
                                                     " must be in [-100, 100] (got ", bias, ")"));
    }
    if (!biased.insert(token).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("logit_bias: token ", token, " appears more than once"));
    }
  }
  return absl::OkStatus();
}

kernels::PenaltyEntry& Sampler::PenaltyBook::Penalised(int32_t id) {
  const auto [it, added] = index.try_emplace(id, static_cast<int32_t>(entries.size()));
  if (added) entries.push_back({.token = id, .count = 0});
  return entries[static_cast<size_t>(it->second)];
}

kernels::PenaltyEntry& Sampler::PenaltyBook::Biased(int32_t id) {
  const bool seen = index.contains(id);
  kernels::PenaltyEntry& entry = Penalised(id);
  if (!seen) entry.count = kernels::kBiasOnly;
  return entry;
}

// Gives the suppressed tokens their own bias back, and drops the entries left with nothing
// to apply (seen nowhere, no bias), which every later step would otherwise upload.
void Sampler::PenaltyBook::EndSuppression() {
  for (const auto& [token, bias] : suppressed) Penalised(token).bias = bias;
  suppressed.clear();
  std::erase_if(entries, [](const kernels::PenaltyEntry& e) {
    return e.count == kernels::kBiasOnly && e.bias == 0.0F;
  });
  index.clear();
  for (size_t i = 0; i < entries.size(); ++i) {
    index[entries[i].token] = static_cast<int32_t>(i);
  }
}

void Sampler::PenaltyBook::Remember(int32_t id) {
  if (++num_finished == suppress_until) EndSuppression();
  if (!counts_output) return;
  kernels::PenaltyEntry& entry = Penalised(id);
  entry.count = std::max(entry.count, 0) + 1;  // a bias-only token is now seen
}

Sampler::Sampler(const SamplingParams& params, std::span<const int32_t> prompt_tokens)
    : params_(params), rng_(params.seed) {
  book_.counts_output = params_.repetition_penalty != 1.0F || params_.presence_penalty != 0.0F ||
                        params_.frequency_penalty != 0.0F;
  if (params_.repetition_penalty != 1.0F) {
    for (const int32_t id : prompt_tokens) book_.Penalised(id);
  }
  for (const auto& [token, bias] : params_.logit_bias) {
    if (bias != 0.0F) book_.Biased(token).bias = bias;
  }
}

double Sampler::NextUniform() {
  // 53 random bits -> [0, 1): identical on every platform, unlike std distributions.
  return static_cast<double>(rng_() >> 11) * (1.0 / 9007199254740992.0);
}

void Sampler::Constrain(grammar::TokenConstraint constraint) {
  RS_CHECK(!constraint_ && book_.num_finished == 0);
  constraint_.emplace(std::move(constraint));
}

void Sampler::SuppressUntil(std::span<const int32_t> ids, int32_t num_tokens) {
  RS_CHECK(book_.suppress_until == 0);
  if (num_tokens <= book_.num_finished) return;
  book_.suppress_until = num_tokens;
  for (const int32_t id : ids) {
    kernels::PenaltyEntry& entry = book_.Biased(id);
    if (entry.bias == -std::numeric_limits<float>::infinity()) continue;  // listed twice
    book_.suppressed.emplace_back(id, entry.bias);
    entry.bias = -std::numeric_limits<float>::infinity();
  }
}

kernels::RowSampling Sampler::Plan(std::vector<kernels::PenaltyEntry>& penalties, size_t capacity,
                                   int32_t ahead, int32_t assumed) {
  if (ahead == 0) {
    planned_.clear();
    num_planned_finished_ = 0;
  }
  RS_CHECK(ahead >= 0 && static_cast<size_t>(ahead) == planned_.size() &&
           num_planned_finished_ == 0);
  RS_CHECK(ahead == 0 || !constraint_);
  // The penalties of a token planned ahead are those the book will hold once the tokens
  // before it are the drafts assumed for them.
  if (ahead == 1) ahead_book_ = book_;
  if (ahead >= 1) ahead_book_.Remember(assumed);
  const std::vector<kernels::PenaltyEntry>& entries =
      ahead == 0 ? book_.entries : ahead_book_.entries;
  double uniform = 0.0;
  if (params_.temperature > 0.0F) {
    while (draws_.size() <= static_cast<size_t>(ahead)) draws_.push_back(NextUniform());
    uniform = draws_[static_cast<size_t>(ahead)];
  }
  PlannedRow& row = planned_.emplace_back();
  row.chain = {.temperature = params_.temperature,
               .top_k = params_.top_k,
               .top_p = params_.top_p,
               .min_p = params_.min_p,
               .repetition_penalty = params_.repetition_penalty,
               .presence_penalty = params_.presence_penalty,
               .frequency_penalty = params_.frequency_penalty,
               .uniform = uniform};
  if (constraint_ && constraint_->active()) {
    row.host_pick = true;  // the mask needs the text so far, which only the host has
  } else if (!entries.empty()) {
    if (penalties.size() + entries.size() <= capacity) {
      row.chain.penalty_begin = static_cast<int32_t>(penalties.size());
      penalties.insert(penalties.end(), entries.begin(), entries.end());
      row.chain.penalty_end = static_cast<int32_t>(penalties.size());
    } else {
      row.host_pick = true;
    }
  }
  return row.chain;
}

SampledToken Sampler::Finish(int32_t device_id, std::span<const float> logits,
                             const kernels::RowLogprobs* logprobs) {
  RS_CHECK(num_planned_finished_ < planned_.size());
  const PlannedRow& row = planned_[num_planned_finished_++];
  if (params_.temperature > 0.0F) draws_.pop_front();
  SampledToken out;
  out.id = device_id;
  if (row.host_pick) {
    scratch_.assign(logits.begin(), logits.end());
    kernels::cpu::PenalizeRow(scratch_, row.chain, book_.entries);
    if (constraint_) constraint_->Mask(scratch_);
    out.id = kernels::cpu::SampleRow(scratch_, row.chain);
  }
  if (params_.num_logprobs > 0) {
    RS_CHECK(logprobs != nullptr);
    FillLogprobs(*logprobs, logits, row.host_pick, &out);
  }
  book_.Remember(out.id);
  if (constraint_) constraint_->Accept(out.id);
  return out;
}

SampledToken Sampler::Sample(std::span<const float> logits) {
  std::vector<kernels::PenaltyEntry> none;
  const kernels::RowSampling chain = Plan(none, 0);  // penalties, if any, on the host
  const int32_t id = needs_logits() ? -1 : kernels::cpu::SampleRow(logits, chain);
  kernels::RowLogprobs logprobs;
  if (params_.num_logprobs > 0) logprobs = kernels::cpu::LogprobRow(logits, id);
  return Finish(id, logits, &logprobs);
}

void Sampler::FillLogprobs(const kernels::RowLogprobs& logprobs, std::span<const float> logits,
                           bool host_picked, SampledToken* out) const {
  // A token the host picked (penalties left to it) is not the one the device scored.
  out->logprob = host_picked ? kernels::Sub(logits[out->id], logprobs.log_total) : logprobs.chosen;
  for (int k = 0; k < std::min(params_.num_logprobs, kernels::kMaxTopLogprobs); ++k) {
    if (logprobs.top_ids[k] < 0) break;
    out->top_logprobs.emplace_back(logprobs.top_ids[k], logprobs.top_logprobs[k]);
  }
}

}  // namespace ringserve::engine
