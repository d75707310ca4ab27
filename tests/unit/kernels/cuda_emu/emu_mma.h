// The emulation of kernels/cuda/mma.cuh's MmaM16N8K16 (PTX mma.sync m16n8k16, f16/bf16 in,
// f32 accumulate): a warp-collective operation with the PTX fragment layouts, every lane
// computing its own four results from the whole warp's fragments.
//
// Arithmetic: each product of two 16-bit values is exact in f32 (at most 22 significant
// bits; it could only underflow), and each result is d + a0 b0 + ... + a15 b15 added in k
// order with f32 rounding. The hardware's summation order and internal precision differ and
// are not documented, so the emulation reproduces the structure (which row, column and
// accumulator each result depends on), not the device's bits: tests compare the emulated
// kernels with float64 within tolerance and check invariance properties bit for bit, which
// hold for any fixed per-element arithmetic.
#ifndef RINGSERVE_TESTS_UNIT_KERNELS_CUDA_EMU_EMU_MMA_H_
#define RINGSERVE_TESTS_UNIT_KERNELS_CUDA_EMU_EMU_MMA_H_

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "kernels/cuda/cuda_index.h"
#include "tests/unit/kernels/cuda_emu/emu_runtime.h"

namespace ringserve::kernels::RS_CUDA_NS {

namespace emu_mma {

// A 16-bit element as a float (exact): bf16 is the top half of an f32; f16 is decoded
// field by field (subnormals, infinities and NaN included).
template <typename T>
float Widen(uint16_t bits) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    return AsFloat(static_cast<uint32_t>(bits) << 16);
  } else {
    static_assert(std::is_same_v<T, __half>);
    const uint32_t sign = static_cast<uint32_t>(bits >> 15) << 31;
    const int exponent = (bits >> 10) & 0x1F;
    const uint32_t mantissa = bits & 0x3FFU;
    if (exponent == 0x1F) return AsFloat(sign | 0x7F800000U | (mantissa << 13));
    if (exponent != 0) {
      return AsFloat(sign | static_cast<uint32_t>(exponent - 15 + 127) << 23 | mantissa << 13);
    }
    const float magnitude = static_cast<float>(mantissa) * 0x1p-24F;  // exact
    return sign != 0 ? -magnitude : magnitude;
  }
}

// Element `k` of register pair word `word` (the low half holds the lower index).
template <typename T>
float Element(const uint32_t* lane_words, int word, int k) {
  return Widen<T>(static_cast<uint16_t>(lane_words[word] >> (16 * (k % 2))));
}

}  // namespace emu_mma

template <typename T>
void MmaM16N8K16(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  constexpr int kWords = 10;  // a[4], b[2], d[4] of every lane
  uint32_t mine[kWords];
  std::memcpy(mine, a, sizeof(a));
  std::memcpy(mine + 4, b, sizeof(b));
  std::memcpy(mine + 6, d, sizeof(d));
  uint32_t all[32 * kWords];
  ::emu::WarpGather(mine, kWords, all);
  const int lane = ::emu::LaneId();
  const int g = lane / 4, t = lane % 4;
  // A[row][k] sits in lane 4 (row % 8) + (k % 8) / 2, register (row >= 8) + 2 (k >= 8);
  // B[k][col] in lane 4 col + (k % 8) / 2, register 4 + (k >= 8).
  for (int i = 0; i < 4; ++i) {
    const int row = g + 8 * (i / 2), col = 2 * t + i % 2;
    float sum = d[i];
    for (int k = 0; k < 16; ++k) {
      const uint32_t* a_lane = all + (4 * (row % 8) + k % 8 / 2) * kWords;
      const uint32_t* b_lane = all + (4 * col + k % 8 / 2) * kWords;
      const float x = emu_mma::Element<T>(a_lane, row / 8 + 2 * (k / 8), k);
      const float y = emu_mma::Element<T>(b_lane, 4 + k / 8, k);
      sum = Add(sum, Mul(x, y));
    }
    d[i] = sum;
  }
}

}  // namespace ringserve::kernels::RS_CUDA_NS

#endif  // RINGSERVE_TESTS_UNIT_KERNELS_CUDA_EMU_EMU_MMA_H_
