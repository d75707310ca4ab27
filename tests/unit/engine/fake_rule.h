// What the generator tests over the fake model share: the model's rule (the next token a
// function of the whole history), prompts for it, and running one job to its end.
#ifndef RINGSERVE_TESTS_UNIT_ENGINE_FAKE_RULE_H_
#define RINGSERVE_TESTS_UNIT_ENGINE_FAKE_RULE_H_

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/engine/generator.h"

namespace ringserve::engine::testing {

// The fake model's vocabulary (FakeModelRunnerOptions::vocab_size) in these tests.
inline constexpr int32_t kRuleVocab = 64;

// The fake model's rule (FakeModelRunnerOptions::next_token): never 0 or 1.
inline int32_t RuleNextToken(std::span<const int32_t> history) {
  int64_t h = static_cast<int64_t>(history.size());
  for (int32_t t : history) h = (h * 31 + t) % 1000003;
  return static_cast<int32_t>(2 + h % (kRuleVocab - 2));
}

// n tokens in [2, kRuleVocab), a different run for each salt.
inline std::vector<int32_t> RulePrompt(int n, int32_t salt) {
  std::vector<int32_t> p(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    p[static_cast<size_t>(i)] = 2 + (salt * 13 + i * 7) % (kRuleVocab - 2);
  }
  return p;
}

inline std::vector<int32_t> Ids(const JobEvent& e) {
  std::vector<int32_t> ids;
  for (const GeneratedToken& t : e.tokens) ids.push_back(t.id);
  return ids;
}

// Submits `request` and collects its events; a refused submission as a finished event with
// the refusal.
inline JobEvent RunJob(Generator& generator, JobRequest request) {
  absl::StatusOr<JobHandle> handle = generator.Submit(std::move(request));
  if (!handle.ok()) {
    JobEvent refused;
    refused.finished = true;
    refused.status = handle.status();
    return refused;
  }
  return handle->Collect();
}

}  // namespace ringserve::engine::testing

#endif  // RINGSERVE_TESTS_UNIT_ENGINE_FAKE_RULE_H_
