// One Embed call: a generator job per input (JobRequest::embed), submitted together so the
// engine batches them, and one response once the last of them ends. The jobs' notifiers run
// on the engine thread; they only take the final event and, for the last job, finish the
// call. Client cancellation cancels every job; the first error cancels the rest and ends
// the call once all of them have ended, so no notifier outlives the reactor's state.
#ifndef RINGSERVE_WORKER_SERVER_EMBED_REACTOR_H_
#define RINGSERVE_WORKER_SERVER_EMBED_REACTOR_H_

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "absl/status/status.h"
#include "grpcpp/grpcpp.h"
#include "ringserve/v1/inference.pb.h"
#include "worker/engine/job_channel.h"
#include "worker/server/inference_service.h"

namespace ringserve::server {

// The most inputs one Embed call takes.
inline constexpr int kMaxEmbedInputs = 64;

class EmbedReactor final : public grpc::ServerUnaryReactor {
 public:
  // Starts the call; the reactor owns itself from here and is destroyed in OnDone().
  static EmbedReactor* Start(const ServiceEnv& env, grpc::CallbackServerContext* context,
                             const ringserve::v1::EmbedRequest& request,
                             ringserve::v1::EmbedResponse* response);

  void OnCancel() override;
  void OnDone() override;

 private:
  // Shared with the jobs' notifiers; `reactor` is cleared in OnDone.
  struct Link {
    std::mutex mu;
    EmbedReactor* reactor = nullptr;
  };

  EmbedReactor(const ServiceEnv& env, grpc::CallbackServerContext* context,
               ringserve::v1::EmbedResponse* response);
  void Begin(const ringserve::v1::EmbedRequest& request);
  // Takes the final events that are pending; finishes the call after the last. Link::mu held.
  void CollectLocked();
  void FinishLocked();

  const ServiceEnv& env_;
  grpc::CallbackServerContext* context_;
  ringserve::v1::EmbedResponse* response_;
  std::shared_ptr<Link> link_ = std::make_shared<Link>();
  bool normalize_ = true;
  int dimensions_ = 0;
  // One per input, sized once in Begin; kept until the reactor goes (a handle dropped in
  // its own notifier would take the channel that is calling it). Link::mu.
  std::string adapter_;  // EmbedRequest.adapter, for the per-adapter metrics
  std::vector<engine::JobHandle> handles_;
  std::vector<bool> done_;                 // Link::mu: its final event was taken
  std::vector<int32_t> truncated_tokens_;  // each input's truncate_prompt_tokens cut
  size_t num_done_ = 0;                    // Link::mu
  absl::Status status_;                    // Link::mu: the first error
  bool starting_ = true;                   // Link::mu
  bool finished_ = false;                  // Link::mu
};

}  // namespace ringserve::server

#endif  // RINGSERVE_WORKER_SERVER_EMBED_REACTOR_H_
