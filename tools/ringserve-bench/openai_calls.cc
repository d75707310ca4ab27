#include "tools/ringserve-bench/openai_calls.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "tools/grpc_client/grpc_client.h"

namespace ringserve::tools::bench {
namespace {

using Json = nlohmann::json;
namespace pb = ringserve::v1;

std::string ModelOf(const std::string& adapter, const std::string& model) {
  return adapter.empty() ? model : adapter;
}

http::HttpClientRequest PostOf(std::string target, std::string body, const std::string& request_id,
                               const OpenAiCallOptions& options) {
  http::HttpClientRequest request;
  request.method = "POST";
  request.target = std::move(target);
  request.headers = {{"Content-Type", "application/json"}};
  if (!request_id.empty()) request.headers.emplace_back("X-Request-Id", request_id);
  if (!options.token.empty()) {
    request.headers.emplace_back("Authorization", absl::StrCat("Bearer ", options.token));
  }
  request.body = std::move(body);
  if (options.timeout_s > 0) request.timeout = absl::Seconds(options.timeout_s);
  return request;
}

// The gRPC code whose name is `name` ("RESOURCE_EXHAUSTED"), if any.
bool CodeNamed(const std::string& name, grpc::StatusCode& code) {
  for (int c = grpc::StatusCode::OK; c <= grpc::StatusCode::UNAUTHENTICATED; ++c) {
    if (CodeName(static_cast<grpc::StatusCode>(c)) == name) {
      code = static_cast<grpc::StatusCode>(c);
      return true;
    }
  }
  return false;
}

Json ParseOrNull(absl::string_view text) {
  return Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
}

int IntOr(const Json& object, const char* key, int fallback) {
  if (!object.is_object()) return fallback;
  const auto it = object.find(key);
  return it != object.end() && it->is_number_integer() ? it->get<int>() : fallback;
}

}  // namespace

std::string CompletionBody(const pb::GenerateRequest& request, const std::string& model) {
  Json body = {{"model", ModelOf(request.adapter(), model)},
               {"prompt",
                std::vector<int32_t>(request.tokens().ids().begin(), request.tokens().ids().end())},
               {"max_tokens", request.stop().max_tokens()},
               {"stream", true},
               {"stream_options", {{"include_usage", true}}},
               {"return_token_ids", true}};
  if (request.stop().ignore_eos()) body["ignore_eos"] = true;
  if (!request.session_id().empty()) body["session_id"] = request.session_id();
  if (request.append()) body["append"] = true;
  if (request.has_expected_history_tokens()) {
    body["expected_history_tokens"] = request.expected_history_tokens();
  }
  if (!request.response_format().regex().empty()) {
    body["guided_regex"] = request.response_format().regex();
  }
  return body.dump();
}

std::string EmbeddingBody(const pb::EmbedRequest& request, const std::string& model) {
  Json inputs = Json::array();
  for (const pb::EmbedInput& input : request.inputs()) {
    inputs.push_back(
        std::vector<int32_t>(input.tokens().ids().begin(), input.tokens().ids().end()));
  }
  return Json{{"model", ModelOf(request.adapter(), model)},
              {"input", std::move(inputs)},
              {"encoding_format", "base64"}}
      .dump();
}

grpc::StatusCode CodeOfHttpStatus(int status) {
  switch (status) {
    case 200:
      return grpc::StatusCode::OK;
    case 400:
    case 422:  // a validation error (FastAPI's)
      return grpc::StatusCode::INVALID_ARGUMENT;
    case 401:
      return grpc::StatusCode::UNAUTHENTICATED;
    case 403:
      return grpc::StatusCode::PERMISSION_DENIED;
    case 404:
      return grpc::StatusCode::NOT_FOUND;
    case 408:
    case 504:
      return grpc::StatusCode::DEADLINE_EXCEEDED;
    case 409:
      return grpc::StatusCode::ABORTED;
    case 413:
    case 429:
      return grpc::StatusCode::RESOURCE_EXHAUSTED;
    case 499:
      return grpc::StatusCode::CANCELLED;
    case 501:
      return grpc::StatusCode::UNIMPLEMENTED;
    case 502:
    case 503:
      return grpc::StatusCode::UNAVAILABLE;
    default:
      return status >= 200 && status < 300 ? grpc::StatusCode::OK : grpc::StatusCode::INTERNAL;
  }
}

void ErrorOf(int http_status, absl::string_view body, RequestResult& result) {
  result.code = CodeOfHttpStatus(http_status);
  if (result.code == grpc::StatusCode::OK) result.code = grpc::StatusCode::UNKNOWN;
  result.message = absl::StrCat("HTTP ", http_status, ": ", body);
  const Json json = ParseOrNull(body);
  if (!json.is_object() || !json.contains("error") || !json["error"].is_object()) return;
  const Json& error = json["error"];
  if (error.contains("message") && error["message"].is_string()) {
    result.message = error["message"].get<std::string>();
  }
  grpc::StatusCode named;
  if (error.contains("code") && error["code"].is_string() &&
      CodeNamed(error["code"].get<std::string>(), named)) {
    result.code = named;
  }
}

OpenAiCall::OpenAiCall(int index, http::HttpClient* client, http::HttpClientRequest request,
                       OnCallDone on_done)
    : client_(client), request_(std::move(request)), on_done_(std::move(on_done)) {
  result_.index = index;
}

void OpenAiCall::Start() {
  result_.start = Clock::now();
  client_->Send(request_, this);
}

void OpenAiCall::OnHead(const http::HttpResponseHead& head) { http_status_ = head.status; }

void OpenAiCall::OnBody(absl::string_view bytes) {
  if (http_status_ == 200) {
    OnOkBody(bytes);
  } else {
    error_body_.append(bytes.data(), bytes.size());
  }
}

void OpenAiCall::OnDone(const absl::Status& status) {
  result_.e2e_ms = MsBetween(result_.start, Clock::now());
  if (!status.ok()) {
    result_.code = static_cast<grpc::StatusCode>(status.code());
    result_.message = std::string(status.message());
  } else if (http_status_ != 200) {
    ErrorOf(http_status_, error_body_, result_);
  } else {
    Conclude();
  }
  // The driver may destroy this call as soon as it hears of it, so the callback runs from a
  // copy and nothing of this object is touched afterwards.
  const OnCallDone on_done = on_done_;
  on_done(result_.index);
}

OpenAiStreamCall::OpenAiStreamCall(int index, http::HttpClient* client,
                                   const pb::GenerateRequest& g, const OpenAiCallOptions& options,
                                   OnCallDone on_done)
    : OpenAiCall(
          index, client,
          PostOf("/v1/completions", CompletionBody(g, options.model), g.request_id(), options),
          std::move(on_done)),
      need_ids_(options.need_ids) {
  result_.input_tokens = g.tokens().ids_size();
}

void OpenAiStreamCall::OnOkBody(absl::string_view bytes) {
  events_.clear();
  events_parser_.Feed(bytes, &events_);
  for (const http::SseEvent& event : events_) OnChunk(event.data);
}

void OpenAiStreamCall::OnChunk(const std::string& data) {
  if (data == "[DONE]") {
    saw_done_ = true;
    return;
  }
  const Clock::time_point now = Clock::now();
  const Json chunk = ParseOrNull(data);
  if (!chunk.is_object()) return;
  if (chunk.contains("error")) {
    failed_ = true;
    ErrorOf(500, data, result_);
    return;
  }
  if (chunk.contains("usage") && chunk["usage"].is_object()) {
    const Json& usage = chunk["usage"];
    saw_usage_ = true;
    result_.prompt_tokens = IntOr(usage, "prompt_tokens", 0);
    completion_tokens_ = IntOr(usage, "completion_tokens", 0);
    if (usage.contains("prompt_tokens_details")) {
      result_.cached_tokens = IntOr(usage["prompt_tokens_details"], "cached_tokens", 0);
    }
  }
  if (!chunk.contains("choices") || !chunk["choices"].is_array() || chunk["choices"].empty()) {
    return;
  }
  const Json& choice = chunk["choices"][0];
  if (!choice.is_object()) return;
  if (choice.contains("token_ids") && choice["token_ids"].is_array()) {
    result_.AddTokens(choice["token_ids"].get<std::vector<int32_t>>(), now);
  } else if (choice.contains("text") && choice["text"].is_string() &&
             !choice["text"].get_ref<const std::string&>().empty()) {
    // A server without token ids: a chunk of text counts as a token's arrival.
    result_.AddArrival(1, now);
  }
  if (choice.contains("finish_reason") && !choice["finish_reason"].is_null()) saw_finish_ = true;
}

void OpenAiStreamCall::Conclude() {
  if (failed_) return;  // the error event set the code
  result_.code = grpc::StatusCode::DATA_LOSS;
  if (!saw_done_ || !saw_finish_ || !saw_usage_) {
    result_.message = "the stream ended without a finish_reason, its usage chunk or [DONE]";
    return;
  }
  const bool got_ids = !result_.output_ids.empty() || completion_tokens_ == 0;
  if (!got_ids && need_ids_) {
    result_.code = grpc::StatusCode::FAILED_PRECONDITION;
    result_.message =
        "the server returned no token_ids (vLLM's return_token_ids): conversations of several "
        "turns resend their replies as ids";
    return;
  }
  // Without ids, the tokens are the server's count.
  if (!got_ids) result_.output_tokens = completion_tokens_;
  result_.code = grpc::StatusCode::OK;
}

OpenAiEmbedCall::OpenAiEmbedCall(int index, http::HttpClient* client, const pb::EmbedRequest& e,
                                 const OpenAiCallOptions& options, OnCallDone on_done)
    : OpenAiCall(index, client,
                 PostOf("/v1/embeddings", EmbeddingBody(e, options.model), e.request_id(), options),
                 std::move(on_done)),
      inputs_(e.inputs_size()) {
  for (const pb::EmbedInput& input : e.inputs()) result_.input_tokens += input.tokens().ids_size();
}

void OpenAiEmbedCall::Conclude() {
  const Json body = ParseOrNull(body_);
  const Json* data = body.is_object() && body.contains("data") ? &body["data"] : nullptr;
  if (data == nullptr || !data->is_array() || static_cast<int>(data->size()) != inputs_) {
    result_.code = grpc::StatusCode::DATA_LOSS;
    result_.message = "the response does not hold an embedding for every input";
    return;
  }
  result_.code = grpc::StatusCode::OK;
  result_.embeddings = static_cast<int>(data->size());
  if (body.contains("usage")) {
    result_.prompt_tokens = IntOr(body["usage"], "prompt_tokens", 0);
    if (body["usage"].is_object() && body["usage"].contains("prompt_tokens_details")) {
      result_.cached_tokens = IntOr(body["usage"]["prompt_tokens_details"], "cached_tokens", 0);
    }
  }
}

}  // namespace ringserve::tools::bench
