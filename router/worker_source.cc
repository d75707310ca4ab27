#include "router/worker_source.h"

#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <memory>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace ringserve::router {
namespace {

constexpr char kDnsPrefix[] = "dns:";

absl::StatusOr<int> ParsePort(const std::string& entry, const std::string& port_text) {
  int port = 0;
  if (!absl::SimpleAtoi(port_text, &port) || port < 1 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("--workers: bad port in '", entry, "' (want host:port, port 1..65535)"));
  }
  return port;
}

// Splits "host:port" or "[v6]:port" at the last ':'.
absl::Status SplitHostPort(const std::string& entry, std::string* host, int* port) {
  const size_t colon = entry.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return absl::InvalidArgumentError(absl::StrCat("--workers: '", entry, "' is not host:port"));
  }
  *host = entry.substr(0, colon);
  auto parsed = ParsePort(entry, entry.substr(colon + 1));
  if (!parsed.ok()) return parsed.status();
  *port = *parsed;
  return absl::OkStatus();
}

void SortUnique(std::vector<std::string>* addresses) {
  std::sort(addresses->begin(), addresses->end());
  addresses->erase(std::unique(addresses->begin(), addresses->end()), addresses->end());
}

struct AddrInfoDeleter {
  void operator()(addrinfo* info) const { freeaddrinfo(info); }
};

}  // namespace

absl::StatusOr<WorkerSource> WorkerSource::Parse(const std::string& spec) {
  WorkerSource source;
  // Debian's Abseil has its own string_view type, hence absl::string_view here.
  absl::string_view rest = spec;
  if (absl::ConsumePrefix(&rest, kDnsPrefix)) {
    const std::string entry(rest);
    std::string host;
    int port = 0;
    if (absl::Status status = SplitHostPort(entry, &host, &port); !status.ok()) return status;
    source.dns_name_ = host;
    source.dns_port_ = port;
    return source;
  }
  for (absl::string_view piece : absl::StrSplit(spec, ',', absl::SkipWhitespace())) {
    const std::string entry(absl::StripAsciiWhitespace(piece));
    std::string host;
    int port = 0;
    if (absl::Status status = SplitHostPort(entry, &host, &port); !status.ok()) return status;
    source.static_addresses_.push_back(entry);
  }
  if (source.static_addresses_.empty()) {
    return absl::InvalidArgumentError(
        "--workers: no workers given (want host:port,host:port or dns:NAME:PORT)");
  }
  SortUnique(&source.static_addresses_);
  return source;
}

absl::StatusOr<std::vector<std::string>> WorkerSource::Resolve() const {
  if (!is_dns()) return static_addresses_;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* raw = nullptr;
  const int rc = getaddrinfo(dns_name_.c_str(), nullptr, &hints, &raw);
  std::unique_ptr<addrinfo, AddrInfoDeleter> result(raw);
  if (rc != 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot resolve ", dns_name_, ": ", gai_strerror(rc)));
  }
  std::vector<std::string> addresses;
  for (const addrinfo* info = result.get(); info != nullptr; info = info->ai_next) {
    char host[NI_MAXHOST];
    if (getnameinfo(info->ai_addr, info->ai_addrlen, host, sizeof(host), nullptr, 0,
                    NI_NUMERICHOST) != 0) {
      continue;
    }
    const bool v6 = info->ai_family == AF_INET6;
    addresses.push_back(absl::StrCat(v6 ? "[" : "", host, v6 ? "]" : "", ":", dns_port_));
  }
  SortUnique(&addresses);
  return addresses;
}

}  // namespace ringserve::router
