// `ringserve-run bench`, in two halves that bench_command.cc runs in turn on one model: the
// step bench (bench_steps.cc: the model's own decode and prefill steps, once per attention
// kernel asked for) and the generator runs (bench_generator.cc: P sequences at a time
// through the generator, and on the CPU the machine's own limits).
#ifndef RINGSERVE_TOOLS_RINGSERVE_RUN_BENCH_H_
#define RINGSERVE_TOOLS_RINGSERVE_RUN_BENCH_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "kernels/backend.h"
#include "nlohmann/json.hpp"
#include "tools/common/model_setup.h"
#include "tools/common/speculation_flags.h"
#include "tools/ringserve-run/step_bench.h"
#include "worker/engine/generator.h"
#include "worker/model/llama_model.h"

namespace ringserve::tools {

struct BenchFlags {
  ModelFlags model;
  std::string parallel = "1,2,4,8,16,32";
  int prompt_tokens = 128;
  int gen_tokens = 32;
  bool json = false;
  bool roofline = true;
  int shared_prefix = 0;
  std::string decode_batch;  // step bench: comma-separated batch sizes
  int prefill_tokens = 0;    // step bench: prefill length (0 = none)
  StepBenchOptions steps;
  std::string step_attention;  // step bench: comma-separated attention kernels to compare
  // Step bench: the products alone again with MatMul's algorithm chosen for each of these
  // row counts (comma-separated; CUDA), into report["products_by_algo_rows"].
  std::string product_algo_rows;
  std::vector<int> product_algo_rows_list;  // parsed
  double kv_fraction = 0;        // > 0: size the KV pool as the worker does, from free memory
  SpeculationFlags speculation;  // the generator runs' drafts
  // Every request's and decode step's sampling (greedy by default).
  double temperature = 0;
  int top_k = 0;
  double top_p = 1;
  int logprobs = 0;  // alternatives every request and decode step reports (0 = none)
  // The generator runs embed their prompts instead (JobRequest::embed): nothing decodes, and
  // each run reports embeddings_per_s.
  bool embed = false;
  // Request i of a run uses LoRA adapter i % adapters (the first --lora adapters); 0: none.
  // The step bench's sequences name slots, so it takes no more than the model has.
  int adapters = 0;
  // Set once the model is open: --lora's names, and the adapters beyond the model's slots.
  std::vector<std::string> adapter_names;
  std::vector<std::shared_ptr<const model::LoraAdapter>> host_adapters;
};

// The step bench into report["steps"], or with --step-attention once per kernel listed into
// report["steps_by_attention"][name] (the first also into "steps"). Every kernel listed is
// parsed and set before any is timed, so a refusal (INVALID_ARGUMENT for a bad name,
// FAILED_PRECONDITION for a kernel the backend lacks) costs no bench time; the backend's own
// kernel is set again at the end, for the generator runs.
absl::Status RunStepBenches(model::LlamaModel& model, kernels::Backend& backend,
                            const BenchFlags& flags, nlohmann::json& report);
// The step bench's lines of the text output.
void PrintStepBenches(const nlohmann::json& report);

// The generator runs into report["runs"]: a warm-up at P = 1, one run per parallelism, and
// on the CPU (unless --roofline=false) the machine's limits beside a P = 1 run into
// report["roofline"].
// The generator options the flags ask for (its drafts).
engine::GeneratorOptions GeneratorOptionsFor(const BenchFlags& flags);

absl::Status RunGeneratorRuns(std::unique_ptr<model::LlamaModel> model, const BenchFlags& flags,
                              const std::vector<int>& parallel, nlohmann::json& report);
// The generator runs' table and roofline lines of the text output.
void PrintGeneratorRuns(const nlohmann::json& report);

}  // namespace ringserve::tools

#endif  // RINGSERVE_TOOLS_RINGSERVE_RUN_BENCH_H_
