// Decode passes replayed as captured graphs (Backend::CaptureGraph): a pass of one token per
// sequence is padded to a fixed batch size, its "bucket", and each bucket's ops are captured
// once and replayed from then on, so a step costs one launch instead of ~10 per layer.
//
// Owned by LlamaModel; used from its thread only. Buckets are the powers of two below the
// largest batch and the largest batch itself, so padding at most doubles a batch: decode
// reads every weight once whatever the batch, and padding rows attend to nothing.
//
// A graph replays the kernels it was captured with, so a switch of the backend's attention
// kernel or MatMul algorithm rows (Backend::SetAttentionKernel, SetMatMulAlgoRows, between
// generations) drops every graph and the buckets capture again.
#ifndef RINGSERVE_WORKER_MODEL_DECODE_GRAPHS_H_
#define RINGSERVE_WORKER_MODEL_DECODE_GRAPHS_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/functional/function_ref.h"
#include "kernels/backend.h"

namespace ringserve::model {

struct DecodeGraphStats {
  int captured = 0;          // graphs captured (again after an attention kernel switch)
  int capture_failures = 0;  // buckets that run eagerly because their capture failed
  int64_t replays = 0;       // passes run by replaying a graph
};

class DecodeGraphs {
 public:
  // `backend` must support graphs and outlive this; max_batch > 0.
  DecodeGraphs(kernels::Backend* backend, int max_batch);

  // The smallest bucket holding `num_seqs` sequences, or 0 when none does.
  int BucketFor(int num_seqs) const;

  // Runs one pass of `bucket` rows. `enqueue_pass` enqueues it and must issue the same ops
  // with the same arguments every time (fixed buffers; the per-pass metadata is already in
  // device memory). The bucket's first pass runs eagerly, so anything its ops create lazily
  // exists before the capture that follows; later passes replay the graph. A bucket whose
  // capture fails keeps running eagerly (logged once).
  void Run(int bucket, absl::FunctionRef<void()> enqueue_pass);

  const DecodeGraphStats& stats() const { return stats_; }

 private:
  struct Bucket {
    explicit Bucket(int batch) : size(batch) {}
    int size;
    bool tried = false;  // a capture was attempted
    std::unique_ptr<kernels::OpGraph> graph;
  };

  // What the backend ran when the graphs were captured.
  struct Kernels {
    kernels::AttentionKernel attention;
    int64_t matmul_algo_rows;
    bool operator==(const Kernels&) const = default;
  };
  Kernels Current() const;

  kernels::Backend* backend_;
  Kernels captured_with_;
  std::vector<Bucket> buckets_;  // ascending sizes
  DecodeGraphStats stats_;
};

}  // namespace ringserve::model

#endif  // RINGSERVE_WORKER_MODEL_DECODE_GRAPHS_H_
