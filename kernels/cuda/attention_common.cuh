// What the two paged-attention kernels share: the SIMT one (attention.cu) and the tensor-core
// one (attention_mma.cu) take the same parameters, the same work items and the same
// split-parallel decision, and write split partials in one format, so the launcher, the item
// plan and the split merge serve both.
#ifndef RINGSERVE_KERNELS_CUDA_ATTENTION_COMMON_CUH_
#define RINGSERVE_KERNELS_CUDA_ATTENTION_COMMON_CUH_

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdint>

#include "kernels/cuda/cuda_dtype.cuh"
#include "kernels/cuda/cuda_index.h"
#include "kernels/cuda/cuda_namespace.h"

namespace ringserve::kernels::RS_CUDA_NS {

struct AttentionParams {
  const void* qkv;  // q is read from it: in the K/V dtype T, or f32 (q_f32)
  int64_t qkv_stride;
  bool q_f32;
  void* out;
  int64_t out_stride;
  const void* k;
  const void* v;
  int num_q_heads;
  int num_kv_heads;
  int head_dim;
  int group;  // query heads per kv head
  float scale;
  int window;  // AttentionShape::window: 0, or a sliding window (SIMT kernel only)
  int block_size;
  int max_blocks_per_seq;
  const int32_t* positions;
  const int32_t* query_start;
  const int32_t* block_tables;
  const int2* items;
  const int* num_items;
  int tokens_per_item;
  // [num_seqs, num_q_heads, grid_splits, head_dim + 2]; a row's splits from its FirstSplit on
  float* partials;
  int grid_splits;    // split slots of the launch (grid z); 1 = no split-parallel rows
  bool vector_loads;  // K/V rows load as 16-byte vectors
};

// Element i of qkv as a float, whether q is stored in T or f32.
template <typename T>
__device__ __forceinline__ float LoadQ(const AttentionParams& p, int64_t i) {
  return p.q_f32 ? static_cast<const float*>(p.qkv)[i] : ToFloat(static_cast<const T*>(p.qkv)[i]);
}

// The work of thread block (item, kv head, split slot): the item's tokens x the kv head's
// query heads, all of its splits or (split-parallel) only split `slot`.
struct AttentionBlockWork {
  int seq;
  int first;       // the item's first token row
  int num_tokens;  // of the item
  int kv_head;
  int slot;
  bool split_parallel;
};

// False when the block has nothing to do: past the planned items, or a split slot its row
// does not have (or does not run split-parallel).
__device__ __forceinline__ bool FindAttentionBlockWork(const AttentionParams& p,
                                                       AttentionBlockWork* work) {
  if (static_cast<int>(blockIdx.x) >= *p.num_items) return false;
  const int2 item = p.items[blockIdx.x];
  work->seq = item.x;
  work->first = item.y;
  work->num_tokens = min(p.tokens_per_item, p.query_start[item.x + 1] - item.y);
  work->kv_head = static_cast<int>(blockIdx.y);
  work->slot = static_cast<int>(blockIdx.z);
  const int first_position = p.positions[item.y];
  const int seq_tokens = p.query_start[item.x + 1] - p.query_start[item.x];
  work->split_parallel = SplitParallel(seq_tokens, first_position, p.window, p.grid_splits);
  return work->slot == 0 ||
         (work->split_parallel && work->slot < RowSplits(first_position, p.window));
}

// The (max, sum, acc[head_dim]) state of the row's split FirstSplit + `split` of row (seq,
// head), as the split-parallel blocks write it and MergeSplitsKernel reads it.
__device__ __forceinline__ float* SplitPartial(const AttentionParams& p, int seq, int64_t head,
                                               int split) {
  return p.partials + ((static_cast<int64_t>(seq) * p.num_q_heads + head) * p.grid_splits + split) *
                          (p.head_dim + 2);
}

// Lets `kernel` use as much dynamic shared memory as the device's opt-in limit leaves beside
// its static shared memory; lowers *max_dynamic_bytes to that.
inline cudaError_t RaiseDynamicSharedLimit(const void* kernel, size_t optin_bytes,
                                           size_t* max_dynamic_bytes) {
  cudaFuncAttributes attributes;
  cudaError_t error = cudaFuncGetAttributes(&attributes, kernel);
  if (error != cudaSuccess) return error;
  const size_t dynamic = optin_bytes - std::min(optin_bytes, attributes.sharedSizeBytes);
  error = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                               static_cast<int>(dynamic));
  if (error != cudaSuccess) return error;
  *max_dynamic_bytes = std::min(*max_dynamic_bytes, dynamic);
  return cudaSuccess;
}

}  // namespace ringserve::kernels::RS_CUDA_NS

#endif  // RINGSERVE_KERNELS_CUDA_ATTENTION_COMMON_CUH_
