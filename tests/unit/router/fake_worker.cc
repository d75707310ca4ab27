#include "tests/unit/router/fake_worker.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"

namespace ringserve::router::testing {

using namespace ringserve::v1;  // NOLINT(build/namespaces): message types, test-only

namespace {

// A chat's stand-in rendering, a token a byte as text is: "role:content" per message (and a
// tool result's call id), a continued reply's start its content alone.
std::string StandInChat(const Chat& chat) {
  std::string text;
  for (int i = 0; i < chat.messages_size(); ++i) {
    const ChatMessage& m = chat.messages(i);
    const bool continued = chat.continue_final_message() && i + 1 == chat.messages_size();
    absl::StrAppend(&text, continued ? "" : m.role() + ":", m.content(), m.tool_call_id());
  }
  return text;
}

}  // namespace

// What GetModelInfo reports: enough for clients that draw random token ids.
constexpr int kVocabSize = 32000;
constexpr int kContextLength = 4096;
constexpr int kEmbeddingSize = 4;

FakeWorker::FakeWorker(std::string id) : id_(std::move(id)) {
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(static_cast<Inference::Service*>(this));
  builder.RegisterService(static_cast<Admin::Service*>(this));
  server_ = builder.BuildAndStart();
  address_ = absl::StrCat("127.0.0.1:", port);
  SetServing(true);
}

FakeWorker::~FakeWorker() { Kill(); }

void FakeWorker::SetServing(bool serving) {
  server_->GetHealthCheckService()->SetServingStatus(serving);
}

void FakeWorker::Kill() {
  if (killed_.exchange(true)) return;
  server_->Shutdown(std::chrono::system_clock::now());
  server_->Wait();
}

absl::Duration FakeWorker::last_deadline_left() const {
  std::lock_guard lock(mu_);
  return last_deadline_left_;
}

std::set<std::string> FakeWorker::sessions() const {
  std::lock_guard lock(mu_);
  return sessions_;
}

void FakeWorker::Tag(grpc::ServerContext* context) const {
  context->AddInitialMetadata("x-ringserve-worker", id_);
  context->AddTrailingMetadata("x-ringserve-worker", id_);
}

grpc::Status FakeWorker::Generate(grpc::ServerContext* context, const GenerateRequest* request,
                                  grpc::ServerWriter<GenerateResponse>* writer) {
  ++generate_calls_;
  if (request->has_response_format()) ++formatted_calls_;
  if (unavailable_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "draining");
  const int num_tokens =
      request->stop().has_max_tokens() ? request->stop().max_tokens() : num_tokens_.load();
  GenerateResponse last;
  {
    std::lock_guard lock(mu_);
    if (grpc::Status refused = Account(*request, num_tokens, last.mutable_final()); !refused.ok()) {
      return refused;
    }
    if (!request->session_id().empty()) sessions_.insert(request->session_id());
    const auto deadline = context->deadline();
    last_deadline_left_ = deadline == std::chrono::system_clock::time_point::max()
                              ? absl::InfiniteDuration()
                              : absl::FromChrono(deadline) - absl::Now();
  }
  Tag(context);
  for (int i = 0; i < num_tokens; ++i) {
    // Sleep in small steps so a cancellation is seen promptly.
    const absl::Time wake = absl::Now() + absl::Milliseconds(token_delay_ms_.load());
    while (absl::Now() < wake && !context->IsCancelled()) absl::SleepFor(absl::Milliseconds(5));
    if (context->IsCancelled()) {
      ++cancellations_;
      return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
    }
    GenerateResponse response;
    response.add_token_ids(i);
    response.set_text(absl::StrCat("t", i, " "));
    if (!writer->Write(response)) {
      ++cancellations_;
      return grpc::Status(grpc::StatusCode::CANCELLED, "client gone");
    }
    ++messages_written_;
  }
  last.mutable_final()->set_finish_reason(FINISH_REASON_MAX_TOKENS);
  if (request->chat().tools_size() > 0) {
    // A stand-in call of the first tool whose arguments tell what the request offered.
    const auto& chat = request->chat();
    ToolCall* call = last.add_tool_calls();
    call->set_id("call_fake");
    call->set_name(chat.tools(0).name());
    call->set_arguments(absl::StrCat(
        "{\"tools\": ", chat.tools_size(), ", \"mode\": ", chat.tool_choice().mode(),
        chat.has_parallel_tool_calls() ? ", \"parallel\": " : "",
        chat.has_parallel_tool_calls() ? (chat.parallel_tool_calls() ? "true" : "false") : "",
        ", \"only\": \"", chat.tool_choice().name(), "\", \"parameters\": ",
        chat.tools(0).parameters().empty() ? "null" : chat.tools(0).parameters(), "}"));
    last.mutable_final()->set_finish_reason(FINISH_REASON_TOOL_CALLS);
    if (chat.stream_tool_calls()) {  // the call's name, then its arguments in two pieces
      const std::string& arguments = call->arguments();
      for (const size_t at : {size_t{0}, size_t{5}}) {
        GenerateResponse streamed;
        ToolCallDelta* delta = streamed.add_tool_call_deltas();
        if (at == 0) {
          delta->set_id(call->id());
          delta->set_name(call->name());
        }
        delta->set_arguments(arguments.substr(at, at == 0 ? 5 : std::string::npos));
        writer->Write(streamed);
      }
    }
  }
  writer->Write(last);
  return grpc::Status::OK;
}

grpc::Status FakeWorker::Fork(grpc::ServerContext* context, const ForkRequest* request,
                              ForkResponse* response) {
  Tag(context);
  if (unavailable_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "draining");
  if (!sessions().contains(request->session_id())) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND, "session_id: no such session");
  }
  std::lock_guard lock(mu_);
  const int history = history_[request->session_id()];
  for (int i = 1; i <= std::max(1, request->num_forks()); ++i) {
    const std::string fork = absl::StrCat(request->session_id(), "#", i);
    response->add_session_ids(fork);
    sessions_.insert(fork);
    history_[fork] = history;
  }
  response->set_worker_id(id_);
  return grpc::Status::OK;
}

grpc::Status FakeWorker::CloseSession(grpc::ServerContext* context,
                                      const CloseSessionRequest* request,
                                      CloseSessionResponse* response) {
  Tag(context);
  if (unavailable_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "draining");
  std::lock_guard lock(mu_);
  const auto it = history_.find(request->session_id());
  if (it == history_.end()) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND, "session_id: no such session");
  }
  response->set_num_tokens(it->second);
  response->set_worker_id(id_);
  history_.erase(it);
  return grpc::Status::OK;
}

grpc::Status FakeWorker::Tokenize(grpc::ServerContext* context, const TokenizeRequest* request,
                                  TokenizeResponse* response) {
  Tag(context);
  if (unavailable_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "draining");
  for (char c : request->has_chat() ? StandInChat(request->chat()) : request->text()) {
    response->add_token_ids(static_cast<unsigned char>(c));
    response->add_pieces(std::string(1, c));
  }
  return grpc::Status::OK;
}

grpc::Status FakeWorker::Detokenize(grpc::ServerContext* context,
                                    const ringserve::v1::DetokenizeRequest* request,
                                    ringserve::v1::DetokenizeResponse* response) {
  Tag(context);
  if (unavailable_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "draining");
  std::string text;
  for (const int32_t id : request->token_ids()) {
    if (id < 0 || id > 255) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "token_ids: outside the stand-in");
    }
    text.push_back(static_cast<char>(id));
  }
  response->set_text(text);
  return grpc::Status::OK;
}

grpc::Status FakeWorker::GetModelInfo(grpc::ServerContext* context,
                                      const GetModelInfoRequest* request, ModelInfo* response) {
  Tag(context);
  if (unavailable_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "draining");
  response->set_worker_id(id_);
  response->set_model_name("fake");
  response->set_vocab_size(kVocabSize);
  response->set_context_length(kContextLength);
  response->set_bos_token_id(1);
  response->add_eos_token_ids(2);
  response->set_embedding_size(kEmbeddingSize);
  return grpc::Status::OK;
}

grpc::Status FakeWorker::Embed(grpc::ServerContext* context, const EmbedRequest* request,
                               EmbedResponse* response) {
  Tag(context);
  if (unavailable_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "draining");
  ++embed_calls_;
  embedded_inputs_ += request->inputs_size();
  response->set_request_id(request->request_id());
  for (int i = 0; i < request->inputs_size(); ++i) {
    const EmbedInput& input = request->inputs(i);
    if (input.text() == "bad") {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          absl::StrCat("inputs[", i, "]: the stand-in refuses \"bad\""));
    }
    std::vector<double> values(kEmbeddingSize, 1.0);
    int tokens = 0;
    const auto add = [&](int x) { values[static_cast<size_t>(tokens++ % kEmbeddingSize)] += x; };
    for (const char c : input.text()) add(static_cast<unsigned char>(c));
    for (const int32_t id : input.tokens().ids()) add(id);
    double norm = 0;
    for (const double v : values) norm += v * v;
    Embedding* out = response->add_embeddings();
    for (const double v : values) out->add_values(static_cast<float>(v / std::sqrt(norm)));
    out->set_prompt_tokens(tokens);
  }
  return grpc::Status::OK;
}

grpc::Status FakeWorker::GetStats(grpc::ServerContext* context, const GetStatsRequest* request,
                                  GetStatsResponse* response) {
  WorkerStats* stats = response->add_workers();
  stats->set_worker_id(id_);
  stats->set_draining(unavailable_);
  stats->set_draft_tokens_total(10);  // fixed, for the CLI's speculative decoding line
  stats->set_accepted_draft_tokens_total(4);
  std::lock_guard lock(mu_);
  stats->set_sessions(static_cast<int64_t>(history_.size()));
  return grpc::Status::OK;
}

grpc::Status FakeWorker::Drain(grpc::ServerContext* context, const DrainRequest* request,
                               DrainResponse* response) {
  set_unavailable(true);
  SetServing(false);
  return grpc::Status::OK;
}

bool FakeWorker::HasHistory(const std::string& session) const {
  std::lock_guard lock(mu_);
  return history_.contains(session);
}

grpc::Status FakeWorker::Account(const GenerateRequest& request, int num_tokens,
                                 GenerateFinal* final) {
  const std::string& session = request.session_id();
  const int input = request.has_tokens() ? request.tokens().ids_size()
                    : request.has_chat() ? static_cast<int>(StandInChat(request.chat()).size())
                                         : static_cast<int>(request.text().size());
  int history = 0;
  if (request.append() && !session.empty()) {
    const auto it = history_.find(session);
    if (it == history_.end()) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "session_id: no such session");
    }
    history = it->second;
    if (request.has_expected_history_tokens() && request.expected_history_tokens() != history) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          "expected_history_tokens: the session holds a different history");
    }
  }
  Usage* usage = final->mutable_usage();
  usage->set_prompt_tokens(history + input);
  usage->set_cached_tokens(history);
  usage->set_completion_tokens(num_tokens);
  usage->set_worker_id(id_);
  if (!session.empty()) {
    history_[session] = history + input + num_tokens;
    final->set_history_tokens(history + input + num_tokens);
    if (forget_sessions_) history_.erase(session);
  }
  return grpc::Status::OK;
}

}  // namespace ringserve::router::testing
