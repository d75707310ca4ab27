// The shared-memory tiles of the tensor-core attention (attention_mma.cu): their layout and
// the loads that fill them from the paged K/V cache and the query rows. Loads move raw
// 16-bit values and zeros only, so they take no part in the kernel's arithmetic.
#ifndef RINGSERVE_KERNELS_CUDA_ATTENTION_MMA_TILES_CUH_
#define RINGSERVE_KERNELS_CUDA_ATTENTION_MMA_TILES_CUH_

#include <cstdint>
#include <cstring>

#include "kernels/cuda/attention_common.cuh"
#include "kernels/cuda/cuda_dtype.cuh"
#include "kernels/cuda/cuda_index.h"
#include "kernels/cuda/cuda_namespace.h"

namespace ringserve::kernels::RS_CUDA_NS {

inline constexpr int kMmaThreads = 128;
inline constexpr int kMmaWarps = kMmaThreads / 32;
inline constexpr int kWarpRows = 16;  // one MMA tile of rows per warp
inline constexpr int kBlockRows = kWarpRows * kMmaWarps;
// Keys per tile: part of the arithmetic (changing it changes result bits).
inline constexpr int kMmaTileKeys = 64;
inline constexpr int kKeyGroups = kMmaTileKeys / 8;  // n8 column blocks of a tile's scores
static_assert(kAttentionSplitKeys % kMmaTileKeys == 0, "tiles must not straddle splits");

// Shared memory in 32-bit words, each a pair of 16-bit values: Q rows and K rows (pairs
// along head_dim, 4 words of padding so the 8 rows a fragment load touches hit different
// banks), V^T rows (pairs along keys), then the item's token positions.
template <int HD>
struct MmaTileLayout {
  static constexpr int kRowWords = HD / 2 + 4;
  static constexpr int kVtRowWords = kMmaTileKeys / 2 + 4;
  static constexpr int kQ = 0;
  static constexpr int kK = kQ + kBlockRows * kRowWords;
  static constexpr int kVt = kK + kMmaTileKeys * kRowWords;
  static constexpr int kPos = kVt + HD * kVtRowWords;
  static_assert(kRowWords % 4 == 0 && kK % 4 == 0, "K rows take 16-byte stores");
  static int64_t Bytes(int tokens_per_item) {
    return (static_cast<int64_t>(kPos) + tokens_per_item) * 4;
  }
};

template <typename T>
__device__ __forceinline__ uint32_t PackRaw(T lo, T hi) {
  const T pair[2] = {lo, hi};
  uint32_t bits;
  memcpy(&bits, pair, sizeof(bits));
  return bits;
}

// Elements [d0, d0 + 8) of the K or V row at `offset` as 4 pairs; zeros past head_dim and
// for a key the tile does not hold (offset < 0).
template <typename T>
__device__ __forceinline__ void LoadEight(const T* cache, int64_t offset, int d0, int head_dim,
                                          bool vector, uint32_t (&w)[4]) {
  if (offset < 0 || d0 >= head_dim) {
    w[0] = w[1] = w[2] = w[3] = 0;
    return;
  }
  if (vector) {  // head_dim is a multiple of 8 and the row 16-byte aligned (launcher checks)
    const uint4 raw = *reinterpret_cast<const uint4*>(cache + offset + d0);
    w[0] = raw.x;
    w[1] = raw.y;
    w[2] = raw.z;
    w[3] = raw.w;
    return;
  }
  const T zero = FromFloat<T>(0.0F);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int d = d0 + 2 * i;
    w[i] = PackRaw(d < head_dim ? cache[offset + d] : zero,
                   d + 1 < head_dim ? cache[offset + d + 1] : zero);
  }
}

// Keys [k0, k0 + kMmaTileKeys) of one kv head into shared memory, zeros from key_end on:
// K key-major, V transposed (row d holds the keys' values of dim d).
template <typename T, int HD>
__device__ void LoadKvTile(const AttentionParams& p, const int32_t* table, int kv_head, int k0,
                           int key_end, uint32_t* k_w, uint32_t* vt_w) {
  using L = MmaTileLayout<HD>;
  constexpr int kChunks = HD / 8;
  const T* k_cache = static_cast<const T*>(p.k);
  const T* v_cache = static_cast<const T*>(p.v);
  auto offset = [&](int j) -> int64_t {
    return k0 + j < key_end
               ? KvOffset(table, p.block_size, k0 + j, p.num_kv_heads, p.head_dim, kv_head)
               : -1;
  };
  // Every load of a phase is issued before its stores, so they are in flight together.
  constexpr int kKeyLoads = kMmaTileKeys * kChunks / kMmaThreads;
  constexpr int kValueLoads = kMmaTileKeys / 2 * kChunks / kMmaThreads;
  static_assert(kKeyLoads * kMmaThreads == kMmaTileKeys * kChunks &&
                kValueLoads * kMmaThreads == kMmaTileKeys / 2 * kChunks);
  const int tid = static_cast<int>(threadIdx.x);
  uint32_t keys[kKeyLoads][4];
#pragma unroll
  for (int i = 0; i < kKeyLoads; ++i) {
    const int e = tid + i * kMmaThreads;
    LoadEight(k_cache, offset(e / kChunks), e % kChunks * 8, p.head_dim, p.vector_loads, keys[i]);
  }
#pragma unroll
  for (int i = 0; i < kKeyLoads; ++i) {
    const int e = tid + i * kMmaThreads;
    *reinterpret_cast<uint4*>(k_w + e / kChunks * L::kRowWords + e % kChunks * 4) =
        make_uint4(keys[i][0], keys[i][1], keys[i][2], keys[i][3]);
  }
  // Consecutive lanes take consecutive key pairs, so their V^T stores hit different banks.
  uint32_t even[kValueLoads][4], odd[kValueLoads][4];
#pragma unroll
  for (int i = 0; i < kValueLoads; ++i) {
    const int e = tid + i * kMmaThreads;
    const int pair = e % (kMmaTileKeys / 2), d0 = e / (kMmaTileKeys / 2) * 8;
    LoadEight(v_cache, offset(2 * pair), d0, p.head_dim, p.vector_loads, even[i]);
    LoadEight(v_cache, offset(2 * pair + 1), d0, p.head_dim, p.vector_loads, odd[i]);
  }
#pragma unroll
  for (int i = 0; i < kValueLoads; ++i) {
    const int e = tid + i * kMmaThreads;
    const int pair = e % (kMmaTileKeys / 2), d0 = e / (kMmaTileKeys / 2) * 8;
#pragma unroll
    for (int w = 0; w < 4; ++w) {
      uint32_t* dim = vt_w + (d0 + 2 * w) * L::kVtRowWords + pair;
      dim[0] = (even[i][w] & 0xFFFFU) | (odd[i][w] << 16);
      dim[L::kVtRowWords] = (even[i][w] >> 16) | (odd[i][w] & 0xFFFF0000U);
    }
  }
}

// The block's query rows as pairs along head_dim, in T (an f32 q is rounded to T here, the
// mma's input type); rows past `rows` (padding) are zeros.
template <typename T, int HD>
__device__ void LoadQueries(const AttentionParams& p, const AttentionBlockWork& work, int rows,
                            uint32_t* q_w) {
  using L = MmaTileLayout<HD>;
  for (int e = static_cast<int>(threadIdx.x); e < kBlockRows * HD / 2; e += kMmaThreads) {
    const int r = e / (HD / 2), d = e % (HD / 2) * 2;
    uint32_t bits = 0;
    if (r < rows) {
      const int64_t token = work.first + r / p.group;
      const int64_t head = static_cast<int64_t>(work.kv_head) * p.group + r % p.group;
      const int64_t q = token * p.qkv_stride + head * p.head_dim;
      bits = PackRaw(FromFloat<T>(d < p.head_dim ? LoadQ<T>(p, q + d) : 0.0F),
                     FromFloat<T>(d + 1 < p.head_dim ? LoadQ<T>(p, q + d + 1) : 0.0F));
    }
    q_w[r * L::kRowWords + d / 2] = bits;
  }
}

}  // namespace ringserve::kernels::RS_CUDA_NS

#endif  // RINGSERVE_KERNELS_CUDA_ATTENTION_MMA_TILES_CUH_
