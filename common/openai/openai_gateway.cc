#include "common/openai/openai_gateway.h"

#include <cstring>
#include <random>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/openai/generate_call.h"
#include "common/openai/head_hook_writer.h"
#include "common/openai/messages_renderer.h"
#include "common/openai/messages_request.h"
#include "common/openai/openai_error.h"
#include "common/openai/openai_request.h"
#include "common/openai/openai_response.h"
#include "common/openai/responses_call.h"
#include "common/openai/unary_call.h"
#include "grpcpp/support/client_callback.h"

namespace ringserve::openai {
namespace {

namespace pb = ringserve::v1;

constexpr char kJson[] = "application/json";
// GET /v1/models/{id}: one model of the list.
constexpr char kModelsPrefix[] = "/v1/models/";
// DELETE /v1/responses/{id}: one stored response.
constexpr char kResponsesPrefix[] = "/v1/responses/";
// GenerateRequest.request_id's limit.
constexpr size_t kMaxRequestIdBytes = 128;

void RespondError(http::ResponseWriter& writer, const absl::Status& status) {
  writer.Respond(HttpStatusOf(status.code()), kJson, ErrorBody(status));
}

// 24 random hex digits: the response ids OpenAI's clients show and log.
std::string RandomId() {
  thread_local std::mt19937_64 bits{std::random_device{}()};
  return absl::StrFormat("%016x%08x", bits(), static_cast<uint32_t>(bits()));
}

std::string ServedName(const std::string& served_model_name, const pb::ModelInfo& info) {
  return served_model_name.empty() ? info.model_name() : served_model_name;
}

// Runs `request` as the client's "model" asks (the served model, or an adapter's name) under
// the HTTP request's id; the model's name for the response.
std::string ServeAs(const std::string& model, const pb::ModelInfo& info,
                    const std::string& served_model_name, const std::string& request_id,
                    pb::GenerateRequest& request) {
  request.set_adapter(AdapterFor(model, info, served_model_name));
  request.set_request_id(request_id);
  return model.empty() ? ServedName(served_model_name, info) : model;
}

// A Tokenize call for an HTTP request, cancelled when its client leaves.
void CallTokenize(const std::shared_ptr<pb::Inference::Stub>& stub, const HttpClient& client,
                  pb::TokenizeRequest request, const std::shared_ptr<http::ResponseWriter>& writer,
                  std::function<void(absl::StatusOr<pb::TokenizeResponse>)> done) {
  StartUnaryCall<pb::TokenizeResponse>(
      [stub](auto* context, auto* r, auto* response, auto callback) {
        stub->async()->Tokenize(context, r, response, std::move(callback));
      },
      client, std::move(request), writer.get(), std::move(done));
}

// One model of /v1/models (vLLM's fields beside OpenAI's: root, parent, max_model_len).
OrderedJson ModelEntry(const std::string& id, const std::string& root, const OrderedJson& parent,
                       int64_t created, int32_t context_length) {
  return OrderedJson{{"id", id},
                     {"object", "model"},
                     {"created", created},
                     {"owned_by", "ringserve"},
                     {"root", root},
                     {"parent", parent},
                     {"max_model_len", context_length}};
}

// /v1/models: the served model, then each LoRA adapter the workers list as its child.
OrderedJson ModelList(const pb::ModelInfo& info, const std::string& served_model_name,
                      int64_t created) {
  const std::string name = ServedName(served_model_name, info);
  OrderedJson data = OrderedJson::array();
  data.push_back(ModelEntry(name, info.model_name(), nullptr, created, info.context_length()));
  for (const std::string& adapter : info.adapters()) {
    data.push_back(ModelEntry(adapter, adapter, name, created, info.context_length()));
  }
  return OrderedJson{{"object", "list"}, {"data", std::move(data)}};
}

std::string Base64Floats(const google::protobuf::RepeatedField<float>& values) {
  std::string bytes(static_cast<size_t>(values.size()) * sizeof(float), '\0');
  if (!bytes.empty()) std::memcpy(bytes.data(), values.data(), bytes.size());  // little-endian
  return absl::Base64Escape(bytes);
}

// /v1/embeddings' answer: each embedding as floats or base64, and the tokens computed.
std::string EmbeddingList(const pb::EmbedResponse& response, bool base64,
                          const std::string& model) {
  OrderedJson data = OrderedJson::array();
  int64_t prompt_tokens = 0;
  for (int i = 0; i < response.embeddings_size(); ++i) {
    const pb::Embedding& e = response.embeddings(i);
    prompt_tokens += e.prompt_tokens();
    OrderedJson values;
    if (base64) {
      values = Base64Floats(e.values());
    } else {
      values = OrderedJson::array();
      for (const float v : e.values()) values.push_back(ShortestDouble(v));
    }
    data.push_back({{"object", "embedding"}, {"index", i}, {"embedding", std::move(values)}});
  }
  const OrderedJson body{
      {"object", "list"},
      {"data", std::move(data)},
      {"model", model},
      {"usage", {{"prompt_tokens", prompt_tokens}, {"total_tokens", prompt_tokens}}}};
  return Dump(body);
}

// /tokenize's answer (vLLM's fields).
std::string TokenList(const pb::TokenizeResponse& response, bool token_strs,
                      int32_t max_model_len) {
  const std::vector<int32_t> ids(response.token_ids().begin(), response.token_ids().end());
  OrderedJson body{{"count", ids.size()}, {"max_model_len", max_model_len}, {"tokens", ids}};
  body["token_strs"] = nullptr;
  if (token_strs) {
    body["token_strs"] =
        std::vector<std::string>(response.pieces().begin(), response.pieces().end());
  }
  return Dump(body);
}

// A unary call's callback: its response rendered by `render` as a 200 JSON body, or its error
// as OpenAI's.
template <typename Response, typename Render>
auto AnswerWith(std::shared_ptr<http::ResponseWriter> writer, Render render) {
  return
      [writer = std::move(writer), render = std::move(render)](absl::StatusOr<Response> response) {
        if (!response.ok()) {
          RespondError(*writer, response.status());
          return;
        }
        writer->Respond(200, kJson, render(*response));
      };
}

}  // namespace

OpenAiGateway::OpenAiGateway(const std::shared_ptr<grpc::Channel>& channel, GatewayOptions options,
                             HttpMetrics* metrics)
    : options_(std::move(options)),
      cors_(options_.allowed_origins),
      metrics_(metrics),
      stub_(pb::Inference::NewStub(channel)),
      catalog_(std::make_shared<ModelCatalog>(stub_, options_.model_info_ttl)),
      started_(absl::ToUnixSeconds(absl::Now())) {}

void OpenAiGateway::Handle(http::HttpRequest request,
                           std::shared_ptr<http::ResponseWriter> writer) {
  HttpClient client;
  if (const std::string* authorization = request.Header("authorization")) {
    client.authorization = *authorization;
  } else if (const std::string* key = request.Header("x-api-key"); key != nullptr) {
    // Anthropic's clients send their key so: the same token, checked the same way.
    client.authorization = absl::StrCat("Bearer ", *key);
  }
  client.address = request.peer;
  if (metrics_ != nullptr) writer = metrics_->Counting(request.path, std::move(writer));
  if (cors_.enabled()) {
    const std::string* origin = request.Header("origin");
    const std::optional<std::string> allow =
        origin != nullptr ? cors_.AllowOrigin(*origin) : std::nullopt;
    if (allow.has_value()) writer = CorsPolicy::Wrap(*allow, std::move(writer));
    if (request.method == "OPTIONS") {
      CorsPolicy::AnswerPreflight(allow, *writer);
      return;
    }
  }
  const std::string& path = request.path;
  if (!options_.tokens.empty() && path != "/health" && path != "/metrics" &&
      !Authorized(client.authorization)) {
    writer->Respond(401, kJson,
                    ErrorBody(absl::UnauthenticatedError(
                        "this server requires a token: send 'Authorization: Bearer <token>'")),
                    {{"WWW-Authenticate", "Bearer"}});
    return;
  }
  const auto route = [&](absl::string_view method) -> bool {
    if (request.method == method) return true;
    writer->Respond(405, kJson,
                    ErrorBody(absl::InvalidArgumentError(
                        absl::StrCat(path, " takes ", method, ", not ", request.method))),
                    {{"Allow", std::string(method)}});
    return false;
  };
  if (path == "/health") {
    if (route("GET")) writer->Respond(200, kJson, R"({"status":"ok"})");
  } else if (path == "/metrics" && options_.metrics_text != nullptr) {
    if (route("GET")) {
      writer->Respond(200, "text/plain; version=0.0.4; charset=utf-8", options_.metrics_text());
    }
  } else if (path == "/v1/models") {
    if (route("GET")) ListModels(client, "", std::move(writer));
  } else if (absl::StartsWith(path, kModelsPrefix)) {
    if (route("GET")) {
      ListModels(client, path.substr(std::strlen(kModelsPrefix)), std::move(writer));
    }
  } else if (path == "/v1/completions" || path == "/v1/chat/completions") {
    if (route("POST")) Generate(request, client, std::move(writer));
  } else if (path == "/v1/responses") {
    if (route("POST")) Responses(request, client, std::move(writer));
  } else if (absl::StartsWith(path, kResponsesPrefix)) {
    StoredResponse(request, path.substr(std::strlen(kResponsesPrefix)), client, std::move(writer));
  } else if (path == "/v1/messages") {
    if (route("POST")) Messages(request, client, std::move(writer));
  } else if (path == "/v1/messages/count_tokens") {
    if (route("POST")) CountTokens(request, client, std::move(writer));
  } else if (path == "/v1/embeddings") {
    if (route("POST")) Embed(request, client, std::move(writer));
  } else if (path == "/tokenize") {
    if (route("POST")) Tokenize(request, client, std::move(writer));
  } else if (path == "/detokenize") {
    if (route("POST")) Detokenize(request, client, std::move(writer));
  } else {
    RespondError(*writer, absl::NotFoundError(
                              absl::StrCat("no such endpoint: ", request.method, " ", path,
                                           " (this server has /v1/models, /v1/completions, "
                                           "/v1/chat/completions, /v1/responses, /v1/messages, "
                                           "/v1/embeddings, "
                                           "/tokenize, /detokenize and /health)")));
  }
}

bool OpenAiGateway::Authorized(absl::string_view authorization) const {
  const std::optional<absl::string_view> token = BearerToken(authorization);
  return token.has_value() && options_.tokens.Find(*token) >= 0;
}

void OpenAiGateway::ListModels(const HttpClient& client, std::string id,
                               std::shared_ptr<http::ResponseWriter> writer) {
  FetchModelInfo(*stub_, client,
                 [writer = std::move(writer), served = options_.served_model_name,
                  created = started_, id = std::move(id)](absl::StatusOr<pb::ModelInfo> info) {
                   if (!info.ok()) {
                     RespondError(*writer, info.status());
                     return;
                   }
                   OrderedJson list = ModelList(*info, served, created);
                   if (id.empty()) {
                     writer->Respond(200, kJson, Dump(list));
                     return;
                   }
                   for (const OrderedJson& model : list["data"]) {
                     if (model["id"] == id) {
                       writer->Respond(200, kJson, Dump(model));
                       return;
                     }
                   }
                   RespondError(*writer, absl::NotFoundError(
                                             absl::StrCat("the model '", id, "' does not exist")));
                 });
}

void OpenAiGateway::WithModelInfo(const HttpClient& client,
                                  std::shared_ptr<http::ResponseWriter> writer, WithInfo next,
                                  ErrorBodyOf error_body) {
  catalog_->Get(client, [writer = std::move(writer), next = std::move(next),
                         error_body](absl::StatusOr<pb::ModelInfo> info) mutable {
    if (!info.ok()) {
      writer->Respond(HttpStatusOf(info.status().code()), kJson, error_body(info.status()));
      return;
    }
    next(*info, writer);
  });
}

void OpenAiGateway::Generate(const http::HttpRequest& request, const HttpClient& client,
                             std::shared_ptr<http::ResponseWriter> writer) {
  const bool chat = request.path == "/v1/chat/completions";
  absl::StatusOr<GenerateCall> call =
      chat ? ParseChatRequest(request.body) : ParseCompletionRequest(request.body);
  if (!call.ok()) {
    RespondError(*writer, call.status());
    return;
  }
  std::string request_id = RequestId(request, writer);
  ResponseMeta meta;
  meta.kind = call->kind;
  meta.id = absl::StrCat(chat ? "chatcmpl-" : "cmpl-", request_id);
  meta.created = absl::ToUnixSeconds(absl::Now());
  meta.n = call->n;
  meta.logprobs = call->logprobs;
  meta.token_ids = call->token_ids;
  if (call->echo) {
    for (const pb::GenerateRequest& r : call->requests) meta.echo.push_back(r.text());
    meta.echo_logprobs = call->logprobs.has_value();
  }
  WithModelInfo(
      client, std::move(writer),
      [call = *std::move(call), meta = std::move(meta), client, request_id, stub = stub_,
       served = options_.served_model_name](
          const pb::ModelInfo& info, const std::shared_ptr<http::ResponseWriter>& writer) mutable {
        for (pb::GenerateRequest& r : call.requests) {
          meta.model = ServeAs(call.model, info, served, request_id, r);
        }
        StartGenerateCall(stub, std::move(call), std::move(meta), client, writer);
      });
}

std::string OpenAiGateway::RequestId(const http::HttpRequest& request,
                                     std::shared_ptr<http::ResponseWriter>& writer) {
  std::string request_id = RandomId();
  if (const std::string* header = request.Header("x-request-id");
      header != nullptr && !header->empty()) {
    request_id = header->substr(0, kMaxRequestIdBytes);
  }
  // The id goes back in a header too, so a client can match its logs with the worker's.
  writer = WithHeaders({{"X-Request-Id", request_id}}, std::move(writer));
  return request_id;
}

void OpenAiGateway::Responses(const http::HttpRequest& request, const HttpClient& client,
                              std::shared_ptr<http::ResponseWriter> writer) {
  absl::StatusOr<ResponsesCall> call = ParseResponsesRequest(request.body);
  if (!call.ok()) {
    RespondError(*writer, call.status());
    return;
  }
  std::string request_id = RequestId(request, writer);
  ResponsesMeta meta;
  // Ours whatever the client's request id holds: a stored response's id names its session.
  meta.id = absl::StrCat("resp_", RandomId());
  meta.created_at = absl::ToUnixSeconds(absl::Now());
  meta.logprobs = call->logprobs;
  meta.settings = std::move(call->settings);
  WithModelInfo(
      client, std::move(writer),
      [call = *std::move(call), meta = std::move(meta), client, request_id = std::move(request_id),
       stub = stub_, served = options_.served_model_name](
          const pb::ModelInfo& info, const std::shared_ptr<http::ResponseWriter>& writer) mutable {
        meta.model = ServeAs(call.model, info, served, request_id, call.request);
        StartResponsesCall(stub, std::move(call), std::move(meta), client, writer);
      });
}

void OpenAiGateway::Messages(const http::HttpRequest& request, const HttpClient& client,
                             std::shared_ptr<http::ResponseWriter> writer) {
  absl::StatusOr<MessagesCall> call = ParseMessagesRequest(request.body);
  if (!call.ok()) {
    writer->Respond(HttpStatusOf(call.status().code()), kJson, AnthropicErrorBody(call.status()));
    return;
  }
  std::string request_id = RequestId(request, writer);
  MessagesMeta meta;
  meta.id = absl::StrCat("msg_", RandomId());
  WithModelInfo(
      client, std::move(writer),
      [call = *std::move(call), meta = std::move(meta), client, request_id = std::move(request_id),
       stub = stub_, served = options_.served_model_name](
          const pb::ModelInfo& info, const std::shared_ptr<http::ResponseWriter>& writer) mutable {
        meta.model = ServeAs(call.model, info, served, request_id, call.request);
        std::vector<pb::GenerateRequest> requests;
        requests.push_back(std::move(call.request));
        StartGenerateStreams(stub, std::move(requests), call.stream,
                             std::make_unique<MessagesRenderer>(std::move(meta)), client, writer);
      },
      &AnthropicErrorBody);
}

void OpenAiGateway::CountTokens(const http::HttpRequest& request, const HttpClient& client,
                                std::shared_ptr<http::ResponseWriter> writer) {
  absl::StatusOr<CountTokensCall> call = ParseCountTokensRequest(request.body);
  if (!call.ok()) {
    writer->Respond(HttpStatusOf(call.status().code()), kJson, AnthropicErrorBody(call.status()));
    return;
  }
  const std::string model = call->model;
  WithTokenizerOf(
      model, client, std::move(writer),
      [call = *std::move(call), client, stub = stub_](
          const pb::ModelInfo&, const std::shared_ptr<http::ResponseWriter>& writer) mutable {
        CallTokenize(stub, client, std::move(call.request), writer,
                     [writer](const absl::StatusOr<pb::TokenizeResponse>& response) {
                       if (!response.ok()) {
                         writer->Respond(HttpStatusOf(response.status().code()), kJson,
                                         AnthropicErrorBody(response.status()));
                         return;
                       }
                       writer->Respond(
                           200, kJson,
                           Dump(OrderedJson{{"input_tokens", response->token_ids_size()}}));
                     });
      },
      &AnthropicErrorBody);
}

void OpenAiGateway::StoredResponse(const http::HttpRequest& request, const std::string& id,
                                   const HttpClient& client,
                                   std::shared_ptr<http::ResponseWriter> writer) {
  if (request.method == "DELETE") {
    StartDeleteResponse(stub_, id, client, std::move(writer));
    return;
  }
  if (request.method == "GET") {
    RespondError(*writer, absl::UnimplementedError(
                              "GET /v1/responses/{id}: ringserve keeps a stored response's "
                              "conversation, to continue it with previous_response_id, but not "
                              "the response object itself"));
    return;
  }
  writer->Respond(405, kJson,
                  ErrorBody(absl::InvalidArgumentError(
                      absl::StrCat(request.path, " takes DELETE, not ", request.method))),
                  {{"Allow", "DELETE"}});
}

void OpenAiGateway::Embed(const http::HttpRequest& request, const HttpClient& client,
                          std::shared_ptr<http::ResponseWriter> writer) {
  absl::StatusOr<EmbedCall> call = ParseEmbeddingRequest(request.body);
  if (!call.ok()) {
    RespondError(*writer, call.status());
    return;
  }
  WithModelInfo(
      client, std::move(writer),
      [call = *std::move(call), client, stub = stub_, served = options_.served_model_name](
          const pb::ModelInfo& info, const std::shared_ptr<http::ResponseWriter>& writer) mutable {
        call.request.set_adapter(AdapterFor(call.model, info, served));
        std::string model = call.model.empty() ? ServedName(served, info) : call.model;
        StartUnaryCall<pb::EmbedResponse>(
            [stub](auto* context, auto* request, auto* response, auto callback) {
              stub->async()->Embed(context, request, response, std::move(callback));
            },
            client, std::move(call.request), writer.get(),
            AnswerWith<pb::EmbedResponse>(writer, [base64 = call.base64, model = std::move(model)](
                                                      const pb::EmbedResponse& r) {
              return EmbeddingList(r, base64, model);
            }));
      });
}

void OpenAiGateway::WithTokenizerOf(const std::string& model, const HttpClient& client,
                                    std::shared_ptr<http::ResponseWriter> writer, WithInfo next,
                                    ErrorBodyOf error_body) {
  WithModelInfo(
      client, std::move(writer),
      [model, served = options_.served_model_name, next = std::move(next), error_body](
          const pb::ModelInfo& info, const std::shared_ptr<http::ResponseWriter>& w) {
        if (!AdapterFor(model, info, served).empty()) {
          const absl::Status status = absl::NotFoundError(
              absl::StrCat("the model '", model,
                           "' is not the served model; adapters share its tokenizer: name it or "
                           "none"));
          w->Respond(HttpStatusOf(status.code()), kJson, error_body(status));
          return;
        }
        next(info, w);
      },
      error_body);
}

void OpenAiGateway::Tokenize(const http::HttpRequest& request, const HttpClient& client,
                             std::shared_ptr<http::ResponseWriter> writer) {
  absl::StatusOr<TokenizeCall> call = ParseTokenizeRequest(request.body);
  if (!call.ok()) {
    RespondError(*writer, call.status());
    return;
  }
  // ModelInfo first: the reply carries max_model_len, and "model" is checked as elsewhere.
  const std::string model = call->model;
  WithTokenizerOf(
      model, client, std::move(writer),
      [call = *std::move(call), client, stub = stub_](
          const pb::ModelInfo& info, const std::shared_ptr<http::ResponseWriter>& writer) mutable {
        CallTokenize(
            stub, client, std::move(call.request), writer,
            AnswerWith<pb::TokenizeResponse>(
                writer, [token_strs = call.token_strs,
                         max_model_len = info.context_length()](const pb::TokenizeResponse& r) {
                  return TokenList(r, token_strs, max_model_len);
                }));
      });
}

void OpenAiGateway::Detokenize(const http::HttpRequest& request, const HttpClient& client,
                               std::shared_ptr<http::ResponseWriter> writer) {
  absl::StatusOr<DetokenizeCall> call = ParseDetokenizeRequest(request.body);
  if (!call.ok()) {
    RespondError(*writer, call.status());
    return;
  }
  const std::string model = call->model;
  WithTokenizerOf(
      model, client, std::move(writer),
      [call = *std::move(call), client, stub = stub_](
          const pb::ModelInfo&, const std::shared_ptr<http::ResponseWriter>& writer) mutable {
        StartUnaryCall<pb::DetokenizeResponse>(
            [stub](auto* context, auto* request, auto* response, auto callback) {
              stub->async()->Detokenize(context, request, response, std::move(callback));
            },
            client, std::move(call.request), writer.get(),
            // vLLM's field: the text is the prompt the ids would be.
            AnswerWith<pb::DetokenizeResponse>(writer, [](const pb::DetokenizeResponse& r) {
              return Dump(OrderedJson{{"prompt", r.text()}});
            }));
      });
}

}  // namespace ringserve::openai
