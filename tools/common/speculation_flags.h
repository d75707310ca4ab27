// --speculate and its companions, shared by ringserve-worker and ringserve-run: speculative
// decoding by prompt lookup (engine::GeneratorOptions::speculate_tokens).
#ifndef RINGSERVE_TOOLS_COMMON_SPECULATION_FLAGS_H_
#define RINGSERVE_TOOLS_COMMON_SPECULATION_FLAGS_H_

#include <cstdint>

#include "absl/status/status.h"
#include "tools/common/arg_parser.h"
#include "worker/engine/generator.h"

namespace ringserve::tools {

struct SpeculationFlags {
  int tokens = 0;
  int ngram_max = 3;
  int ngram_min = 1;
  int max_seqs = 16;

  void Register(ArgParser& parser);
  // INVALID_ARGUMENT naming the flag when --speculate-ngram-min exceeds the max.
  absl::Status Validate() const;
  // Sets the generator's speculate_* options.
  void Apply(engine::GeneratorOptions& options) const;
};

}  // namespace ringserve::tools

#endif  // RINGSERVE_TOOLS_COMMON_SPECULATION_FLAGS_H_
