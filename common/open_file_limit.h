// The open-file limit of ringserve's servers and load generator: every client connection
// (an HTTP stream is one) is a file descriptor, and a distribution's default soft limit
// (1024) would stop a router or ringserve-bench near a thousand streams while the hard limit
// allows far more.
#ifndef RINGSERVE_COMMON_OPEN_FILE_LIMIT_H_
#define RINGSERVE_COMMON_OPEN_FILE_LIMIT_H_

#include <cstdint>
#include <string_view>

#include "absl/status/statusor.h"

namespace ringserve {

// Raises the process's soft RLIMIT_NOFILE to its hard limit, capped at `cap` (an unlimited
// hard limit gets `cap`); a soft limit already as high is left alone. Returns the soft limit
// in force afterwards; errors (getrlimit/setrlimit failing) are INTERNAL and leave it as it
// was. Call once in main, before any thread starts.
absl::StatusOr<uint64_t> RaiseOpenFileLimit(uint64_t cap = 1 << 20);

// RaiseOpenFileLimit for a server's main: a failure, or a limit still under 4096 (the hard
// limit's), is logged as a warning under `component`.
void LogOpenFileLimit(std::string_view component);

}  // namespace ringserve

#endif  // RINGSERVE_COMMON_OPEN_FILE_LIMIT_H_
