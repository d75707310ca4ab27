// `ringserve-run bench --decode-batch B,... --context C --prefill-tokens N`: the model's own
// step times, measured on LlamaModel directly (no generator, no sampling), with the bytes
// and FLOPs each step must move or compute, so a run reports achieved GB/s and TFLOP/s
// that deploy/gpu/check.sh sets against the device's measured ceilings.
#ifndef RINGSERVE_TOOLS_RINGSERVE_RUN_STEP_BENCH_H_
#define RINGSERVE_TOOLS_RINGSERVE_RUN_STEP_BENCH_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "worker/model/llama_model.h"

namespace ringserve::tools {

struct StepBenchOptions {
  std::vector<int> decode_batches;  // empty: no decode measurement
  int context_tokens = 1024;        // KV length of every sequence when timing starts
  int warmup_steps = 4;
  int timed_steps = 32;
  int prefill_tokens = 0;  // 0: no prefill measurement
  int prefill_reps = 3;    // timed prefills (after one warm-up)
  uint64_t seed = 0;       // token ids are random: the work does not depend on them
  // Times each decode batch that ran as graph replays again op by op (A/B).
  bool compare_eager = false;
  // Every decode row's sampling chain (the draw varies by row and step); greedy by default.
  kernels::RowSampling sampling;
  bool logprobs = false;  // every decode row asks for its logprobs too
  // Decode and prefill sequence i run with LoRA adapter i % adapters; 0: none.
  int adapters = 0;
};

// KV blocks RunStepBench needs with `block_size`-token blocks.
int64_t StepBenchKvBlocks(const StepBenchOptions& options, int block_size);

// Fills every decode sequence's context with one prefill, then for each batch size times
// warmup_steps + timed_steps decode steps (one token per sequence, each row's token picked
// on the device under options.sampling, as a decode step of the engine) starting at
// position context_tokens; then times
// prefill_reps prefills of prefill_tokens tokens of one new sequence (chunked by
// max_batch_tokens). Uses blocks [0, StepBenchKvBlocks) and leaves garbage in them.
// Returns {"decode": [...], "prefill": {...}} with times, bytes and FLOPs; each decode entry
// says which path its timed steps took ("path": "graph", "eager" or "mixed").
absl::StatusOr<nlohmann::json> RunStepBench(model::LlamaModel& model,
                                            const StepBenchOptions& options);

}  // namespace ringserve::tools

#endif  // RINGSERVE_TOOLS_RINGSERVE_RUN_STEP_BENCH_H_
