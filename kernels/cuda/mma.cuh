// The warp-level tensor-core product the tensor-core attention is written in: PTX
// mma.sync.aligned.m16n8k16.row.col.f32.{bf16,f16} (sm_80 and later), D = A B + D with A
// 16x16 and B 16x8 in the activation dtype and D 16x8 in f32, collective over the 32 lanes
// of a warp. Fragment layouts (PTX ISA, "Matrix Fragments for mma.m16n8k16 with floating
// point type"), with g = lane / 4 and t = lane % 4; each 32-bit register holds two 16-bit
// elements, the lower column (or row) in the low half:
//   A: a[0] = A[g][2t, 2t+1], a[1] = A[g+8][2t, 2t+1], a[2] = A[g][2t+8, 2t+9],
//      a[3] = A[g+8][2t+8, 2t+9]
//   B: b[0] = B[2t, 2t+1][g], b[1] = B[2t+8, 2t+9][g]
//   D: d[0] = D[g][2t], d[1] = D[g][2t+1], d[2] = D[g+8][2t], d[3] = D[g+8][2t+1]
// The hardware's products are exact and its summation order and internal precision are its
// own: a result element depends only on its row of A, its column of B and its D, but its
// bits are not those of any f32 operation sequence. The CPU emulation
// (tests/unit/kernels/cuda_emu/emu_mma.h) defines the same function with the same layouts
// and a fixed f32 order, so it reproduces the structure, not the device's bits.
#ifndef RINGSERVE_KERNELS_CUDA_MMA_CUH_
#define RINGSERVE_KERNELS_CUDA_MMA_CUH_

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "kernels/cuda/cuda_dtype.cuh"
#include "kernels/cuda/cuda_namespace.h"

namespace ringserve::kernels::RS_CUDA_NS {

#ifndef RINGSERVE_CUDA_EMULATION
// D += A B with A and B of PTX type `ab` ("bf16" or "f16"); D is operand C as well.
#define RS_MMA_M16N8K16(ab)                                                             \
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32." ab "." ab                       \
               ".f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n" \
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])                         \
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]))

template <typename T>
__device__ __forceinline__ void MmaM16N8K16(float (&d)[4], const uint32_t (&a)[4],
                                            const uint32_t (&b)[2]) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    RS_MMA_M16N8K16("bf16");
  } else {
    static_assert(std::is_same_v<T, __half>, "mma.sync m16n8k16 takes f16 or bf16");
    RS_MMA_M16N8K16("f16");
  }
}
#undef RS_MMA_M16N8K16
#endif  // the emulation brings its own MmaM16N8K16

// Two values rounded to T, `lo` in the low half: one A-fragment register.
template <typename T>
__device__ __forceinline__ uint32_t PackPair(float lo, float hi) {
  const T pair[2] = {FromFloat<T>(lo), FromFloat<T>(hi)};
  uint32_t bits;
  memcpy(&bits, pair, sizeof(bits));
  return bits;
}

}  // namespace ringserve::kernels::RS_CUDA_NS

#endif  // RINGSERVE_KERNELS_CUDA_MMA_CUH_
