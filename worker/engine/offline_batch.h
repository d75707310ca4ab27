// The offline runner's batching loop: every request's prompt is prefilled in shared forward
// passes (chunked under max_batch_tokens), then each pass decodes one token for every live
// sequence. Each request owns a fixed range of KV blocks sized for its prompt plus
// max_tokens, so nothing is evicted; the serving path uses the generator instead.
#ifndef RINGSERVE_WORKER_ENGINE_OFFLINE_BATCH_H_
#define RINGSERVE_WORKER_ENGINE_OFFLINE_BATCH_H_

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/engine/sampler.h"
#include "worker/model/llama_model.h"

namespace ringserve::engine {

struct OfflineRequest {
  std::vector<int32_t> prompt_ids;
  SamplingParams sampling;
  int max_tokens = 16;
  std::vector<int32_t> stop_ids;  // generation ends after emitting one of these
};

struct OfflineResult {
  std::vector<int32_t> generated_ids;
  std::string finish_reason;  // "length" or "stop"
};

struct OfflineTimings {
  double prefill_seconds = 0;
  double decode_seconds = 0;
  double forward_seconds = 0;  // inside LlamaModel::Forward
  int64_t prefill_tokens = 0;
  int64_t decode_tokens = 0;
  int64_t decode_steps = 0;
};

// KV blocks `requests` need with the layout RunOfflineBatch uses.
int64_t OfflineKvBlocks(std::span<const OfflineRequest> requests, int block_size);

// INVALID_ARGUMENT when a request's prompt plus max_tokens exceeds the model's context.
absl::StatusOr<std::vector<OfflineResult>> RunOfflineBatch(model::LlamaModel& model,
                                                           std::span<const OfflineRequest> requests,
                                                           OfflineTimings* timings = nullptr);

}  // namespace ringserve::engine

#endif  // RINGSERVE_WORKER_ENGINE_OFFLINE_BATCH_H_
