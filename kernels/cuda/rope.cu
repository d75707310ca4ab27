// RoPE fused with the K/V write into paged storage: one thread block per token.
#include <cstdint>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_dtype.cuh"
#include "kernels/cuda/cuda_namespace.h"
#include "kernels/cuda/cuda_ops.h"

namespace ringserve::kernels::RS_CUDA_NS {
namespace {

constexpr int kThreads = 128;

// Angles pos * inv_freq[i] in float64 (as the CPU backend computes them): one deterministic
// (cos, sin) per (position, i), close to exact even at large positions.
// Q (qkv) is T, or float where the projection wrote f32: q and k rotate in place at that
// precision, and k and v are rounded to T, the cache's dtype, as they are written.
template <typename Q, typename T>
__global__ void __launch_bounds__(kThreads)
    RopeAndWriteKvKernel(Q* qkv, int64_t stride, int num_q_heads, int num_kv_heads, int head_dim,
                         const float* inv_freq, int rotary_dim, bool layout_halves,
                         const int32_t* positions, const int32_t* slots, T* k_cache, T* v_cache,
                         int64_t num_slots) {
  RS_DYNAMIC_SHARED(float2, cos_sin);  // [rotary_dim / 2]
  const int half = rotary_dim / 2;
  const int64_t t = blockIdx.x;
  const double position = positions[t];
  for (int i = threadIdx.x; i < half; i += kThreads) {
    double s, c;
    sincos(position * static_cast<double>(inv_freq[i]), &s, &c);
    cos_sin[i] = make_float2(static_cast<float>(c), static_cast<float>(s));
  }
  __syncthreads();
  Q* row = qkv + t * stride;
  for (int e = threadIdx.x; e < (num_q_heads + num_kv_heads) * half; e += kThreads) {
    const int h = e / half, i = e % half;
    const RopePair pair = RopePairOffsets(layout_halves, i, rotary_dim);
    Q* x = row + static_cast<int64_t>(h) * head_dim;
    const float x0 = ToFloat(x[pair.a]), x1 = ToFloat(x[pair.b]);
    const float c = cos_sin[i].x, s = cos_sin[i].y;
    x[pair.a] = FromFloat<Q>(Sub(Mul(x0, c), Mul(x1, s)));
    x[pair.b] = FromFloat<Q>(Add(Mul(x0, s), Mul(x1, c)));
  }
  __syncthreads();  // the rotated k heads are in global memory, visible to the whole block
  const int64_t slot = slots[t];
  if (slot < 0) return;             // a padding token (see AttentionBatch)
  if (slot >= num_slots) __trap();  // the model builds slots from its block tables
  const int64_t kv_width = static_cast<int64_t>(num_kv_heads) * head_dim;
  const Q* k = row + static_cast<int64_t>(num_q_heads) * head_dim;
  for (int64_t e = threadIdx.x; e < kv_width; e += kThreads) {
    k_cache[slot * kv_width + e] = FromFloat<T>(ToFloat(k[e]));
    v_cache[slot * kv_width + e] = FromFloat<T>(ToFloat(k[kv_width + e]));
  }
}

}  // namespace

void LaunchRopeAndWriteKv(cudaStream_t stream, const Mat& qkv, const HeadArgs& heads,
                          const float* inv_freq, int rotary_dim, bool layout_halves,
                          const BatchArgs& batch, DType kv_dtype, const KvArgs& kv) {
  RS_CHECK(heads.num_q_heads > 0 && heads.num_kv_heads > 0 && heads.head_dim > 0);
  RS_CHECK(rotary_dim >= 0 && rotary_dim % 2 == 0 && rotary_dim <= heads.head_dim);
  RS_CHECK(qkv.rows == batch.num_tokens && qkv.stride >= qkv.cols);
  RS_CHECK(qkv.cols >=
           static_cast<int64_t>(heads.num_q_heads + 2 * heads.num_kv_heads) * heads.head_dim);
  RS_CHECK(kv.k != nullptr && kv.v != nullptr && kv.block_size > 0 && kv.num_blocks > 0);
  if (batch.num_tokens == 0) return;
  RS_CHECK(rotary_dim == 0 || inv_freq != nullptr);
  const size_t shared = static_cast<size_t>(rotary_dim / 2) * sizeof(float2);
  RS_CHECK(shared <= 48 * 1024);
  const int64_t num_slots = static_cast<int64_t>(kv.num_blocks) * kv.block_size;
  RS_CHECK(qkv.dtype == kv_dtype || qkv.dtype == DType::kF32 || kv_dtype == DType::kF8E4M3);
  const auto launch = [&](auto q_type, auto kv_type) {
    using Q = decltype(q_type);
    using T = decltype(kv_type);
    const auto kernel = &RopeAndWriteKvKernel<Q, T>;
    RS_LAUNCH(kernel, static_cast<unsigned>(batch.num_tokens), kThreads, shared, stream,
              static_cast<Q*>(qkv.data), qkv.stride, heads.num_q_heads, heads.num_kv_heads,
              heads.head_dim, inv_freq, rotary_dim, layout_halves, batch.positions, batch.slots,
              static_cast<T*>(kv.k), static_cast<T*>(kv.v), num_slots);
  };
  if (kv_dtype == DType::kF8E4M3) {
    RS_DISPATCH_ACTIVATION(qkv.dtype, Q, launch(Q{}, Fp8{}));
  } else {
    RS_DISPATCH_ACTIVATION(kv_dtype, T,
                           qkv.dtype == DType::kF32 ? launch(float{}, T{}) : launch(T{}, T{}));
  }
  RS_CUDA_CHECK_LAUNCH();
}

}  // namespace ringserve::kernels::RS_CUDA_NS
