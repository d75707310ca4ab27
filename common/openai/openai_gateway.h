// OpenAiGateway: OpenAI's HTTP API in front of ringserve.v1.Inference. Each HTTP request
// becomes gRPC calls on a channel to the serving binary's own server (its local Unix socket:
// ringserve-router --http-port, or a worker's), so routing, authentication, limits, metrics
// and drain are that server's own:
//   GET  /v1/models             the served model and the adapters the workers list
//   GET  /v1/models/{id}        one of them
//   POST /v1/completions        text completion (prompt: text, token ids, or a batch of them)
//   POST /v1/chat/completions   chat, tools, structured output, reasoning_content
//   POST /v1/responses          the Responses API; stored responses are worker sessions that
//                               previous_response_id continues (responses_request.h)
//   DELETE /v1/responses/{id}   forgets a stored response
//   POST /v1/messages           Anthropic's Messages API (messages_request.h), and
//        /v1/messages/count_tokens  its token count; x-api-key is read as a bearer token
//   POST /v1/embeddings         embeddings (float or base64)
//   POST /tokenize              a prompt's or a chat's token ids (vLLM's)
//   GET  /health                200 while the gateway serves
// The generation endpoints stream as Server-Sent Events with "stream": true.
#ifndef RINGSERVE_COMMON_OPENAI_OPENAI_GATEWAY_H_
#define RINGSERVE_COMMON_OPENAI_OPENAI_GATEWAY_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "common/auth_token.h"
#include "common/http/http_server.h"
#include "common/openai/cors.h"
#include "common/openai/http_metrics.h"
#include "common/openai/model_catalog.h"
#include "common/openai/openai_error.h"
#include "grpcpp/channel.h"
#include "ringserve/v1/inference.grpc.pb.h"

namespace ringserve::openai {

struct GatewayOptions {
  // The model's name in /v1/models and in requests' "model" (besides the name the workers
  // report, which is always accepted); empty: the workers' ModelInfo.model_name.
  std::string served_model_name;
  // How long the workers' ModelInfo is reused to resolve "model" before it is asked again.
  absl::Duration model_info_ttl = absl::Seconds(30);
  // Web origins whose pages may call the API from a browser (CORS); "*" allows any; empty:
  // none (no CORS headers, OPTIONS is 405).
  std::vector<std::string> allowed_origins;
  // Renders the process's metrics as Prometheus text for GET /metrics (as vLLM and TGI serve
  // theirs on the API's port); null: no /metrics here.
  std::function<std::string()> metrics_text;
  // Bearer tokens every request needs but /health and /metrics (as vLLM's --api-key guards its
  // API); empty: none here. The router leaves this empty: its gRPC server checks the token each
  // call forwards.
  TokenSet tokens;
};

// Owner: the process (an OpenAiFront) or a test; calls in flight hold what they
// need, so it may go before them. Thread: Handle runs on the HTTP server's thread; the
// calls' callbacks on gRPC's.
class OpenAiGateway {
 public:
  // metrics: where responses are counted; null for none.
  OpenAiGateway(const std::shared_ptr<grpc::Channel>& channel, GatewayOptions options,
                HttpMetrics* metrics = nullptr);

  // The HTTP server's handler. Never blocks: every answer comes from a gRPC callback.
  void Handle(http::HttpRequest request, std::shared_ptr<http::ResponseWriter> writer);

 private:
  // Whether an Authorization header carries one of options_.tokens.
  bool Authorized(absl::string_view authorization) const;
  // /v1/models, or with an id the one model it names (404 when none).
  void ListModels(const HttpClient& client, std::string id,
                  std::shared_ptr<http::ResponseWriter> writer);
  void Generate(const http::HttpRequest& request, const HttpClient& client,
                std::shared_ptr<http::ResponseWriter> writer);
  void Responses(const http::HttpRequest& request, const HttpClient& client,
                 std::shared_ptr<http::ResponseWriter> writer);
  // Anthropic's Messages API: a chat (errors in Anthropic's shape), and its token count.
  void Messages(const http::HttpRequest& request, const HttpClient& client,
                std::shared_ptr<http::ResponseWriter> writer);
  void CountTokens(const http::HttpRequest& request, const HttpClient& client,
                   std::shared_ptr<http::ResponseWriter> writer);
  // /v1/responses/{id}: DELETE forgets it; GET is UNIMPLEMENTED (the object is not kept).
  void StoredResponse(const http::HttpRequest& request, const std::string& id,
                      const HttpClient& client, std::shared_ptr<http::ResponseWriter> writer);
  void Embed(const http::HttpRequest& request, const HttpClient& client,
             std::shared_ptr<http::ResponseWriter> writer);
  // The request's id for logs (the client's X-Request-Id, else a random one); `writer` then
  // sends it back in X-Request-Id.
  static std::string RequestId(const http::HttpRequest& request,
                               std::shared_ptr<http::ResponseWriter>& writer);
  void Tokenize(const http::HttpRequest& request, const HttpClient& client,
                std::shared_ptr<http::ResponseWriter> writer);
  void Detokenize(const http::HttpRequest& request, const HttpClient& client,
                  std::shared_ptr<http::ResponseWriter> writer);
  // Runs `next` with the served model's ModelInfo (ModelCatalog), or answers with the
  // catalog's error, written by `error_body` (the endpoint's API's error shape).
  using WithInfo = std::function<void(const ringserve::v1::ModelInfo& info,
                                      const std::shared_ptr<http::ResponseWriter>& writer)>;
  using ErrorBodyOf = std::string (*)(const absl::Status&);
  void WithModelInfo(const HttpClient& client, std::shared_ptr<http::ResponseWriter> writer,
                     WithInfo next, ErrorBodyOf error_body = &ErrorBody);
  // WithModelInfo for the tokenizer's endpoints: `model` must be the served model's name or
  // empty (adapters share its tokenizer, so naming one is a 404 that says so).
  void WithTokenizerOf(const std::string& model, const HttpClient& client,
                       std::shared_ptr<http::ResponseWriter> writer, WithInfo next,
                       ErrorBodyOf error_body = &ErrorBody);

  const GatewayOptions options_;
  const CorsPolicy cors_;
  HttpMetrics* const metrics_;
  const std::shared_ptr<ringserve::v1::Inference::Stub> stub_;
  const std::shared_ptr<ModelCatalog> catalog_;
  const int64_t started_ = 0;  // Unix seconds: the models' "created"
};

}  // namespace ringserve::openai

#endif  // RINGSERVE_COMMON_OPENAI_OPENAI_GATEWAY_H_
