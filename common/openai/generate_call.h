// One generation request of OpenAI's HTTP API in flight: a Generate stream per prompt through
// the router, their messages rendered into one response, whole or as Server-Sent Events.
#ifndef RINGSERVE_COMMON_OPENAI_GENERATE_CALL_H_
#define RINGSERVE_COMMON_OPENAI_GENERATE_CALL_H_

#include <functional>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "common/http/http_server.h"
#include "common/openai/call_context.h"
#include "common/openai/generate_renderer.h"
#include "common/openai/openai_request.h"
#include "common/openai/openai_response.h"
#include "ringserve/v1/inference.grpc.pb.h"

namespace ringserve::openai {

// Starts a Generate stream for each of `requests` (at once); `renderer` makes the response of
// their messages, written to `writer` whole when they end, or as they go when `stream`. The
// client going away cancels every stream; the first to fail cancels the others. `on_done` (may
// be null) runs once the last stream has ended and the response is written, with the first
// failure (OK when none). The call keeps itself alive until its last stream ends.
void StartGenerateStreams(const std::shared_ptr<ringserve::v1::Inference::Stub>& stub,
                          std::vector<ringserve::v1::GenerateRequest> requests, bool stream,
                          std::unique_ptr<GenerateRenderer> renderer, const HttpClient& client,
                          std::shared_ptr<http::ResponseWriter> writer,
                          std::function<void(const absl::Status&)> on_done = nullptr);

// A /v1/completions or /v1/chat/completions call: its streams rendered by a ResponseRenderer.
void StartGenerateCall(const std::shared_ptr<ringserve::v1::Inference::Stub>& stub,
                       GenerateCall call, ResponseMeta meta, const HttpClient& client,
                       std::shared_ptr<http::ResponseWriter> writer);

}  // namespace ringserve::openai

#endif  // RINGSERVE_COMMON_OPENAI_GENERATE_CALL_H_
