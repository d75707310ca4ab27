// POST /v1/responses and DELETE /v1/responses/{id} in flight (see responses_request.h for how
// a stored response is a session on its worker).
#ifndef RINGSERVE_COMMON_OPENAI_RESPONSES_CALL_H_
#define RINGSERVE_COMMON_OPENAI_RESPONSES_CALL_H_

#include <memory>
#include <string>

#include "common/http/http_server.h"
#include "common/openai/call_context.h"
#include "common/openai/responses_renderer.h"
#include "common/openai/responses_request.h"
#include "ringserve/v1/inference.grpc.pb.h"

namespace ringserve::openai {

// Runs the call's chat as a Generate stream rendered by a ResponsesRenderer. A stored response
// (store, the default) runs on a session named by its id (meta.id); a continuation
// (previous_response_id) first forks the previous response's session and appends the input to
// the fork, whose id becomes the response's. A response that fails, or a continuation that is
// not to be stored, closes its session when it ends. NOT_FOUND when the previous response is
// gone.
void StartResponsesCall(const std::shared_ptr<ringserve::v1::Inference::Stub>& stub,
                        ResponsesCall call, ResponsesMeta meta, const HttpClient& client,
                        std::shared_ptr<http::ResponseWriter> writer);

// Forgets the stored response `response_id` (closes its session): OpenAI's deletion object, or
// NOT_FOUND.
void StartDeleteResponse(const std::shared_ptr<ringserve::v1::Inference::Stub>& stub,
                         const std::string& response_id, const HttpClient& client,
                         std::shared_ptr<http::ResponseWriter> writer);

}  // namespace ringserve::openai

#endif  // RINGSERVE_COMMON_OPENAI_RESPONSES_CALL_H_
