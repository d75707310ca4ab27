// A batching loop of its own, for tests that check the model apart from the generator:
// every request's prompt is prefilled in shared forward passes (chunked under
// max_batch_tokens), then each pass decodes one token for every live sequence. Each request
// owns a fixed range of KV blocks sized for its prompt plus max_tokens, so nothing is
// evicted. Serving and ringserve-run use the generator.
#ifndef RINGSERVE_TESTS_UNIT_MODEL_OFFLINE_BATCH_H_
#define RINGSERVE_TESTS_UNIT_MODEL_OFFLINE_BATCH_H_

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/engine/sampler.h"
#include "worker/model/llama_model.h"

namespace ringserve::model::testing {

struct OfflineRequest {
  std::vector<int32_t> prompt_ids;
  engine::SamplingParams sampling;
  int max_tokens = 16;
  std::vector<int32_t> stop_ids;  // generation ends after emitting one of these
};

struct OfflineResult {
  std::vector<int32_t> generated_ids;
  std::string finish_reason;  // "length" or "stop"
};

// KV blocks `requests` need with the layout RunOfflineBatch uses.
int64_t OfflineKvBlocks(std::span<const OfflineRequest> requests, int block_size);

// INVALID_ARGUMENT when a request's prompt plus max_tokens exceeds the model's context or
// the model's KV pool cannot hold every request at once.
absl::StatusOr<std::vector<OfflineResult>> RunOfflineBatch(
    LlamaModel& model, std::span<const OfflineRequest> requests);

}  // namespace ringserve::model::testing

#endif  // RINGSERVE_TESTS_UNIT_MODEL_OFFLINE_BATCH_H_
