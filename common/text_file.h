// Reading small configuration files (certificates, keys, token lists) whole, with errors
// that say which file, what it was for and why it could not be read.
#ifndef RINGSERVE_COMMON_TEXT_FILE_H_
#define RINGSERVE_COMMON_TEXT_FILE_H_

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"

namespace ringserve {

// The whole of `path`. `what` names the file's role in errors ("TLS key"). NOT_FOUND when
// it does not exist, PERMISSION_DENIED when it cannot be opened, INVALID_ARGUMENT when it
// is a directory, empty, or larger than `max_bytes` (these files are kilobytes; a huge one
// is a mistake, not something to load).
absl::StatusOr<std::string> ReadTextFile(const std::string& path, const std::string& what,
                                         size_t max_bytes = 1 << 20);

}  // namespace ringserve

#endif  // RINGSERVE_COMMON_TEXT_FILE_H_
