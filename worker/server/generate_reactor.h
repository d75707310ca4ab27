// One Generate stream: submits the request's jobs (one per completion, GenerateRequest.n),
// then relays their events as they come. The engine thread's notifiers and gRPC's
// OnWriteDone both "pump": take a pending event (if no write is in flight), from the
// completions in turn, and start writing it; an event with more scored prompt tokens than
// one message carries (kMaxPromptLogprobsPerMessage) goes out over several. Client
// cancellation cancels every job; the stream ends after the last completion's final event
// (or at the first error), and a notifier that fires after the reactor is gone finds it
// unlinked.
#ifndef RINGSERVE_WORKER_SERVER_GENERATE_REACTOR_H_
#define RINGSERVE_WORKER_SERVER_GENERATE_REACTOR_H_

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "grpcpp/grpcpp.h"
#include "ringserve/v1/inference.pb.h"
#include "worker/engine/job_channel.h"
#include "worker/server/inference_service.h"
#include "worker/tokenizer/thought_splitter.h"
#include "worker/tokenizer/tool_calls.h"

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

  // One completion: its job and what of its events is left to write. Link::mu.
  struct Completion {
    engine::JobRequest request;
    std::optional<engine::JobHandle> handle;
    // The event being written when its scored prompt tokens take several messages, and how
    // many of them went out.
    std::optional<engine::JobEvent> held;
    size_t prompt_sent = 0;
    bool done = false;  // its final event was written
    // GenerateRequest.return_prompt_token_ids, until its first message carries the input.
    bool send_prompt_ids = false;
    // Chat requests with tools: takes the calls out of the reply's text.
    std::optional<tokenizer::ToolCallParser> reply_parser;
    // Models that think first: takes the thought out of the reply's text.
    std::optional<tokenizer::ThoughtSplitter> thoughts;
  };

  // The next completion with an event to write, from next_ on; null when none has one.
  Completion* NextPending();
  void CancelAll();

  const ServiceEnv& env_;
  grpc::CallbackServerContext* context_;
  std::shared_ptr<Link> link_ = std::make_shared<Link>();
  std::string request_id_;
  std::string adapter_;                  // GenerateRequest.adapter, for the per-adapter metrics
  std::vector<Completion> completions_;  // sized once in Begin, before any notifier runs
  size_t next_ = 0;                      // where NextPending starts: each in turn
  size_t num_done_ = 0;
  ringserve::v1::GenerateResponse response_;
  bool starting_ = true;          // Link::mu: Begin is still setting the notifiers
  bool write_in_flight_ = false;  // Link::mu
  bool finished_ = false;         // Link::mu: Finish called
  absl::Time last_write_;
};

}  // namespace ringserve::server

#endif  // RINGSERVE_WORKER_SERVER_GENERATE_REACTOR_H_
