// The router's one meeting point of absl::Status and grpc::Status.
#ifndef RINGSERVE_ROUTER_GRPC_STATUS_H_
#define RINGSERVE_ROUTER_GRPC_STATUS_H_

#include <string>

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace ringserve::router {

// The canonical upper-case name ("OK", "UNAVAILABLE", ...), for metrics labels and logs.
std::string StatusCodeName(grpc::StatusCode code);

// absl and gRPC share the canonical code numbering; the message carries over.
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace ringserve::router

#endif  // RINGSERVE_ROUTER_GRPC_STATUS_H_
