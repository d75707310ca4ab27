#include "common/grpc/grpc_status.h"

namespace ringserve {

std::string StatusCodeName(grpc::StatusCode code) {
  // absl and gRPC number the canonical codes alike, and absl names them ("UNAVAILABLE").
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
}

grpc::Status ToGrpcStatus(const absl::Status& status) {
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

}  // namespace ringserve
