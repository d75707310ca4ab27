// The worker's ringserve.v1.Inference: each Generate stream is one generator job, read
// through its JobHandle without a thread per stream (the engine's notifier starts writes).
#ifndef RINGSERVE_WORKER_SERVER_INFERENCE_SERVICE_H_
#define RINGSERVE_WORKER_SERVER_INFERENCE_SERVICE_H_

#include <string>
#include <vector>

#include "ringserve/v1/inference.grpc.pb.h"
#include "worker/engine/generator.h"
#include "worker/grammar/grammar_cache.h"
#include "worker/server/request_conversion.h"
#include "worker/server/worker_metrics.h"
#include "worker/tokenizer/chat_format.h"
#include "worker/tokenizer/tokenizer.h"

namespace ringserve::server {

// What the service reports about the model (GetModelInfo) besides the generator's limits.
struct ModelDescription {
  std::string model_name;
  int64_t num_parameters = 0;
  std::string tokenizer_kind;  // "sentencepiece", "byte_level_bpe" or empty
  std::string dtype;
  std::string kv_dtype;
  std::string device;
  tokenizer::ChatFormat chat_format = tokenizer::ChatFormat::kNone;
  std::string default_system_prompt;  // ModelLimits::default_system_prompt
  int32_t embedding_size = 0;         // the model's width (ModelInfo.embedding_size)
};

// Everything the services share; owned by WorkerServer and outliving every call.
struct ServiceEnv {
  engine::Generator* generator = nullptr;
  const tokenizer::Tokenizer* tokenizer = nullptr;  // may be null
  WorkerMetrics* metrics = nullptr;                 // may be null
  ModelDescription model;
  std::string worker_id;
  grammar::GrammarCache* grammars = nullptr;  // ModelLimits::grammars; may be null
};

// Thread: gRPC callback threads and the engine thread (notifiers); state lives per call.
class InferenceService final : public ringserve::v1::Inference::CallbackService {
 public:
  explicit InferenceService(const ServiceEnv& env) : env_(env) {}

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
  // Finishes a unary call with `status`, counting it.
  grpc::ServerUnaryReactor* Done(grpc::CallbackServerContext* context, const std::string& method,
                                 const absl::Status& status);

  const ServiceEnv& env_;
};

}  // namespace ringserve::server

#endif  // RINGSERVE_WORKER_SERVER_INFERENCE_SERVICE_H_
