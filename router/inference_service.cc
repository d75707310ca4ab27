#include "router/inference_service.h"

#include "router/embed_scatter.h"
#include "router/generate_proxy.h"
#include "router/route.h"
#include "router/unary_proxy.h"

namespace ringserve::router {

using namespace ringserve::v1;  // NOLINT(build/namespaces): the message types, in one file

grpc::ServerWriteReactor<GenerateResponse>* InferenceService::Generate(
    grpc::CallbackServerContext* context, const GenerateRequest* request) {
  return StartGenerateProxy(env_, context, request);
}

grpc::ServerUnaryReactor* InferenceService::Fork(grpc::CallbackServerContext* context,
                                                 const ForkRequest* request,
                                                 ForkResponse* response) {
  return UnaryProxy<ForkRequest, ForkResponse>::Start(
      env_, "Fork",
      [](const WorkerConn& w, grpc::ClientContext* c, const ForkRequest* q, ForkResponse* r,
         grpc::ClientUnaryReactor* reactor) { w.inference->async()->Fork(c, q, r, reactor); },
      Route::ForSession(request->session_id(), Placement::kSessionOwner), context, request,
      response);
}

grpc::ServerUnaryReactor* InferenceService::CloseSession(grpc::CallbackServerContext* context,
                                                         const CloseSessionRequest* request,
                                                         CloseSessionResponse* response) {
  return UnaryProxy<CloseSessionRequest, CloseSessionResponse>::Start(
      env_, "CloseSession",
      [](const WorkerConn& w, grpc::ClientContext* c, const CloseSessionRequest* q,
         CloseSessionResponse* r, grpc::ClientUnaryReactor* reactor) {
        w.inference->async()->CloseSession(c, q, r, reactor);
      },
      Route::ForSession(request->session_id(), Placement::kSessionOwner), context, request,
      response);
}

grpc::ServerUnaryReactor* InferenceService::Tokenize(grpc::CallbackServerContext* context,
                                                     const TokenizeRequest* request,
                                                     TokenizeResponse* response) {
  return UnaryProxy<TokenizeRequest, TokenizeResponse>::Start(
      env_, "Tokenize",
      [](const WorkerConn& w, grpc::ClientContext* c, const TokenizeRequest* q, TokenizeResponse* r,
         grpc::ClientUnaryReactor* reactor) { w.inference->async()->Tokenize(c, q, r, reactor); },
      Route{}, context, request, response);
}

grpc::ServerUnaryReactor* InferenceService::Detokenize(grpc::CallbackServerContext* context,
                                                       const DetokenizeRequest* request,
                                                       DetokenizeResponse* response) {
  return UnaryProxy<DetokenizeRequest, DetokenizeResponse>::Start(
      env_, "Detokenize",
      [](const WorkerConn& w, grpc::ClientContext* c, const DetokenizeRequest* q,
         DetokenizeResponse* r,
         grpc::ClientUnaryReactor* reactor) { w.inference->async()->Detokenize(c, q, r, reactor); },
      Route{}, context, request, response);
}

grpc::ServerUnaryReactor* InferenceService::GetModelInfo(grpc::CallbackServerContext* context,
                                                         const GetModelInfoRequest* request,
                                                         ModelInfo* response) {
  return UnaryProxy<GetModelInfoRequest, ModelInfo>::Start(
      env_, "GetModelInfo",
      [](const WorkerConn& w, grpc::ClientContext* c, const GetModelInfoRequest* q, ModelInfo* r,
         grpc::ClientUnaryReactor* reactor) {
        w.inference->async()->GetModelInfo(c, q, r, reactor);
      },
      Route{}, context, request, response);
}

grpc::ServerUnaryReactor* InferenceService::Embed(grpc::CallbackServerContext* context,
                                                  const EmbedRequest* request,
                                                  EmbedResponse* response) {
  // Inputs that belong on several workers go to each of them at once.
  if (grpc::ServerUnaryReactor* scatter = StartEmbedScatter(env_, context, request, response)) {
    return scatter;
  }
  return UnaryProxy<EmbedRequest, EmbedResponse>::Start(
      env_, "Embed",
      [](const WorkerConn& w, grpc::ClientContext* c, const EmbedRequest* q, EmbedResponse* r,
         grpc::ClientUnaryReactor* reactor) { w.inference->async()->Embed(c, q, r, reactor); },
      Route::ForEmbed(*request, env_.prefix_affinity_bytes, env_.adapter_affinity), context,
      request, response);
}

}  // namespace ringserve::router
