#include "tests/unit/router/fake_worker.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"

namespace ringserve::router::testing {

using namespace ringserve::v1;  // NOLINT(build/namespaces): message types, test-only

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
  absl::MutexLock lock(&mu_);
  return last_deadline_left_;
}

std::set<std::string> FakeWorker::sessions() const {
  absl::MutexLock lock(&mu_);
  return sessions_;
}

void FakeWorker::Tag(grpc::ServerContext* context) const {
  context->AddInitialMetadata("x-ringserve-worker", id_);
  context->AddTrailingMetadata("x-ringserve-worker", id_);
}

grpc::Status FakeWorker::Generate(grpc::ServerContext* context, const GenerateRequest* request,
                                  grpc::ServerWriter<GenerateResponse>* writer) {
  ++generate_calls_;
  if (unavailable_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "draining");
  {
    absl::MutexLock lock(&mu_);
    if (!request->session_id().empty()) sessions_.insert(request->session_id());
    const auto deadline = context->deadline();
    last_deadline_left_ = deadline == std::chrono::system_clock::time_point::max()
                              ? absl::InfiniteDuration()
                              : absl::FromChrono(deadline) - absl::Now();
  }
  Tag(context);
  const int num_tokens = num_tokens_;
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
  }
  GenerateResponse last;
  last.mutable_final()->set_finish_reason(FINISH_REASON_MAX_TOKENS);
  last.mutable_final()->mutable_usage()->set_worker_id(id_);
  last.mutable_final()->mutable_usage()->set_completion_tokens(num_tokens);
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
  response->add_session_ids(request->session_id() + "#1");
  response->set_worker_id(id_);
  return grpc::Status::OK;
}

grpc::Status FakeWorker::Tokenize(grpc::ServerContext* context, const TokenizeRequest* request,
                                  TokenizeResponse* response) {
  Tag(context);
  if (unavailable_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "draining");
  for (char c : request->text()) response->add_token_ids(static_cast<unsigned char>(c));
  return grpc::Status::OK;
}

grpc::Status FakeWorker::GetModelInfo(grpc::ServerContext* context,
                                      const GetModelInfoRequest* request, ModelInfo* response) {
  Tag(context);
  if (unavailable_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "draining");
  response->set_worker_id(id_);
  return grpc::Status::OK;
}

grpc::Status FakeWorker::GetStats(grpc::ServerContext* context, const GetStatsRequest* request,
                                  GetStatsResponse* response) {
  response->add_workers()->set_worker_id(id_);
  return grpc::Status::OK;
}

}  // namespace ringserve::router::testing
