// Paged causal attention on the GPU, the SIMT kernel: one kernel for prefill chunks and decode
// alike. attention_launch.cu plans its work items, launches it and merges split-parallel rows.
//
// Arithmetic (the definition every path reproduces bit for bit). A query row (token, query
// head) at position p attends to keys f..p of its sequence: f = 0, or with a sliding window
// FirstKey(p, window). Keys are cut into splits of kAttentionSplitKeys and each split into
// tiles of kAttentionTileKeys, both aligned to absolute key positions. Per split that holds
// one of the row's keys, from (m, l, acc) = (-inf, 0, 0), tile by tile:
//   score_j = dot(q, k_j) * scale  (one FMA chain over d; -inf for j < f and j > p)
//   m' = max(m, max_j score_j); alpha = RescaleFactor(m, m'); p_j = Exp(score_j - m')
//   l = l * alpha + WarpSum(p_j);  acc[d] = acc[d] * alpha, then += p_j v_j[d] for j in order
// then the split states are merged left to right into (M, L, O) with
//   a = RescaleFactor(M, M'), b = RescaleFactor(m, M'), L = L a + l b, O[d] = O[d] a + acc[d] b
// and out[d] = O[d] / L. All of it in f32 through the explicit-rounding helpers of
// cuda_index.h; K and V are converted from the activation dtype exactly.
//
// Batch invariance. The definition depends only on the row's own q, p and keys, never on
// which rows share a thread block: keys outside f..p inside a tile, and whole tiles outside,
// add exact zeros (alpha is exactly 1 when the max does not move, p_j = 0 terms are skipped;
// before the row's first key its max is still -inf and the tile is skipped outright).
// So a token gives the same bits alone, among other sequences, or inside any prefill chunk.
//
// Two places run the merge: a thread block that walks all of a row's splits merges them as
// it goes (prefill items, and decode when the batch has parallelism enough), and for long
// decode rows each split may run as its own thread block (flash-decoding), writing its
// (m, l, acc) to scratch for MergeSplitsKernel (attention_launch.cu), which merges in the
// same order with the same helpers. f32 partials round-trip exactly, so both give the same
// bits; whether a row runs split-parallel is a scheduling choice (SplitParallel) and may
// depend on the batch.
//
// Work items: the tokens of each sequence in groups of `tokens_per_item` consecutive tokens,
// listed on the device by attention_launch.cu. A thread block takes (item, kv head, split
// slot): its rows are the item's tokens x the kv head's query heads (GQA), and every K/V tile
// it loads serves all of them.
//
// With the tensor-core option the launcher runs attention_mma.cu's kernel instead (its own
// arithmetic on mma.sync, for every row of the model), with the same plan and merge.
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "kernels/cuda/attention.h"
#include "kernels/cuda/attention_common.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_dtype.cuh"
#include "kernels/cuda/cuda_namespace.h"

namespace ringserve::kernels::RS_CUDA_NS {
namespace {

constexpr int kTile = kAttentionTileKeys;
constexpr int kThreads = 128;
constexpr int kWarps = kThreads / 32;
// Rows (tokens x query heads of one kv head) a thread block aims for.
constexpr int kTargetRows = 16;
// Per-row state in shared memory: the current split's (max, sum), the merged (max, sum).
constexpr int kStateFloats = 4;

static_assert(kTile == 32, "one key per lane");

using Params = AttentionParams;

// Shared memory of one thread block, in floats: q, acc and O of every row, the K tile (rows
// padded by one float so lanes reading different keys hit different banks), the V tile, the
// row states, then the item's token positions.
struct SharedLayout {
  int64_t q, acc, o, k, v, state, pos, total_bytes;
  __host__ __device__ SharedLayout(int max_rows, int head_dim, int tokens_per_item) {
    q = 0;
    acc = q + static_cast<int64_t>(max_rows) * head_dim;
    o = acc + static_cast<int64_t>(max_rows) * head_dim;
    k = o + static_cast<int64_t>(max_rows) * head_dim;
    v = k + static_cast<int64_t>(kTile) * (head_dim + 1);
    state = v + static_cast<int64_t>(kTile) * head_dim;
    pos = state + static_cast<int64_t>(kStateFloats) * max_rows;
    total_bytes = (pos + tokens_per_item) * 4;
  }
};

// One tile of keys [k0, k0 + 32) for one row, by one warp (lane j owns key k0 + j).
// `q`, `acc`, `state` are the row's slices of shared memory.
__device__ void RowTileStep(const float* q, const float* k_tile, const float* v_tile, float* acc,
                            float* state, float* warp_probs, int head_dim, int k0, int first_key,
                            int position, float scale) {
  const int lane = static_cast<int>(threadIdx.x) % 32;
  const float m = state[0];
  const float l = state[1];
  const bool valid = k0 + lane >= first_key && k0 + lane <= position;
  const float* key = k_tile + lane * (head_dim + 1);
  float dot = 0;
  for (int d = 0; d < head_dim; ++d) dot = Fma(q[d], key[d], dot);
  const float score = valid ? Mul(dot, scale) : kNegInf;
  const float m_new = MaxF(m, WarpMax(score));
  if (m_new == kNegInf) return;  // no key of this split reached yet (warp-uniform)
  const float alpha = RescaleFactor(m, m_new);
  const float prob = valid ? Exp(Sub(score, m_new)) : 0.0F;
  const float l_new = Add(Mul(l, alpha), WarpSum(prob));
  warp_probs[lane] = prob;
  __syncwarp();
  for (int d = lane; d < head_dim; d += 32) {
    float a = acc[d];
    if (alpha != 1.0F) a = Mul(a, alpha);
    for (int j = 0; j < kTile; ++j) {
      const float pj = warp_probs[j];
      if (pj != 0.0F) a = Fma(pj, v_tile[j * head_dim + d], a);
    }
    acc[d] = a;
  }
  __syncwarp();  // every lane has read warp_probs and the old state
  if (lane == 0) {
    state[0] = m_new;
    state[1] = l_new;
  }
  __syncwarp();
}

// Merges the row's finished split into its running (M, L, O) and resets the split state.
__device__ void MergeSplit(float* acc, float* o, float* state, int head_dim) {
  const int lane = static_cast<int>(threadIdx.x) % 32;
  const float m = state[0], l = state[1], big_m = state[2], big_l = state[3];
  const float m_new = MaxF(big_m, m);
  const float a = RescaleFactor(big_m, m_new);
  const float b = RescaleFactor(m, m_new);
  for (int d = lane; d < head_dim; d += 32) {
    o[d] = MergeValue(o[d], a, acc[d], b);
    acc[d] = 0;
  }
  __syncwarp();
  if (lane == 0) {
    state[0] = kNegInf;
    state[1] = 0;
    state[2] = m_new;
    state[3] = MergeValue(big_l, a, l, b);
  }
  __syncwarp();
}

// Keys [k0, k0 + 32) of one kv head into shared memory as f32, zeros from key_end on.
template <typename T>
__device__ void LoadTile(const T* k_cache, const T* v_cache, const int32_t* table, const Params& p,
                         int kv_head, int k0, int key_end, float* k_s, float* v_s) {
  const int hd = p.head_dim;
  for (int e = static_cast<int>(threadIdx.x); e < kTile * hd; e += kThreads) {
    const int j = e / hd, d = e % hd;
    float kv_k = 0, kv_v = 0;
    if (k0 + j < key_end) {
      const int64_t offset = KvOffset(table, p.block_size, k0 + j, p.num_kv_heads, hd, kv_head) + d;
      kv_k = ToFloat(k_cache[offset]);
      kv_v = ToFloat(v_cache[offset]);
    }
    k_s[j * (hd + 1) + d] = kv_k;
    v_s[j * hd + d] = kv_v;
  }
}

// The same with 16-byte loads; needs head_dim a multiple of 16 / sizeof(T) and 16-byte
// aligned K and V (the launcher checks).
template <typename T>
__device__ void LoadTileVectorized(const T* k_cache, const T* v_cache, const int32_t* table,
                                   const Params& p, int kv_head, int k0, int key_end, float* k_s,
                                   float* v_s) {
  constexpr int kVec = 16 / sizeof(T);
  const int hd = p.head_dim;
  const int vectors_per_key = hd / kVec;
  for (int e = static_cast<int>(threadIdx.x); e < kTile * vectors_per_key; e += kThreads) {
    const int j = e / vectors_per_key, d = e % vectors_per_key * kVec;
    uint4 raw_k = make_uint4(0, 0, 0, 0), raw_v = make_uint4(0, 0, 0, 0);
    if (k0 + j < key_end) {
      const int64_t offset = KvOffset(table, p.block_size, k0 + j, p.num_kv_heads, hd, kv_head) + d;
      raw_k = *reinterpret_cast<const uint4*>(k_cache + offset);
      raw_v = *reinterpret_cast<const uint4*>(v_cache + offset);
    }
    T kv_k[kVec], kv_v[kVec];
    memcpy(static_cast<void*>(kv_k), &raw_k, sizeof(raw_k));  // registers; no aliasing casts
    memcpy(static_cast<void*>(kv_v), &raw_v, sizeof(raw_v));
#pragma unroll
    for (int i = 0; i < kVec; ++i) {
      k_s[j * (hd + 1) + d + i] = ToFloat(kv_k[i]);
      v_s[j * hd + d + i] = ToFloat(kv_v[i]);
    }
  }
}

// T: the activation dtype of q (unless q_f32) and out; KvT: the cache's, T or Fp8.
template <typename T, typename KvT>
__global__ void __launch_bounds__(kThreads) PagedAttentionKernel(const Params p) {
  AttentionBlockWork work;
  if (!FindAttentionBlockWork(p, &work)) return;
  const int seq = work.seq, first = work.first, num_tokens = work.num_tokens;
  const int kv_head = work.kv_head, slot = work.slot;
  const bool split_parallel = work.split_parallel;

  const int hd = p.head_dim;
  const int rows = num_tokens * p.group;
  const SharedLayout layout(p.tokens_per_item * p.group, hd, p.tokens_per_item);
  RS_DYNAMIC_SHARED(float, smem);
  __shared__ float probs_s[kWarps][kTile];
  float* q_s = smem + layout.q;
  float* acc_s = smem + layout.acc;
  float* o_s = smem + layout.o;
  float* k_s = smem + layout.k;
  float* v_s = smem + layout.v;
  float* state_s = smem + layout.state;
  int* pos_s = reinterpret_cast<int*>(smem + layout.pos);
  const int tid = static_cast<int>(threadIdx.x);
  const int warp = tid / 32;

  for (int i = tid; i < num_tokens; i += kThreads) pos_s[i] = p.positions[first + i];
  for (int e = tid; e < rows * hd; e += kThreads) {
    const int r = e / hd, d = e % hd;
    const int64_t token = first + r / p.group;
    const int64_t head = static_cast<int64_t>(kv_head) * p.group + r % p.group;
    q_s[e] = LoadQ<T>(p, token * p.qkv_stride + head * hd + d);
    acc_s[e] = 0;
    o_s[e] = 0;
  }
  for (int r = tid; r < rows; r += kThreads) {
    float* st = state_s + kStateFloats * r;
    st[0] = kNegInf;
    st[1] = 0;
    st[2] = kNegInf;
    st[3] = 0;
  }
  __syncthreads();
  int max_position = 0, min_position = pos_s[0];
  for (int i = 0; i < num_tokens; ++i) {
    max_position = max(max_position, pos_s[i]);
    min_position = min(min_position, pos_s[i]);
  }
  const int context = max_position + 1;  // keys the block loads: first_min..max_position
  const int first_min = FirstKey(min_position, p.window);
  const int first_split = first_min / kAttentionSplitKeys;

  const KvT* k_cache = static_cast<const KvT*>(p.k);
  const KvT* v_cache = static_cast<const KvT*>(p.v);
  const int32_t* table = p.block_tables + static_cast<int64_t>(seq) * p.max_blocks_per_seq;
  // Split-parallel: slot z runs the row's splits first_split + z, + gridDim.z, ..., each from
  // a fresh state, so a split's partial has the same bits however many slots the grid has.
  const int split_begin = first_split + (split_parallel ? slot : 0);
  const int split_step = split_parallel ? static_cast<int>(gridDim.z) : 1;
  for (int s = split_begin; s < NumSplits(context); s += split_step) {
    const int key_end = min(context, (s + 1) * kAttentionSplitKeys);
    for (int k0 = max(s * kAttentionSplitKeys, first_min / kTile * kTile); k0 < key_end;
         k0 += kTile) {
      __syncthreads();  // every warp is done with the previous tile
      if (p.vector_loads) {
        LoadTileVectorized(k_cache, v_cache, table, p, kv_head, k0, key_end, k_s, v_s);
      } else {
        LoadTile(k_cache, v_cache, table, p, kv_head, k0, key_end, k_s, v_s);
      }
      __syncthreads();
      for (int r = warp; r < rows; r += kWarps) {
        const int position = pos_s[r / p.group];
        RowTileStep(q_s + r * hd, k_s, v_s, acc_s + r * hd, state_s + kStateFloats * r,
                    probs_s[warp], hd, k0, FirstKey(position, p.window), position, p.scale);
      }
    }
    // The same warp owns a row through its tiles, merge and output: no block barrier needed.
    for (int r = warp; r < rows; r += kWarps) {
      const int position = pos_s[r / p.group];
      if (s * kAttentionSplitKeys > position || s < FirstSplit(position, p.window)) {
        continue;  // not one of the row's splits
      }
      float* st = state_s + kStateFloats * r;
      if (split_parallel) {
        const int64_t head = static_cast<int64_t>(kv_head) * p.group + r % p.group;
        float* dst = SplitPartial(p, seq, head, s - first_split);
        const int lane = tid % 32;
        for (int d = lane; d < hd; d += 32) {
          dst[2 + d] = acc_s[r * hd + d];
          acc_s[r * hd + d] = 0;  // the block's next split of the row starts afresh
        }
        __syncwarp();  // every lane has read st before lane 0 resets it
        if (lane == 0) {
          dst[0] = st[0];
          dst[1] = st[1];
          st[0] = kNegInf;
          st[1] = 0;
        }
        __syncwarp();
      } else {
        MergeSplit(acc_s + r * hd, o_s + r * hd, st, hd);
      }
    }
  }
  if (split_parallel) return;  // MergeSplitsKernel writes the output
  T* out = static_cast<T*>(p.out);
  for (int r = warp; r < rows; r += kWarps) {
    const int64_t token = first + r / p.group;
    const int64_t head = static_cast<int64_t>(kv_head) * p.group + r % p.group;
    const float big_l = state_s[kStateFloats * r + 3];
    for (int d = tid % 32; d < hd; d += 32) {
      out[token * p.out_stride + head * hd + d] = FromFloat<T>(Div(o_s[r * hd + d], big_l));
    }
  }
}

}  // namespace

int SimtTokensPerItem(int group) { return std::max(1, kTargetRows / group); }

int64_t SimtAttentionSharedBytes(int group, int head_dim, int tokens_per_item) {
  return SharedLayout(tokens_per_item * group, head_dim, tokens_per_item).total_bytes;
}

void LaunchSimtAttentionKernel(cudaStream_t stream, dim3 grid, int64_t shared_bytes,
                               const AttentionParams& p, DType dtype, DType kv_dtype) {
  const auto launch = [&](auto activation, auto cache) {
    const auto kernel = &PagedAttentionKernel<decltype(activation), decltype(cache)>;
    RS_LAUNCH(kernel, grid, kThreads, shared_bytes, stream, p);
  };
  if (kv_dtype == DType::kF8E4M3) {
    RS_DISPATCH_ACTIVATION(dtype, T, launch(T{}, Fp8{}));
  } else {
    RS_DISPATCH_ACTIVATION(dtype, T, launch(T{}, T{}));
  }
}

cudaError_t ConfigureSimtAttentionKernels(size_t optin_bytes, size_t* max_dynamic_bytes) {
  for (const void* kernel :
       {reinterpret_cast<const void*>(PagedAttentionKernel<float, float>),
        reinterpret_cast<const void*>(PagedAttentionKernel<__half, __half>),
        reinterpret_cast<const void*>(PagedAttentionKernel<__nv_bfloat16, __nv_bfloat16>),
        reinterpret_cast<const void*>(PagedAttentionKernel<float, Fp8>),
        reinterpret_cast<const void*>(PagedAttentionKernel<__half, Fp8>),
        reinterpret_cast<const void*>(PagedAttentionKernel<__nv_bfloat16, Fp8>)}) {
    const cudaError_t error = RaiseDynamicSharedLimit(kernel, optin_bytes, max_dynamic_bytes);
    if (error != cudaSuccess) return error;
  }
  return cudaSuccess;
}

}  // namespace ringserve::kernels::RS_CUDA_NS
