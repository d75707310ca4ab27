// Binding a TCP socket to "host:port" the way ringserve's listeners do (SO_REUSEADDR, so a
// restart does not wait out TIME_WAIT; never SO_REUSEPORT, so a port in use is refused).
#ifndef RINGSERVE_COMMON_TCP_BIND_H_
#define RINGSERVE_COMMON_TCP_BIND_H_

#include <string>

#include "absl/status/statusor.h"
#include "common/unique_fd.h"

namespace ringserve {

// A non-blocking, close-on-exec stream socket bound to the first address `host` resolves
// to that accepts the bind (port 0: a free port). UNAVAILABLE naming host:port and why
// (e.g. "Address already in use") when none does.
absl::StatusOr<UniqueFd> BindTcp(const std::string& host, int port);

// The port a bound socket has (the one picked for port 0); 0 when unknown.
int BoundTcpPort(int fd);

}  // namespace ringserve

#endif  // RINGSERVE_COMMON_TCP_BIND_H_
