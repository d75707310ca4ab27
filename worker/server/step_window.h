// The generator's recent steps, for Admin.GetStats' BatchStats (means and rates over the
// last window, not since start, so an operator sees the current load).
#ifndef RINGSERVE_WORKER_SERVER_STEP_WINDOW_H_
#define RINGSERVE_WORKER_SERVER_STEP_WINDOW_H_

#include <deque>
#include <mutex>

#include "absl/time/time.h"
#include "ringserve/v1/admin.pb.h"
#include "worker/engine/generator.h"

namespace ringserve::server {

// Thread: Add on the engine thread, Summarize on RPC threads.
class StepWindow {
 public:
  explicit StepWindow(absl::Duration window) : window_(window) {}
  void Add(const engine::StepRecord& step);
  void Summarize(absl::Time now, ringserve::v1::BatchStats* out);

 private:
  void Trim(absl::Time now);  // mu_ held

  const absl::Duration window_;
  std::mutex mu_;
  std::deque<engine::StepRecord> steps_;
};

}  // namespace ringserve::server

#endif  // RINGSERVE_WORKER_SERVER_STEP_WINDOW_H_
