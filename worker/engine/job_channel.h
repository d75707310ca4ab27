// The path from the engine thread to one job's reader. The engine never blocks on it:
// events the reader has not taken yet are merged into one pending event, and a reader
// that falls more than max_pending_tokens behind makes Push() fail so the engine ends the
// job (a stalled client cannot hold KV blocks forever). Scored prompt tokens do not count:
// a job has at most its input's worth of them.
#ifndef RINGSERVE_WORKER_ENGINE_JOB_CHANNEL_H_
#define RINGSERVE_WORKER_ENGINE_JOB_CHANNEL_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>

#include "absl/time/time.h"
#include "worker/engine/job.h"

namespace ringserve::engine {

// Shared by the engine (Push/Finish) and the job's reader (Next/TryNext/Cancel); every
// method is thread-safe.
class JobChannel {
 public:
  // on_cancel runs on the cancelling thread, once, and must not block (it wakes the engine).
  JobChannel(uint64_t job_id, int32_t max_pending_tokens, std::function<void()> on_cancel);

  uint64_t job_id() const { return job_id_; }

  // Engine side. False, and nothing queued, when the reader is too far behind.
  [[nodiscard]] bool Push(JobEvent event);
  // Engine side: the last event (finished = true); always queued, merged after any pending
  // tokens. Later pushes are ignored.
  void Finish(JobEvent event);
  bool cancel_requested() const { return cancelled_.load(std::memory_order_acquire); }

  // Reader side. Blocks until an event is pending or `timeout` passes; nullopt on timeout
  // and after the final event was taken.
  std::optional<JobEvent> Next(absl::Duration timeout = absl::InfiniteDuration());
  std::optional<JobEvent> TryNext();
  // Called (from the engine thread, without locks held) whenever an event becomes pending;
  // immediately if one already is. Must be cheap and must not block or call back into
  // this channel's Push/Finish.
  void SetNotifier(std::function<void()> notify);
  // Asks the engine to end the job (it takes effect by the next step); idempotent.
  void Cancel();
  bool done() const;  // the final event was taken

 private:
  void Deliver(JobEvent event, bool final);

  const uint64_t job_id_;
  const int32_t max_pending_tokens_;
  std::function<void()> on_cancel_;
  std::atomic<bool> cancelled_{false};
  mutable std::mutex mu_;
  std::condition_variable ready_;
  std::optional<JobEvent> pending_;  // guarded by mu_
  bool finish_queued_ = false;       // guarded by mu_
  bool final_taken_ = false;         // guarded by mu_
  std::function<void()> notify_;     // guarded by mu_
};

// The reader's end of a submitted job. Dropping it cancels the job (the client went away).
class JobHandle {
 public:
  explicit JobHandle(std::shared_ptr<JobChannel> channel) : channel_(std::move(channel)) {}
  JobHandle(const JobHandle&) = delete;
  JobHandle& operator=(const JobHandle&) = delete;
  JobHandle(JobHandle&&) = default;
  JobHandle& operator=(JobHandle&&) = default;
  ~JobHandle() {
    if (channel_ != nullptr && !channel_->done()) channel_->Cancel();
  }

  uint64_t id() const { return channel_->job_id(); }
  std::optional<JobEvent> Next(absl::Duration timeout = absl::InfiniteDuration()) {
    return channel_->Next(timeout);
  }
  std::optional<JobEvent> TryNext() { return channel_->TryNext(); }
  void SetNotifier(std::function<void()> notify) { channel_->SetNotifier(std::move(notify)); }
  void Cancel() { channel_->Cancel(); }

  // Reads to the end: the concatenated tokens and text, and the final status/result.
  JobEvent Collect();

 private:
  std::shared_ptr<JobChannel> channel_;
};

}  // namespace ringserve::engine

#endif  // RINGSERVE_WORKER_ENGINE_JOB_CHANNEL_H_
