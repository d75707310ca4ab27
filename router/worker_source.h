// WorkerSource: where the router's worker addresses come from, parsed from --workers.
#ifndef RINGSERVE_ROUTER_WORKER_SOURCE_H_
#define RINGSERVE_ROUTER_WORKER_SOURCE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace ringserve::router {

// Either a static list ("host:port,host:port") or a DNS name re-resolved periodically
// ("dns:NAME:PORT", e.g. a Kubernetes headless Service: one A/AAAA record per ready pod).
// Thread: any; Resolve() blocks in getaddrinfo, so Membership calls it on its own thread.
class WorkerSource {
 public:
  // INVALID_ARGUMENT naming the bad entry: an empty list, an entry without a port, a port
  // outside [1, 65535].
  static absl::StatusOr<WorkerSource> Parse(const std::string& spec);

  bool is_dns() const { return !dns_name_.empty(); }

  // The current worker addresses as "host:port" (IPv6 as "[addr]:port"), sorted and
  // without duplicates. A static list returns itself; DNS returns every address the name
  // resolves to now, or UNAVAILABLE when resolution fails (the caller keeps the last
  // good list).
  absl::StatusOr<std::vector<std::string>> Resolve() const;

 private:
  std::vector<std::string> static_addresses_;
  std::string dns_name_;
  int dns_port_ = 0;
};

}  // namespace ringserve::router

#endif  // RINGSERVE_ROUTER_WORKER_SOURCE_H_
