#ifndef RINGSERVE_TOOLS_RINGSERVE_RUN_COMMANDS_H_
#define RINGSERVE_TOOLS_RINGSERVE_RUN_COMMANDS_H_

#include "absl/status/status.h"

namespace ringserve::tools {

// argv[0] is the program; flags start at argv[1] (RunGenerate) or argv[2] (RunBench,
// RunSession).
absl::Status RunGenerate(int argc, char** argv);
absl::Status RunBench(int argc, char** argv);
absl::Status RunSession(int argc, char** argv);

}  // namespace ringserve::tools

#endif  // RINGSERVE_TOOLS_RINGSERVE_RUN_COMMANDS_H_
