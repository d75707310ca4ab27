#include "common/check.h"

#include <cstdio>
#include <cstdlib>

namespace ringserve::internal {

void CheckFailed(const char* expr, const char* file, int line, const char* msg) {
  std::fprintf(stderr, "ringserve: check failed at %s:%d: %s%s%s\n", file, line, expr,
               msg != nullptr ? ": " : "", msg != nullptr ? msg : "");
  std::fflush(stderr);
  std::abort();
}

}  // namespace ringserve::internal
