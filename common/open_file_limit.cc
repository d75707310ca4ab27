#include "common/open_file_limit.h"

#include <sys/resource.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/log.h"

namespace ringserve {

absl::StatusOr<uint64_t> RaiseOpenFileLimit(uint64_t cap) {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) {
    return absl::InternalError(absl::StrCat("getrlimit(RLIMIT_NOFILE): ", std::strerror(errno)));
  }
  const uint64_t hard =
      limit.rlim_max == RLIM_INFINITY ? cap : static_cast<uint64_t>(limit.rlim_max);
  const uint64_t wanted = std::min(hard, cap);
  if (limit.rlim_cur != RLIM_INFINITY && static_cast<uint64_t>(limit.rlim_cur) < wanted) {
    limit.rlim_cur = static_cast<rlim_t>(wanted);
    if (setrlimit(RLIMIT_NOFILE, &limit) != 0) {
      return absl::InternalError(
          absl::StrCat("setrlimit(RLIMIT_NOFILE, ", wanted, "): ", std::strerror(errno)));
    }
  }
  return limit.rlim_cur == RLIM_INFINITY ? cap : static_cast<uint64_t>(limit.rlim_cur);
}

void LogOpenFileLimit(std::string_view component) {
  constexpr uint64_t kFewFiles = 4096;
  const absl::StatusOr<uint64_t> limit = RaiseOpenFileLimit();
  if (!limit.ok()) {
    Log(LogLevel::kWarning, component, "cannot raise the open-file limit",
        {{"error", std::string(limit.status().message())}});
  } else if (*limit < kFewFiles) {
    Log(LogLevel::kWarning, component,
        "the open-file limit caps the connections served (raise the hard limit: ulimit -Hn)",
        {{"limit", absl::StrCat(*limit)}});
  }
}

}  // namespace ringserve
