// The SIMT paged attention (attention.cu): entry points for the launcher in
// attention_launch.cu, which plans the work items and merges split-parallel rows for it and
// for the tensor-core kernel (attention_mma.h).
#ifndef RINGSERVE_KERNELS_CUDA_ATTENTION_H_
#define RINGSERVE_KERNELS_CUDA_ATTENTION_H_

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "kernels/cuda/attention_common.cuh"
#include "kernels/cuda/cuda_namespace.h"
#include "kernels/dtype.h"

namespace ringserve::kernels::RS_CUDA_NS {

// Query tokens per work item: about 16 rows (tokens x the group's query heads) per block.
int SimtTokensPerItem(int group);
// Dynamic shared memory of one thread block.
int64_t SimtAttentionSharedBytes(int group, int head_dim, int tokens_per_item);
// Runs the kernel over `grid` (items, kv heads, split slots) in activation dtype `dtype`
// over a cache of `kv_dtype` (`dtype`, or kF8E4M3).
void LaunchSimtAttentionKernel(cudaStream_t stream, dim3 grid, int64_t shared_bytes,
                               const AttentionParams& p, DType dtype, DType kv_dtype);
// RaiseDynamicSharedLimit for every instance of the kernel.
cudaError_t ConfigureSimtAttentionKernels(size_t optin_bytes, size_t* max_dynamic_bytes);

}  // namespace ringserve::kernels::RS_CUDA_NS

#endif  // RINGSERVE_KERNELS_CUDA_ATTENTION_H_
