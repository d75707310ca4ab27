// Where absl::Status (inside ringserve) meets grpc::Status (on the wire).
#ifndef RINGSERVE_COMMON_GRPC_GRPC_STATUS_H_
#define RINGSERVE_COMMON_GRPC_GRPC_STATUS_H_

#include <string>

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace ringserve {

// The canonical upper-case name ("OK", "UNAVAILABLE", ...), for metrics labels and logs.
std::string StatusCodeName(grpc::StatusCode code);

// absl and gRPC share the canonical code numbering; the message carries over.
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace ringserve

#endif  // RINGSERVE_COMMON_GRPC_GRPC_STATUS_H_
