// StartUnaryCall: one unary gRPC call made for an HTTP request, on the stub's callback API,
// with the HTTP client's metadata, cancelled if the client leaves; the answer arrives as
// absl::StatusOr. The call's context, request and response live until its callback ran.
#ifndef RINGSERVE_COMMON_OPENAI_UNARY_CALL_H_
#define RINGSERVE_COMMON_OPENAI_UNARY_CALL_H_

#include <functional>
#include <memory>
#include <utility>

#include "absl/status/statusor.h"
#include "common/http/http_server.h"
#include "common/openai/call_context.h"
#include "grpcpp/client_context.h"

namespace ringserve::openai {

// `start(context, request, response, callback)` begins the call, e.g.
//   [&stub](auto* c, auto* q, auto* r, auto f) { stub.async()->Embed(c, q, r, std::move(f)); }
// `cancel_with`: the HTTP exchange whose client leaving cancels the call; null for none.
// `done` runs on a gRPC thread.
template <typename Response, typename Request, typename Start>
void StartUnaryCall(Start start, const HttpClient& client, Request request,
                    http::ResponseWriter* cancel_with,
                    std::function<void(absl::StatusOr<Response>)> done) {
  struct Call {
    grpc::ClientContext context;
    Request request;
    Response response;
  };
  auto call = std::make_shared<Call>();
  PrepareContext(client, call->context);
  call->request = std::move(request);
  if (cancel_with != nullptr) {
    cancel_with->OnClientGone([weak = std::weak_ptr<Call>(call)] {
      if (const std::shared_ptr<Call> c = weak.lock()) c->context.TryCancel();
    });
  }
  start(&call->context, &call->request, &call->response,
        [call, done = std::move(done)](const grpc::Status& status) {
          if (status.ok()) {
            done(std::move(call->response));
          } else {
            done(FromGrpcStatus(status));
          }
        });
}

}  // namespace ringserve::openai

#endif  // RINGSERVE_COMMON_OPENAI_UNARY_CALL_H_
