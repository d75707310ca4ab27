// InferenceService: the router's ringserve.v1.Inference, every method a proxy to a worker.
#ifndef RINGSERVE_ROUTER_INFERENCE_SERVICE_H_
#define RINGSERVE_ROUTER_INFERENCE_SERVICE_H_

#include "ringserve/v1/inference.grpc.pb.h"
#include "router/proxy_call.h"

namespace ringserve::router {

// Owner: RouterServer. Thread: gRPC callback threads; holds no state of its own (the
// router keeps no session state: placement comes from the session id alone).
// Placement per method (route.h): Generate with append, Fork and CloseSession go to the
// session's ring owner; Generate without append is placed with bounded loads; calls
// without a session (and Tokenize, GetModelInfo) go to the less loaded of two workers;
// Embed by its first input's prefix, as a Generate without a session.
class InferenceService final : public ringserve::v1::Inference::CallbackService {
 public:
  explicit InferenceService(const ProxyEnv& env) : env_(env) {}

  grpc::ServerWriteReactor<ringserve::v1::GenerateResponse>* Generate(
      grpc::CallbackServerContext* context, const ringserve::v1::GenerateRequest* request) override;
  grpc::ServerUnaryReactor* Fork(grpc::CallbackServerContext* context,
                                 const ringserve::v1::ForkRequest* request,
                                 ringserve::v1::ForkResponse* response) override;
  grpc::ServerUnaryReactor* CloseSession(grpc::CallbackServerContext* context,
                                         const ringserve::v1::CloseSessionRequest* request,
                                         ringserve::v1::CloseSessionResponse* response) override;
  grpc::ServerUnaryReactor* Tokenize(grpc::CallbackServerContext* context,
                                     const ringserve::v1::TokenizeRequest* request,
                                     ringserve::v1::TokenizeResponse* response) override;
  grpc::ServerUnaryReactor* Detokenize(grpc::CallbackServerContext* context,
                                       const ringserve::v1::DetokenizeRequest* request,
                                       ringserve::v1::DetokenizeResponse* response) override;
  grpc::ServerUnaryReactor* GetModelInfo(grpc::CallbackServerContext* context,
                                         const ringserve::v1::GetModelInfoRequest* request,
                                         ringserve::v1::ModelInfo* response) override;
  grpc::ServerUnaryReactor* Embed(grpc::CallbackServerContext* context,
                                  const ringserve::v1::EmbedRequest* request,
                                  ringserve::v1::EmbedResponse* response) override;

 private:
  const ProxyEnv& env_;
};

}  // namespace ringserve::router

#endif  // RINGSERVE_ROUTER_INFERENCE_SERVICE_H_
