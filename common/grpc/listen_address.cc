#include "common/grpc/listen_address.h"

#include <cstdint>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace ringserve {

absl::Status CheckListenAddress(absl::string_view address) {
  const size_t colon = address.rfind(':');
  if (colon == absl::string_view::npos) return absl::OkStatus();
  int64_t port = 0;
  if (!absl::SimpleAtoi(address.substr(colon + 1), &port)) return absl::OkStatus();
  if (port < 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot listen on ", address, ": port ", port, " is outside [0, 65535]"));
  }
  return absl::OkStatus();
}

void ListenExclusively(grpc::ServerBuilder& builder) {
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
}

}  // namespace ringserve
