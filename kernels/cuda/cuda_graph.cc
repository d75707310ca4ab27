#include "kernels/cuda/cuda_graph.h"

#include "absl/status/status.h"
#include "kernels/cuda/cuda_check.h"

namespace ringserve::kernels::RS_CUDA_NS {

void CudaGraphDeleter::operator()(cudaGraph_t graph) const { cudaGraphDestroy(graph); }

void CudaGraphExecDeleter::operator()(cudaGraphExec_t exec) const { cudaGraphExecDestroy(exec); }

absl::StatusOr<std::unique_ptr<OpGraph>> CudaOpGraph::Instantiate(CudaGraphPtr graph, int ordinal,
                                                                  cudaStream_t stream,
                                                                  bool sync_after_replay) {
  cudaGraphExec_t exec = nullptr;
  // CUDA 12+ signature: flags 0 = launched from the host, no auto-free of graph memory.
  RS_CUDA_RETURN_IF_ERROR(cudaGraphInstantiate(&exec, graph.get(), 0));
  // The executable copies what it needs; the graph itself can go now.
  return std::make_unique<CudaOpGraph>(CudaGraphExecPtr(exec), ordinal, stream, sync_after_replay);
}

void CudaOpGraph::Replay() {
  RS_CUDA_CHECK(cudaSetDevice(ordinal_));
  RS_CUDA_CHECK(cudaGraphLaunch(exec_.get(), stream_));
  if (sync_after_replay_) RS_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

}  // namespace ringserve::kernels::RS_CUDA_NS
