// CUDA graphs for Backend::CaptureGraph: RAII owners of cudaGraph_t and cudaGraphExec_t, and
// the OpGraph that replays an instantiated graph on the backend's stream.
#ifndef RINGSERVE_KERNELS_CUDA_CUDA_GRAPH_H_
#define RINGSERVE_KERNELS_CUDA_CUDA_GRAPH_H_

#include <cuda_runtime_api.h>

#include <memory>

#include "absl/status/statusor.h"
#include "kernels/backend.h"
#include "kernels/cuda/cuda_namespace.h"

namespace ringserve::kernels::RS_CUDA_NS {

struct CudaGraphDeleter {
  void operator()(cudaGraph_t graph) const;
};
struct CudaGraphExecDeleter {
  void operator()(cudaGraphExec_t exec) const;
};
using CudaGraphPtr = std::unique_ptr<CUgraph_st, CudaGraphDeleter>;
using CudaGraphExecPtr = std::unique_ptr<CUgraphExec_st, CudaGraphExecDeleter>;

// A captured graph, instantiated for launches on one stream. Owned by whoever captured it
// (the model); replayed from that backend's thread. Kernel arguments were copied at
// capture, so a replay reads only device memory the backend still owns.
class CudaOpGraph final : public OpGraph {
 public:
  // INTERNAL when the driver cannot instantiate `graph`.
  static absl::StatusOr<std::unique_ptr<OpGraph>> Instantiate(CudaGraphPtr graph, int ordinal,
                                                              cudaStream_t stream,
                                                              bool sync_after_replay);
  CudaOpGraph(CudaGraphExecPtr exec, int ordinal, cudaStream_t stream, bool sync_after_replay)
      : exec_(std::move(exec)),
        ordinal_(ordinal),
        stream_(stream),
        sync_after_replay_(sync_after_replay) {}

  // Enqueues the whole graph on the stream; with RINGSERVE_CUDA_SYNC=1 also waits and checks.
  void Replay() override;

 private:
  CudaGraphExecPtr exec_;
  const int ordinal_;
  cudaStream_t stream_;
  const bool sync_after_replay_;
};

}  // namespace ringserve::kernels::RS_CUDA_NS

#endif  // RINGSERVE_KERNELS_CUDA_CUDA_GRAPH_H_
