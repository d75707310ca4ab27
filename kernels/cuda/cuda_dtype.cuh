// Device-side element types: f32 <-> activation dtype conversions (round to nearest even),
// warp reductions with a fixed order, the dtype dispatch of the launchers and the launch
// macro.
#ifndef RINGSERVE_KERNELS_CUDA_CUDA_DTYPE_CUH_
#define RINGSERVE_KERNELS_CUDA_CUDA_DTYPE_CUH_

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "common/check.h"
#include "kernels/cuda/cuda_index.h"
#include "kernels/cuda/cuda_namespace.h"
#include "kernels/dtype.h"

namespace ringserve::kernels::RS_CUDA_NS {

// One byte of an E4M3 KV cache (DType::kF8E4M3), converted as exact_float.h's E4M3 helpers
// convert it on the host: the same bits.
struct Fp8 {
  uint8_t bits;
};

__device__ __forceinline__ float ToFloat(float v) { return v; }
__device__ __forceinline__ float ToFloat(Fp8 v) { return E4M3ToFloat(v.bits); }
__device__ __forceinline__ float ToFloat(__half v) { return __half2float(v); }
__device__ __forceinline__ float ToFloat(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T>
__device__ __forceinline__ T FromFloat(float v);
template <>
__device__ __forceinline__ float FromFloat<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ __half FromFloat<__half>(float v) {
  return __float2half_rn(v);
}
template <>
__device__ __forceinline__ __nv_bfloat16 FromFloat<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}
template <>
__device__ __forceinline__ Fp8 FromFloat<Fp8>(float v) {
  return Fp8{static_cast<uint8_t>(FloatToE4M3(v))};
}

inline constexpr unsigned kFullMask = 0xFFFFFFFFU;

// Butterfly sum over the warp. Lane i adds v[i] + v[i ^ offset] at each step; addition
// commutes, so every lane ends with the same bits.
__device__ __forceinline__ float WarpSum(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) v = Add(v, __shfl_xor_sync(kFullMask, v, offset));
  return v;
}
__device__ __forceinline__ float WarpMax(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) v = MaxF(v, __shfl_xor_sync(kFullMask, v, offset));
  return v;
}

}  // namespace ringserve::kernels::RS_CUDA_NS

// Kernel launch and dynamic shared memory, spelled so tests/unit/kernels/cuda_emu can run the
// same kernels on the CPU. `kernel` must be one token (name a template instance through a
// pointer first).
#ifndef RINGSERVE_CUDA_EMULATION
#define RS_LAUNCH(kernel, grid, block, shared_bytes, stream, ...) \
  kernel<<<grid, block, shared_bytes, stream>>>(__VA_ARGS__)
#define RS_DYNAMIC_SHARED(type, name) extern __shared__ type name[]
#endif

// Runs the statement with `T` bound to the device type of activation dtype `dtype`.
#define RS_DISPATCH_ACTIVATION(dtype, T, ...)                                \
  switch (dtype) {                                                           \
    case ::ringserve::kernels::DType::kF32: {                                \
      using T = float;                                                       \
      __VA_ARGS__;                                                           \
      break;                                                                 \
    }                                                                        \
    case ::ringserve::kernels::DType::kF16: {                                \
      using T = __half;                                                      \
      __VA_ARGS__;                                                           \
      break;                                                                 \
    }                                                                        \
    case ::ringserve::kernels::DType::kBF16: {                               \
      using T = __nv_bfloat16;                                               \
      __VA_ARGS__;                                                           \
      break;                                                                 \
    }                                                                        \
    default:                                                                 \
      RS_CHECK_MSG(false, "cuda: not an activation dtype (f32, f16, bf16)"); \
  }

#endif  // RINGSERVE_KERNELS_CUDA_CUDA_DTYPE_CUH_
