// Client-side gRPC plumbing shared by ringserve-cli and ringserve-bench: channels,
// deadlines, and the absl::Status view of a call's outcome.
#ifndef RINGSERVE_TOOLS_GRPC_CLIENT_GRPC_CLIENT_H_
#define RINGSERVE_TOOLS_GRPC_CLIENT_GRPC_CLIENT_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "grpcpp/support/status.h"

namespace ringserve::tools {

// An insecure channel to "host:port" (or any gRPC target URI). Channels made with
// different `connection` numbers never share a TCP connection, so a load generator can
// spread its streams over several HTTP/2 connections as real clients would.
std::shared_ptr<grpc::Channel> MakeChannel(const std::string& target, int connection = 0);

// Gives the call a deadline `timeout_s` seconds from now; <= 0 leaves it without one.
void SetTimeout(grpc::ClientContext* context, double timeout_s);

// gRPC and absl share the canonical code numbering; the message carries over.
absl::Status FromGrpcStatus(const grpc::Status& status);

// The canonical upper-case code name, e.g. "UNAVAILABLE".
std::string CodeName(grpc::StatusCode code);

// The worker that served a finished call: `reported` (what the response said) when set,
// else the `x-ringserve-worker` metadata, trailing first; empty when neither has it.
std::string ServingWorker(const grpc::ClientContext& context, const std::string& reported);

}  // namespace ringserve::tools

#endif  // RINGSERVE_TOOLS_GRPC_CLIENT_GRPC_CLIENT_H_
