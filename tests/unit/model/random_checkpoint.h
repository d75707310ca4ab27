// In-memory checkpoints of random f32 weights (canonical names, checkpoint.h) for the model
// tests: the same config and seed give the same values.
#ifndef RINGSERVE_TESTS_UNIT_MODEL_RANDOM_CHECKPOINT_H_
#define RINGSERVE_TESTS_UNIT_MODEL_RANDOM_CHECKPOINT_H_

#include <cstdint>
#include <memory>
#include <string>

#include "worker/model/checkpoint.h"
#include "worker/model/model_config.h"

namespace ringserve::model {

// Every tensor `config` needs: norms near 1, matrices uniform in ranges that keep a few
// layers' activations O(1), Qwen2's large biases.
std::unique_ptr<Checkpoint> MakeCheckpoint(const ModelConfig& config, uint32_t seed = 1234);

// A copy of `from`'s tensor `name` (f32) that the caller may change, owned by `to` and
// replacing any tensor of that name there.
float* CopyTensor(const Checkpoint& from, const std::string& name, Checkpoint* to);

}  // namespace ringserve::model

#endif  // RINGSERVE_TESTS_UNIT_MODEL_RANDOM_CHECKPOINT_H_
