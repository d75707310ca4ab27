#include "worker/server/step_window.h"

#include <algorithm>

namespace ringserve::server {

void StepWindow::Add(const engine::StepRecord& step) {
  std::lock_guard lock(mu_);
  steps_.push_back(step);
  Trim(step.start);
}

void StepWindow::Trim(absl::Time now) {
  while (!steps_.empty() && steps_.front().start < now - window_) steps_.pop_front();
}

void StepWindow::Summarize(absl::Time now, ringserve::v1::BatchStats* out) {
  std::lock_guard lock(mu_);
  Trim(now);
  const double window_s = absl::ToDoubleSeconds(window_);
  out->set_window_s(window_s);
  out->set_steps(static_cast<int64_t>(steps_.size()));
  if (steps_.empty()) return;
  double seqs = 0, tokens = 0, seconds = 0, prefill = 0, decode = 0;
  int32_t max_seqs = 0;
  for (const engine::StepRecord& s : steps_) {
    seqs += s.num_seqs;
    tokens += s.num_tokens;
    seconds += s.step_seconds;
    prefill += s.num_tokens - s.num_decode_seqs - s.num_drafts;
    decode += s.num_sampled;
    max_seqs = std::max(max_seqs, s.num_seqs);
  }
  const auto n = static_cast<double>(steps_.size());
  out->set_mean_sequences(seqs / n);
  out->set_max_sequences(max_seqs);
  out->set_mean_tokens(tokens / n);
  out->set_mean_step_ms(1e3 * seconds / n);
  // Rates over the span the window actually covers (a fresh worker has a shorter one).
  const double span =
      std::max(1e-3, std::min(window_s, absl::ToDoubleSeconds(now - steps_.front().start)));
  out->set_prefill_tokens_per_s(prefill / span);
  out->set_generated_tokens_per_s(decode / span);
}

}  // namespace ringserve::server
