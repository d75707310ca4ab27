// The listening address of ringserve's servers, checked before gRPC sees it: gRPC takes a
// port above 65535 modulo 65536 (--port 70000 listened on 4464) and answers a negative one
// with a resolver error that names neither the port nor the flag.
#ifndef RINGSERVE_COMMON_GRPC_LISTEN_ADDRESS_H_
#define RINGSERVE_COMMON_GRPC_LISTEN_ADDRESS_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "grpcpp/server_builder.h"

namespace ringserve {

// INVALID_ARGUMENT when `address` ("host:port", "[v6]:port") ends in a port number outside
// [0, 65535] (0 picks a free port). Other forms (unix:PATH) are left to gRPC.
absl::Status CheckListenAddress(absl::string_view address);

// Makes the builder's listening ports exclusive. gRPC sets SO_REUSEPORT by default, so a
// second worker (or router) started on a port in use bound it too, reported success, and
// the kernel split new connections between the two processes; now it fails to listen.
void ListenExclusively(grpc::ServerBuilder& builder);

}  // namespace ringserve

#endif  // RINGSERVE_COMMON_GRPC_LISTEN_ADDRESS_H_
