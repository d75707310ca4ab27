// ringserve-run: the offline runner. Generates for a batch of prompts, or with `bench`
// measures prefill and decode throughput against the machine's own limits.
#include <cstring>
#include <iostream>

#include "tools/ringserve-run/commands.h"

int main(int argc, char** argv) {
  const bool bench = argc > 1 && std::strcmp(argv[1], "bench") == 0;
  const absl::Status status = bench ? ringserve::tools::RunBench(argc - 1, argv + 1)
                                    : ringserve::tools::RunGenerate(argc, argv);
  if (!status.ok()) {
    std::cerr << "ringserve-run: " << status.message() << "\n";
    return status.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
  }
  return 0;
}
