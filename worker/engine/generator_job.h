// Generator::Job, the engine thread's state for one admitted request. Private to the
// generator's sources (generator.cc runs the loop, generator_jobs.cc admits, samples for
// and finishes jobs).
#ifndef RINGSERVE_WORKER_ENGINE_GENERATOR_JOB_H_
#define RINGSERVE_WORKER_ENGINE_GENERATOR_JOB_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "absl/time/time.h"
#include "worker/engine/generator.h"
#include "worker/engine/sampler.h"
#include "worker/engine/stop_matcher.h"
#include "worker/tokenizer/stream_decoder.h"

namespace ringserve::engine {

struct Generator::Job {
  uint64_t id = 0;
  JobRequest request;
  std::shared_ptr<JobChannel> channel;
  absl::Time submitted;
  std::optional<absl::Time> first_scheduled;
  std::optional<absl::Time> first_token;
  SchedSeq seq;
  bool registered = false;  // known to the scheduler
  Session* session = nullptr;
  std::optional<Sampler> sampler;
  std::optional<tokenizer::StreamDecoder> decoder;
  std::optional<StopMatcher> stop;
  int32_t prompt_tokens = 0;
  int32_t cached_tokens = 0;
  int32_t max_new_tokens = 0;
  int32_t generated = 0;
  int32_t scored = 0;            // input tokens scored (prompt_logprobs) so far
  int32_t draft_limit = 0;       // most drafts the next step may verify (AdaptDraftLimit)
  std::vector<float> embedding;  // JobRequest::embed: set by the pass that samples its input
};

}  // namespace ringserve::engine

#endif  // RINGSERVE_WORKER_ENGINE_GENERATOR_JOB_H_
