#include "worker/model/decode_graphs.h"

#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/check.h"
#include "common/log.h"

namespace ringserve::model {

DecodeGraphs::DecodeGraphs(kernels::Backend* backend, int max_batch)
    : backend_(backend), captured_with_(Current()) {
  RS_CHECK(backend->can_capture_graphs() && max_batch > 0);
  for (int size = 1; size < max_batch; size *= 2) buckets_.emplace_back(size);
  buckets_.emplace_back(max_batch);
}

DecodeGraphs::Kernels DecodeGraphs::Current() const {
  return {backend_->attention_kernel(), backend_->matmul_algo_rows()};
}

int DecodeGraphs::BucketFor(int num_seqs) const {
  const auto it = std::lower_bound(buckets_.begin(), buckets_.end(), num_seqs,
                                   [](const Bucket& b, int n) { return b.size < n; });
  return it == buckets_.end() ? 0 : it->size;
}

void DecodeGraphs::Run(int bucket, absl::FunctionRef<void()> enqueue_pass) {
  const auto it = std::find_if(buckets_.begin(), buckets_.end(),
                               [bucket](const Bucket& b) { return b.size == bucket; });
  RS_CHECK_MSG(it != buckets_.end(), "decode graphs: not a bucket");
  if (const Kernels now = Current(); !(now == captured_with_)) {
    for (Bucket& stale : buckets_) stale = Bucket(stale.size);
    captured_with_ = now;
  }
  Bucket& b = *it;
  if (b.graph != nullptr) {
    b.graph->Replay();
    ++stats_.replays;
    return;
  }
  enqueue_pass();
  if (b.tried) return;
  b.tried = true;
  absl::StatusOr<std::unique_ptr<kernels::OpGraph>> graph = backend_->CaptureGraph(enqueue_pass);
  if (!graph.ok()) {
    ++stats_.capture_failures;
    Log(LogLevel::kWarning, "model", "decode graph capture failed; this batch size runs eagerly",
        {{"batch", absl::StrCat(bucket)}, {"error", std::string(graph.status().message())}});
    return;
  }
  b.graph = *std::move(graph);
  ++stats_.captured;
}

}  // namespace ringserve::model
