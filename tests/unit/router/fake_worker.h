// FakeWorker: an in-process stand-in for ringserve-worker on a loopback port, for the
// router's and the client tools' tests. It streams numbered tokens, keeps each session's
// history length (so appends, usage and expected_history_tokens behave as on a worker),
// records what it saw (sessions, cancellation, deadlines) and can be made unhealthy,
// unavailable or killed.
#ifndef RINGSERVE_TESTS_UNIT_ROUTER_FAKE_WORKER_H_
#define RINGSERVE_TESTS_UNIT_ROUTER_FAKE_WORKER_H_

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "grpcpp/server.h"
#include "ringserve/v1/admin.grpc.pb.h"
#include "ringserve/v1/inference.grpc.pb.h"

namespace ringserve::router::testing {

// Thread: gRPC's sync-server threads serve; the test thread configures and inspects.
class FakeWorker final : public ringserve::v1::Inference::Service,
                         public ringserve::v1::Admin::Service {
 public:
  explicit FakeWorker(std::string id);
  ~FakeWorker() override;

  const std::string& id() const { return id_; }
  const std::string& address() const { return address_; }

  // Generate streams this many token messages (token id i, text "t<i> ") and then a
  // final message, waiting `token_delay` before each. A request's max_tokens, when set,
  // takes the place of num_tokens.
  void set_tokens(int num_tokens, absl::Duration token_delay) {
    num_tokens_ = num_tokens;
    token_delay_ms_ = absl::ToInt64Milliseconds(token_delay);
  }
  // Every Inference call answers UNAVAILABLE at once (a draining worker).
  void set_unavailable(bool unavailable) { unavailable_ = unavailable; }
  // Each Generate leaves no session behind, as if the worker restarted after every reply.
  void set_forget_sessions(bool forget) { forget_sessions_ = forget; }
  // The grpc.health.v1 status of the whole server.
  void SetServing(bool serving);
  // Stops the server at once: calls in flight are cancelled, new ones cannot connect.
  void Kill();

  // Whether the worker holds a history for `session` (made and not closed or forgotten).
  bool HasHistory(const std::string& session) const;
  int generate_calls() const { return generate_calls_.load(); }
  // Embed calls, and the inputs they carried.
  int embed_calls() const { return embed_calls_.load(); }
  int embedded_inputs() const { return embedded_inputs_.load(); }
  // Generate calls that carried a response_format.
  int formatted_calls() const { return formatted_calls_.load(); }
  int cancellations() const { return cancellations_.load(); }
  // Generate messages written to callers so far (each token's).
  int64_t messages_written() const { return messages_written_.load(); }
  // The time left to the deadline of the last Generate, as the worker saw it on arrival
  // (InfiniteDuration when it had none).
  absl::Duration last_deadline_left() const;
  std::set<std::string> sessions() const;

  grpc::Status Generate(grpc::ServerContext* context, const ringserve::v1::GenerateRequest* request,
                        grpc::ServerWriter<ringserve::v1::GenerateResponse>* writer) override;
  grpc::Status Fork(grpc::ServerContext* context, const ringserve::v1::ForkRequest* request,
                    ringserve::v1::ForkResponse* response) override;
  grpc::Status CloseSession(grpc::ServerContext* context,
                            const ringserve::v1::CloseSessionRequest* request,
                            ringserve::v1::CloseSessionResponse* response) override;
  grpc::Status Tokenize(grpc::ServerContext* context, const ringserve::v1::TokenizeRequest* request,
                        ringserve::v1::TokenizeResponse* response) override;
  // Tokenize's inverse: a byte per id below 256; others are INVALID_ARGUMENT.
  grpc::Status Detokenize(grpc::ServerContext* context,
                          const ringserve::v1::DetokenizeRequest* request,
                          ringserve::v1::DetokenizeResponse* response) override;
  grpc::Status GetModelInfo(grpc::ServerContext* context,
                            const ringserve::v1::GetModelInfoRequest* request,
                            ringserve::v1::ModelInfo* response) override;
  // A stand-in embedding per input: kEmbeddingSize values from its bytes, unit length; an
  // input with the text "bad" is INVALID_ARGUMENT naming it (inputs[i]).
  grpc::Status Embed(grpc::ServerContext* context, const ringserve::v1::EmbedRequest* request,
                     ringserve::v1::EmbedResponse* response) override;
  grpc::Status GetStats(grpc::ServerContext* context, const ringserve::v1::GetStatsRequest* request,
                        ringserve::v1::GetStatsResponse* response) override;
  // Turns health NOT_SERVING and every later Inference call UNAVAILABLE.
  grpc::Status Drain(grpc::ServerContext* context, const ringserve::v1::DrainRequest* request,
                     ringserve::v1::DrainResponse* response) override;

 private:
  void Tag(grpc::ServerContext* context) const;
  // Checks an append against the session's history and fills the usage of a request
  // that generates `num_tokens`; records the new history. NOT_FOUND or
  // FAILED_PRECONDITION as a worker would answer. Requires mu_ held.
  grpc::Status Account(const ringserve::v1::GenerateRequest& request, int num_tokens,
                       ringserve::v1::GenerateFinal* final);

  const std::string id_;
  std::string address_;
  std::unique_ptr<grpc::Server> server_;
  std::atomic<int> num_tokens_{3};
  std::atomic<int64_t> token_delay_ms_{0};
  std::atomic<bool> unavailable_{false};
  std::atomic<bool> forget_sessions_{false};
  std::atomic<int> generate_calls_{0};
  std::atomic<int> embed_calls_{0};
  std::atomic<int> embedded_inputs_{0};
  std::atomic<int> formatted_calls_{0};
  std::atomic<int> cancellations_{0};
  std::atomic<int64_t> messages_written_{0};
  std::atomic<bool> killed_{false};

  // std::mutex, not Abseil's, so ThreadSanitizer sees it (see tests/tsan.supp).
  mutable std::mutex mu_;
  std::set<std::string> sessions_;  // guarded by mu_
  // Live sessions and the tokens of history each holds.
  std::map<std::string, int> history_;                            // guarded by mu_
  absl::Duration last_deadline_left_ = absl::InfiniteDuration();  // guarded by mu_
};

// Polls `condition` every 10 ms until it holds or `timeout` passes; returns its last value.
template <typename Condition>
bool Eventually(Condition condition, absl::Duration timeout = absl::Seconds(10)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!condition()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return true;
}

}  // namespace ringserve::router::testing

#endif  // RINGSERVE_TESTS_UNIT_ROUTER_FAKE_WORKER_H_
