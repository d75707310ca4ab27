// Paged causal attention on tensor cores (AttentionKernel::kTensorCore, f16 and bf16
// activations): the structure of attention.cu with its dot products and its p v sums on
// mma.sync m16n8k16 (mma.cuh).
//
// Arithmetic. Rows (token, query head) are the rows of 16-row MMA tiles. A row at position p
// reads keys 0..p in splits of kAttentionSplitKeys and tiles of kMmaTileKeys, both aligned to
// absolute key positions. Per split, from (m, l, acc) = (-inf, 0, 0), tile by tile:
//   s_j = MMA(q, k_j) * scale  (Q K^T over head_dim, 16 dims per MMA in order; -inf for j > p)
//   m' = max(m, max_j s_j); alpha = RescaleFactor(m, m'); p_j = round_T(Exp(s_j - m'))
//   l = l * alpha + sum_j p_j  (the lane's 16 values in key order, then over the 4 lanes of
//   the row as a butterfly); acc = acc * alpha (when alpha != 1), then acc = MMA(P, V, acc)
//   over the tile's keys, 16 keys per MMA in order
// then the splits merge left to right exactly as in attention.cu, and out = O / L. The
// probabilities are rounded to the activation dtype (the MMA's input type) before both the
// sum and the product, so the weights applied to V are the ones normalised by L.
//
// Batch invariance. An MMA result element depends only on its row of A, its column of B and
// its accumulator, and a row sees its keys at the same tile columns whatever the batch (tiles
// are aligned to absolute positions). Keys past p get p_j = 0, which adds exact zero
// products; keys past the block's last position are zero in the tile; padding rows (q = 0,
// no position) only fill their own rows of the tile. So a row's bits depend only on its q, p
// and keys: alone, in any batch, in any prefill chunk, at any row of a tile. Every row of
// a model with this option takes this kernel (decode rows too, padded into the tile), so the
// chunking of a prompt can never move a row between arithmetics. Split-parallel decode writes
// the same (m, l, acc) states MergeSplitsKernel merges for the SIMT kernel: same bits both
// ways. That a row's bits do not depend on its row index in the tile is a property of the
// hardware the device tests check; the device's summation inside an MMA is its own, so the
// CPU emulation (fixed f32 order) matches it within rounding, not bit for bit.
//
// A thread block takes (item, kv head, split slot) as in attention.cu, with up to 64 rows:
// warp w owns rows [16w, 16w + 16) and keeps their state in registers; the block shares each
// K tile (key-major) and V tile (transposed) in shared memory, stored as pairs of 16-bit
// values so every fragment register is one 32-bit load (attention_mma_tiles.cuh).
#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "kernels/cuda/attention_common.cuh"
#include "kernels/cuda/attention_mma.h"
#include "kernels/cuda/attention_mma_tiles.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_dtype.cuh"
#include "kernels/cuda/cuda_index.h"
#include "kernels/cuda/cuda_namespace.h"
#include "kernels/cuda/mma.cuh"

namespace ringserve::kernels::RS_CUDA_NS {
namespace {

// The head_dim a kernel instance computes with (extra dims are zeros); 0 = unsupported. Not
// above 128: a lane's two accumulators alone are head_dim f32 registers, and at 256 ptxas
// spilled about 1 KiB a thread (sm_80 and sm_90), so such heads run the SIMT kernel.
constexpr int kMaxMmaHeadDim = 128;
int PaddedHeadDim(int head_dim) {
  for (const int padded : {32, 64, 96, kMaxMmaHeadDim}) {
    if (head_dim <= padded) return padded;
  }
  return 0;
}

__device__ __forceinline__ float QuadMax(float v) {
  v = MaxF(v, __shfl_xor_sync(kFullMask, v, 1));
  return MaxF(v, __shfl_xor_sync(kFullMask, v, 2));
}
__device__ __forceinline__ float QuadSum(float v) {
  v = Add(v, __shfl_xor_sync(kFullMask, v, 1));
  return Add(v, __shfl_xor_sync(kFullMask, v, 2));
}

// One lane's share of its warp's 16 rows: rows g and g + 8 of the tile (index h = 0, 1),
// columns 2t, 2t + 1 of every 8-column block of the output (fragment element 2h + c).
template <int HD>
struct MmaRowState {
  static constexpr int kDimGroups = HD / 8;
  float acc[kDimGroups][4];  // the current split's p v sums
  float o[kDimGroups][4];    // the finished splits, merged
  float m[2], l[2];          // the current split's max and sum
  float big_m[2], big_l[2];  // merged
  int position[2];           // -1 for padding rows

  __device__ void Reset(int h) {
#pragma unroll
    for (int n = 0; n < kDimGroups; ++n) acc[n][2 * h] = acc[n][2 * h + 1] = 0;
    m[h] = kNegInf;
    l[h] = 0;
  }
};

// One tile of keys [k0, k0 + kMmaTileKeys) for the warp's rows; `q_w` is its first row.
template <typename T, int HD>
__device__ void MmaTileStep(MmaRowState<HD>& st, const uint32_t* q_w, const uint32_t* k_w,
                            const uint32_t* vt_w, int k0, float scale) {
  using L = MmaTileLayout<HD>;
  const int lane = static_cast<int>(threadIdx.x) % 32;
  const int g = lane / 4, t = lane % 4;
  const uint32_t* q_lo = q_w + g * L::kRowWords;
  const uint32_t* q_hi = q_lo + 8 * L::kRowWords;
  float s[kKeyGroups][4] = {};
#pragma unroll
  for (int kk = 0; kk < HD / 16; ++kk) {
    const uint32_t a[4] = {q_lo[kk * 8 + t], q_hi[kk * 8 + t], q_lo[kk * 8 + 4 + t],
                           q_hi[kk * 8 + 4 + t]};
#pragma unroll
    for (int n = 0; n < kKeyGroups; ++n) {
      const uint32_t* key = k_w + (n * 8 + g) * L::kRowWords + kk * 8;
      const uint32_t b[2] = {key[t], key[4 + t]};
      MmaM16N8K16<T>(s[n], a, b);
    }
  }
  float row_max[2] = {kNegInf, kNegInf};
#pragma unroll
  for (int n = 0; n < kKeyGroups; ++n) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int key = k0 + n * 8 + 2 * t + i % 2;
      s[n][i] = key <= st.position[i / 2] ? Mul(s[n][i], scale) : kNegInf;
      row_max[i / 2] = MaxF(row_max[i / 2], s[n][i]);
    }
  }
  float alpha[2], sum[2] = {0, 0};
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const float m_new = MaxF(st.m[h], QuadMax(row_max[h]));
    alpha[h] = RescaleFactor(st.m[h], m_new);
    st.m[h] = m_new;
  }
  // P as A fragments: score block n holds keys 8n.. of the C layout, which is the A layout
  // of key block n / 2 (registers 0, 1 from even n, 2, 3 from odd n).
  uint32_t pa[kKeyGroups / 2][4];
#pragma unroll
  for (int n = 0; n < kKeyGroups; ++n) {
    float prob[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float e = s[n][i] == kNegInf ? 0.0F : Exp(Sub(s[n][i], st.m[i / 2]));
      prob[i] = ToFloat(FromFloat<T>(e));
      sum[i / 2] = Add(sum[i / 2], prob[i]);
    }
    pa[n / 2][n % 2 * 2] = PackPair<T>(prob[0], prob[1]);
    pa[n / 2][n % 2 * 2 + 1] = PackPair<T>(prob[2], prob[3]);
  }
#pragma unroll
  for (int h = 0; h < 2; ++h) st.l[h] = Add(Mul(st.l[h], alpha[h]), QuadSum(sum[h]));
#pragma unroll
  for (int n = 0; n < MmaRowState<HD>::kDimGroups; ++n) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      if (alpha[i / 2] != 1.0F) st.acc[n][i] = Mul(st.acc[n][i], alpha[i / 2]);
    }
  }
#pragma unroll
  for (int kk = 0; kk < kMmaTileKeys / 16; ++kk) {
#pragma unroll
    for (int n = 0; n < MmaRowState<HD>::kDimGroups; ++n) {
      const uint32_t* dim = vt_w + (n * 8 + g) * L::kVtRowWords + kk * 8;
      const uint32_t b[2] = {dim[t], dim[4 + t]};
      MmaM16N8K16<T>(st.acc[n], pa[kk], b);
    }
  }
}

// The end of split `split` for the lane's rows that have it: its state goes to the
// split-parallel scratch, or merges into (M, L, O) as MergeSplit does in attention.cu.
template <int HD>
__device__ void FinishSplit(MmaRowState<HD>& st, const AttentionParams& p,
                            const AttentionBlockWork& work, int warp_row0, int split) {
  const int lane = static_cast<int>(threadIdx.x) % 32;
  const int g = lane / 4, t = lane % 4;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    if (st.position[h] < split * kAttentionSplitKeys) continue;  // padding, or not its split
    if (work.split_parallel) {
      const int r = warp_row0 + g + 8 * h;
      const int64_t head = static_cast<int64_t>(work.kv_head) * p.group + r % p.group;
      float* dst = SplitPartial(p, work.seq, head, split);
      if (t == 0) {
        dst[0] = st.m[h];
        dst[1] = st.l[h];
      }
#pragma unroll
      for (int n = 0; n < MmaRowState<HD>::kDimGroups; ++n) {
#pragma unroll
        for (int c = 0; c < 2; ++c) {
          const int col = n * 8 + 2 * t + c;
          if (col < p.head_dim) dst[2 + col] = st.acc[n][2 * h + c];
        }
      }
    } else {
      const float m_new = MaxF(st.big_m[h], st.m[h]);
      const float a = RescaleFactor(st.big_m[h], m_new);
      const float b = RescaleFactor(st.m[h], m_new);
#pragma unroll
      for (int n = 0; n < MmaRowState<HD>::kDimGroups; ++n) {
#pragma unroll
        for (int c = 0; c < 2; ++c) {
          st.o[n][2 * h + c] = MergeValue(st.o[n][2 * h + c], a, st.acc[n][2 * h + c], b);
        }
      }
      st.big_l[h] = MergeValue(st.big_l[h], a, st.l[h], b);
      st.big_m[h] = m_new;
    }
    st.Reset(h);
  }
}

template <typename T, int HD>
__device__ void WriteOutput(const MmaRowState<HD>& st, const AttentionParams& p,
                            const AttentionBlockWork& work, int warp_row0) {
  const int lane = static_cast<int>(threadIdx.x) % 32;
  const int g = lane / 4, t = lane % 4;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    if (st.position[h] < 0) continue;
    const int r = warp_row0 + g + 8 * h;
    const int64_t token = work.first + r / p.group;
    const int64_t head = static_cast<int64_t>(work.kv_head) * p.group + r % p.group;
    T* out = static_cast<T*>(p.out) + token * p.out_stride + head * p.head_dim;
#pragma unroll
    for (int n = 0; n < MmaRowState<HD>::kDimGroups; ++n) {
#pragma unroll
      for (int c = 0; c < 2; ++c) {
        const int col = n * 8 + 2 * t + c;
        if (col < p.head_dim) out[col] = FromFloat<T>(Div(st.o[n][2 * h + c], st.big_l[h]));
      }
    }
  }
}

template <typename T, int HD>
__global__ void __launch_bounds__(kMmaThreads) PagedAttentionMmaKernel(const AttentionParams p) {
  AttentionBlockWork work;
  if (!FindAttentionBlockWork(p, &work)) return;
  using L = MmaTileLayout<HD>;
  RS_DYNAMIC_SHARED(uint4, smem_vectors);  // uint4: 16-byte aligned
  uint32_t* smem = reinterpret_cast<uint32_t*>(smem_vectors);
  uint32_t* q_w = smem + L::kQ;
  uint32_t* k_w = smem + L::kK;
  uint32_t* vt_w = smem + L::kVt;
  int* pos_s = reinterpret_cast<int*>(smem + L::kPos);
  const int tid = static_cast<int>(threadIdx.x);
  const int warp = tid / 32;
  const int rows = work.num_tokens * p.group;

  for (int i = tid; i < work.num_tokens; i += kMmaThreads) pos_s[i] = p.positions[work.first + i];
  LoadQueries<T, HD>(p, work, rows, q_w);
  __syncthreads();
  int max_position = 0;
  for (int i = 0; i < work.num_tokens; ++i) max_position = max(max_position, pos_s[i]);
  const int context = max_position + 1;  // keys the block loads: 0..max_position

  const int warp_row0 = warp * kWarpRows;
  const bool has_rows = warp_row0 < rows;  // warp-uniform
  MmaRowState<HD> st;
  const int g = tid % 32 / 4;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int r = warp_row0 + g + 8 * h;
    st.position[h] = r < rows ? pos_s[r / p.group] : -1;
    st.big_m[h] = kNegInf;
    st.big_l[h] = 0;
    st.Reset(h);
#pragma unroll
    for (int n = 0; n < MmaRowState<HD>::kDimGroups; ++n) st.o[n][2 * h] = st.o[n][2 * h + 1] = 0;
  }
  const int32_t* table = p.block_tables + static_cast<int64_t>(work.seq) * p.max_blocks_per_seq;
  // Split-parallel: slot z runs splits z, z + gridDim.z, ... (FinishSplit resets the state).
  const int split_begin = work.split_parallel ? work.slot : 0;
  const int split_step = work.split_parallel ? static_cast<int>(gridDim.z) : 1;
  for (int s = split_begin; s < NumSplits(context); s += split_step) {
    const int key_end = min(context, (s + 1) * kAttentionSplitKeys);
    for (int k0 = s * kAttentionSplitKeys; k0 < key_end; k0 += kMmaTileKeys) {
      __syncthreads();  // every warp is done with the previous tile
      LoadKvTile<T, HD>(p, table, work.kv_head, k0, key_end, k_w, vt_w);
      __syncthreads();
      if (has_rows) MmaTileStep<T, HD>(st, q_w + warp_row0 * L::kRowWords, k_w, vt_w, k0, p.scale);
    }
    FinishSplit(st, p, work, warp_row0, s);
  }
  if (!work.split_parallel) WriteOutput<T, HD>(st, p, work, warp_row0);
}

// Calls f(std::integral_constant<int, HD>) for the kernel instance serving head_dim.
template <typename F>
void WithPaddedHeadDim(int head_dim, F&& f) {
  switch (PaddedHeadDim(head_dim)) {
    case 32:
      return f(std::integral_constant<int, 32>());
    case 64:
      return f(std::integral_constant<int, 64>());
    case 96:
      return f(std::integral_constant<int, 96>());
    case kMaxMmaHeadDim:
      return f(std::integral_constant<int, kMaxMmaHeadDim>());
    default:
      RS_CHECK_MSG(false, "tensor-core attention: head_dim above 128");
  }
}

using KernelFn = void (*)(AttentionParams);

template <int HD>
KernelFn KernelOf(DType dtype) {
  if (dtype == DType::kBF16) return PagedAttentionMmaKernel<__nv_bfloat16, HD>;
  RS_CHECK_MSG(dtype == DType::kF16, "tensor-core attention: f16 or bf16 activations only");
  return PagedAttentionMmaKernel<__half, HD>;
}

}  // namespace

bool MmaAttentionSupports(DType dtype, int group, int head_dim) {
  return (dtype == DType::kBF16 || dtype == DType::kF16) && group >= 1 && group <= kBlockRows &&
         head_dim >= 1 && PaddedHeadDim(head_dim) > 0;
}

int MmaTokensPerItem(int group) { return std::max(1, kBlockRows / group); }

int64_t MmaAttentionSharedBytes(int head_dim, int tokens_per_item) {
  int64_t bytes = 0;
  WithPaddedHeadDim(head_dim, [&](auto hd) {
    bytes = MmaTileLayout<decltype(hd)::value>::Bytes(tokens_per_item);
  });
  return bytes;
}

void LaunchMmaAttentionKernel(cudaStream_t stream, dim3 grid, int64_t shared_bytes,
                              const AttentionParams& p, DType dtype) {
  KernelFn kernel = nullptr;
  WithPaddedHeadDim(p.head_dim, [&](auto hd) { kernel = KernelOf<decltype(hd)::value>(dtype); });
  RS_LAUNCH(kernel, grid, kMmaThreads, shared_bytes, stream, p);
}

cudaError_t ConfigureMmaAttentionKernels(size_t optin_bytes, size_t* max_dynamic_bytes) {
  for (const int head_dim : {32, 64, 96, kMaxMmaHeadDim}) {
    for (const DType dtype : {DType::kBF16, DType::kF16}) {
      KernelFn kernel = nullptr;
      WithPaddedHeadDim(head_dim, [&](auto hd) { kernel = KernelOf<decltype(hd)::value>(dtype); });
      const cudaError_t error = RaiseDynamicSharedLimit(reinterpret_cast<const void*>(kernel),
                                                        optin_bytes, max_dynamic_bytes);
      if (error != cudaSuccess) return error;
    }
  }
  return cudaSuccess;
}

}  // namespace ringserve::kernels::RS_CUDA_NS
