// One /v1/completions or /v1/chat/completions request in flight: a Generate stream per
// prompt through the router, their messages rendered into one OpenAI response, whole or as
// Server-Sent Events.
#ifndef RINGSERVE_COMMON_OPENAI_GENERATE_CALL_H_
#define RINGSERVE_COMMON_OPENAI_GENERATE_CALL_H_

#include <memory>

#include "common/http/http_server.h"
#include "common/openai/call_context.h"
#include "common/openai/openai_request.h"
#include "common/openai/openai_response.h"
#include "ringserve/v1/inference.grpc.pb.h"

namespace ringserve::openai {

// Starts the call's streams; the response goes to `writer` when they end (or as they go,
// when streaming). The client going away cancels every stream. The call keeps itself
// alive until its last stream ends.
void StartGenerateCall(const std::shared_ptr<ringserve::v1::Inference::Stub>& stub,
                       GenerateCall call, ResponseMeta meta, const HttpClient& client,
                       std::shared_ptr<http::ResponseWriter> writer);

}  // namespace ringserve::openai

#endif  // RINGSERVE_COMMON_OPENAI_GENERATE_CALL_H_
