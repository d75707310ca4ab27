#ifndef RINGSERVE_TOOLS_RINGSERVE_RUN_COMMANDS_H_
#define RINGSERVE_TOOLS_RINGSERVE_RUN_COMMANDS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tools/common/model_setup.h"

namespace ringserve::tools {

// argv[0] is the program; flags start at argv[1] (RunGenerate) or argv[2] (RunBench,
// RunSession, RunLogits).
absl::Status RunGenerate(int argc, char** argv);
absl::Status RunBench(int argc, char** argv);
absl::Status RunSession(int argc, char** argv);
// make_backend, where given, replaces kernels::CreateBackend (ModelFlags::make_backend).
absl::Status RunLogits(int argc, char** argv, const BackendFactory& make_backend = nullptr);

// "1,450,29871" (commas or spaces) -> token ids, each in [0, vocab_size);
// INVALID_ARGUMENT naming --prompt-ids otherwise.
absl::StatusOr<std::vector<int32_t>> ParseTokenIds(const std::string& text, int vocab_size);

}  // namespace ringserve::tools

#endif  // RINGSERVE_TOOLS_RINGSERVE_RUN_COMMANDS_H_
