// One Generate stream: submits the job, then relays its events as they come. The engine
// thread's notifier and gRPC's OnWriteDone both "pump": take the pending event (if no
// write is in flight) and start writing it; an event with more scored prompt tokens than
// one message carries (kMaxPromptLogprobsPerMessage) goes out over several. Client cancellation
// cancels the job; the stream ends only after the job's final event, so the engine never notifies a
// finished reactor.
#ifndef RINGSERVE_WORKER_SERVER_GENERATE_REACTOR_H_
#define RINGSERVE_WORKER_SERVER_GENERATE_REACTOR_H_

#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "grpcpp/grpcpp.h"
#include "ringserve/v1/inference.pb.h"
#include "worker/engine/job_channel.h"
#include "worker/server/inference_service.h"

namespace ringserve::server {

class GenerateReactor final : public grpc::ServerWriteReactor<ringserve::v1::GenerateResponse> {
 public:
  // Starts the call; the reactor owns itself from here and is destroyed in OnDone().
  static GenerateReactor* Start(const ServiceEnv& env, grpc::CallbackServerContext* context,
                                const ringserve::v1::GenerateRequest& request);

  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  // Shared with the job's notifier, which may run on the engine thread until the final
  // event was taken; `reactor` is cleared in OnDone.
  struct Link {
    std::mutex mu;
    GenerateReactor* reactor = nullptr;
  };

  GenerateReactor(const ServiceEnv& env, grpc::CallbackServerContext* context);
  void Begin(const ringserve::v1::GenerateRequest& request);
  void FinishWith(const absl::Status& status);
  // Writes the next pending event unless a write is in flight. Link::mu held.
  void PumpLocked();

  const ServiceEnv& env_;
  grpc::CallbackServerContext* context_;
  std::shared_ptr<Link> link_ = std::make_shared<Link>();
  engine::JobRequest job_request_;
  std::string request_id_;
  std::optional<engine::JobHandle> handle_;
  ringserve::v1::GenerateResponse response_;
  // The event being written when its scored prompt tokens take several messages, and how many
  // of them went out. Link::mu.
  std::optional<engine::JobEvent> held_;
  size_t prompt_sent_ = 0;
  bool write_in_flight_ = false;  // Link::mu
  bool finished_ = false;         // Link::mu: Finish called
  absl::Time last_write_;
};

}  // namespace ringserve::server

#endif  // RINGSERVE_WORKER_SERVER_GENERATE_REACTOR_H_
