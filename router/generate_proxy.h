// GenerateProxy: one client's Generate stream relayed from the worker that serves it.
#ifndef RINGSERVE_ROUTER_GENERATE_PROXY_H_
#define RINGSERVE_ROUTER_GENERATE_PROXY_H_

#include "grpcpp/support/server_callback.h"
#include "ringserve/v1/inference.pb.h"
#include "router/proxy_call.h"

namespace ringserve::router {

// Starts relaying a Generate call and returns its reactor, which gRPC owns until OnDone.
// Flow control is one message in flight: read one from the worker, write it to the
// client, read the next when the write is done, so a slow client slows its worker stream
// instead of filling the router's memory. Deadline and cancellation reach the worker (its
// context is derived from the client's; a client cancel also cancels it explicitly); a
// worker that is unreachable before the first message is retried once (RoutePlanner).
grpc::ServerWriteReactor<ringserve::v1::GenerateResponse>* StartGenerateProxy(
    const ProxyEnv& env, grpc::CallbackServerContext* context,
    const ringserve::v1::GenerateRequest* request);

}  // namespace ringserve::router

#endif  // RINGSERVE_ROUTER_GENERATE_PROXY_H_
