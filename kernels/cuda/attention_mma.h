// The tensor-core paged attention (attention_mma.cu): entry points for the launcher in
// attention_launch.cu, which plans the work items and merges split-parallel rows for both
// kernels.
#ifndef RINGSERVE_KERNELS_CUDA_ATTENTION_MMA_H_
#define RINGSERVE_KERNELS_CUDA_ATTENTION_MMA_H_

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "kernels/cuda/attention_common.cuh"
#include "kernels/cuda/cuda_namespace.h"
#include "kernels/dtype.h"

namespace ringserve::kernels::RS_CUDA_NS {

// Whether the tensor-core kernel covers this shape: f16 or bf16 activations, at most 64
// query heads per kv head, head_dim at most 256. Depends on the model only, never on the
// batch, so a model's rows all take the same path.
bool MmaAttentionSupports(DType dtype, int group, int head_dim);
// Query tokens per work item: 64 rows (tokens x the group's query heads) per thread block.
int MmaTokensPerItem(int group);
// Dynamic shared memory of one thread block.
int64_t MmaAttentionSharedBytes(int head_dim, int tokens_per_item);
// Runs the kernel over `grid` (items, kv heads, split slots), as PagedAttentionKernel.
void LaunchMmaAttentionKernel(cudaStream_t stream, dim3 grid, int64_t shared_bytes,
                              const AttentionParams& p, DType dtype);
// RaiseDynamicSharedLimit for every instance of the kernel.
cudaError_t ConfigureMmaAttentionKernels(size_t optin_bytes, size_t* max_dynamic_bytes);

}  // namespace ringserve::kernels::RS_CUDA_NS

#endif  // RINGSERVE_KERNELS_CUDA_ATTENTION_MMA_H_
