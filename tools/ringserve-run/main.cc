// ringserve-run: the offline runner. Generates for a batch of prompts; `bench` measures
// prefill and decode throughput against the machine's own limits; `session` runs a script
// of multi-turn conversations, forks and closes through the generator; `logits` writes the
// model's logits for comparison with other implementations.
#include <cstring>
#include <iostream>

#include "tools/ringserve-run/commands.h"

int main(int argc, char** argv) {
  const char* mode = argc > 1 ? argv[1] : "";
  absl::Status status;
  if (std::strcmp(mode, "bench") == 0) {
    status = ringserve::tools::RunBench(argc - 1, argv + 1);
  } else if (std::strcmp(mode, "session") == 0) {
    status = ringserve::tools::RunSession(argc - 1, argv + 1);
  } else if (std::strcmp(mode, "logits") == 0) {
    status = ringserve::tools::RunLogits(argc - 1, argv + 1);
  } else {
    status = ringserve::tools::RunGenerate(argc, argv);
  }
  if (!status.ok()) {
    std::cerr << "ringserve-run: " << status.message() << "\n";
    return status.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
  }
  return 0;
}
