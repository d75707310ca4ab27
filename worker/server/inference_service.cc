#include "worker/server/inference_service.h"

#include <span>

#include "absl/strings/str_cat.h"
#include "common/grpc/grpc_status.h"
#include "worker/server/embed_reactor.h"
#include "worker/server/generate_reactor.h"
#include "worker/tokenizer/tool_calls.h"
#include "worker/tokenizer/unicode.h"

namespace ringserve::server {

namespace pb = ringserve::v1;

grpc::ServerWriteReactor<pb::GenerateResponse>* InferenceService::Generate(
    grpc::CallbackServerContext* context, const pb::GenerateRequest* request) {
  return GenerateReactor::Start(env_, context, *request);
}

grpc::ServerUnaryReactor* InferenceService::Done(grpc::CallbackServerContext* context,
                                                 const std::string& method,
                                                 const absl::Status& status) {
  if (env_.metrics != nullptr) {
    env_.metrics->RecordRequest(method,
                                StatusCodeName(static_cast<grpc::StatusCode>(status.code())));
  }
  context->AddTrailingMetadata("x-ringserve-worker", env_.worker_id);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

grpc::ServerUnaryReactor* InferenceService::Fork(grpc::CallbackServerContext* context,
                                                 const pb::ForkRequest* request,
                                                 pb::ForkResponse* response) {
  if (absl::Status invalid = CheckExistingSessionId(request->session_id()); !invalid.ok()) {
    return Done(context, "Fork", invalid);
  }
  absl::StatusOr<std::vector<std::string>> ids =
      env_.generator->Fork(request->session_id(), request->num_forks());
  if (ids.ok()) {
    for (std::string& id : *ids) response->add_session_ids(std::move(id));
    response->set_worker_id(env_.worker_id);
  }
  return Done(context, "Fork", ids.status());
}

grpc::ServerUnaryReactor* InferenceService::CloseSession(grpc::CallbackServerContext* context,
                                                         const pb::CloseSessionRequest* request,
                                                         pb::CloseSessionResponse* response) {
  if (absl::Status invalid = CheckExistingSessionId(request->session_id()); !invalid.ok()) {
    return Done(context, "CloseSession", invalid);
  }
  absl::StatusOr<int32_t> num_tokens = env_.generator->CloseSession(request->session_id());
  if (num_tokens.ok()) {
    response->set_num_tokens(*num_tokens);
    response->set_worker_id(env_.worker_id);
  }
  return Done(context, "CloseSession", num_tokens.status());
}

grpc::ServerUnaryReactor* InferenceService::Tokenize(grpc::CallbackServerContext* context,
                                                     const pb::TokenizeRequest* request,
                                                     pb::TokenizeResponse* response) {
  absl::Status status;
  if (env_.tokenizer == nullptr) {
    status = absl::FailedPreconditionError("this model has no tokenizer");
  } else if (request->has_chat()) {
    absl::StatusOr<std::vector<int32_t>> ids =
        request->text().empty()
            ? ChatPromptTokens(
                  request->chat(), request->append(), env_.tokenizer,
                  {env_.generator->vocab_size(), env_.generator->max_context_tokens(),
                   env_.model.chat_format, env_.model.default_system_prompt, env_.grammars})
            : absl::InvalidArgumentError("text: set text or chat, not both");
    status = ids.status();
    for (int32_t id : ids.value_or(std::vector<int32_t>{})) {
      response->add_token_ids(id);
      response->add_pieces(std::string(env_.tokenizer->Piece(id)));
    }
  } else if (request->text().size() > kMaxTextBytes) {
    status = absl::InvalidArgumentError(absl::StrCat(
        "text: ", request->text().size(), " bytes is over the limit of ", kMaxTextBytes));
  } else if (!tokenizer::IsValidUtf8(request->text())) {
    status = absl::InvalidArgumentError("text: not valid UTF-8");
  } else {
    tokenizer::EncodeOptions options;
    options.add_bos = request->add_special_tokens();
    if (!request->add_special_tokens()) options.add_eos = false;
    for (int32_t id : env_.tokenizer->Encode(request->text(), options)) {
      response->add_token_ids(id);
      response->add_pieces(std::string(env_.tokenizer->Piece(id)));
    }
  }
  return Done(context, "Tokenize", status);
}

grpc::ServerUnaryReactor* InferenceService::Detokenize(grpc::CallbackServerContext* context,
                                                       const pb::DetokenizeRequest* request,
                                                       pb::DetokenizeResponse* response) {
  absl::Status status = DetokenizeIdsError(*request, env_.tokenizer);
  if (status.ok()) {
    const std::span<const int32_t> ids(request->token_ids().data(),
                                       static_cast<size_t>(request->token_ids_size()));
    response->set_text(
        env_.tokenizer->Decode(ids, /*control_as_text=*/!request->skip_special_tokens()));
  }
  return Done(context, "Detokenize", status);
}

grpc::ServerUnaryReactor* InferenceService::GetModelInfo(grpc::CallbackServerContext* context,
                                                         const pb::GetModelInfoRequest* request,
                                                         pb::ModelInfo* response) {
  const engine::Generator& g = *env_.generator;
  response->set_model_name(env_.model.model_name);
  response->set_architecture("llama");
  response->set_num_parameters(env_.model.num_parameters);
  response->set_vocab_size(g.vocab_size());
  response->set_context_length(g.max_context_tokens());
  response->set_bos_token_id(env_.tokenizer != nullptr ? env_.tokenizer->bos_id() : -1);
  if (env_.tokenizer != nullptr) {
    for (int32_t id : env_.tokenizer->EndOfGenerationIds()) response->add_eos_token_ids(id);
  }
  response->set_tokenizer(env_.model.tokenizer_kind);
  response->set_dtype(env_.model.dtype);
  response->set_device(env_.model.device);
  response->set_kv_block_size_tokens(g.block_size_tokens());
  response->set_kv_num_blocks(g.num_kv_blocks());
  response->set_kv_host_num_blocks(g.num_host_kv_blocks());
  response->set_kv_dtype(env_.model.kv_dtype);
  response->set_chat_format(std::string(tokenizer::ChatFormatName(env_.model.chat_format)));
  if (env_.tokenizer != nullptr) {
    response->set_thinking(std::string(
        tokenizer::ThinkingName(tokenizer::ThinkingOf(*env_.tokenizer, env_.model.chat_format))));
    response->set_tool_calling(tokenizer::OffersToolCalls(*env_.tokenizer, env_.model.chat_format));
  } else {
    response->set_thinking("none");
  }
  response->set_worker_id(env_.worker_id);
  response->set_embedding_size(env_.model.embedding_size);
  for (const std::string& name : env_.generator->AdapterNames()) {
    if (!name.empty()) response->add_adapters(name);
  }
  return Done(context, "GetModelInfo", absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::Embed(grpc::CallbackServerContext* context,
                                                  const pb::EmbedRequest* request,
                                                  pb::EmbedResponse* response) {
  return EmbedReactor::Start(env_, context, *request, response);
}

}  // namespace ringserve::server
