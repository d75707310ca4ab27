// EmbedScatter: an Embed whose inputs belong on different workers. Each input is placed as a
// Generate of it would be (its own prefix, or its adapter, or the less loaded of two), so an
// input embedded again finds its blocks in that worker's prefix cache whatever batch it comes
// in, and a large batch is computed by several workers at once. Each worker gets one call with
// its inputs (retried once on the next worker if it was unreachable), and the client gets the
// embeddings in its input order when the last call ends; the first failure fails the call and
// cancels the others.
#ifndef RINGSERVE_ROUTER_EMBED_SCATTER_H_
#define RINGSERVE_ROUTER_EMBED_SCATTER_H_

#include "grpcpp/grpcpp.h"
#include "ringserve/v1/inference.grpc.pb.h"
#include "router/proxy_call.h"

namespace ringserve::router {

// Starts the scattered call and returns its reactor (gRPC owns it until OnDone), or returns
// null, having started nothing, when every input goes to one worker (or none is healthy):
// the caller then proxies the call whole.
grpc::ServerUnaryReactor* StartEmbedScatter(const ProxyEnv& env,
                                            grpc::CallbackServerContext* context,
                                            const ringserve::v1::EmbedRequest* request,
                                            ringserve::v1::EmbedResponse* response);

}  // namespace ringserve::router

#endif  // RINGSERVE_ROUTER_EMBED_SCATTER_H_
