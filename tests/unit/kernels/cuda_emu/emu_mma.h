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
#include <vector>

#include "kernels/cuda/cuda_index.h"
#include "tests/unit/kernels/cuda_emu/emu_runtime.h"

namespace ringserve::kernels::RS_CUDA_NS {

namespace emu_mma {

// An f16 value as a float (exact), field by field: subnormals, infinities and NaN included.
inline float HalfToFloat(uint16_t bits) {
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

// Every f16 value as a float, by bit pattern (the emulated kernels widen millions).
inline const float* HalfTable() {
  static const std::vector<float> table = [] {
    std::vector<float> values(size_t{1} << 16);
    for (size_t i = 0; i < values.size(); ++i) values[i] = HalfToFloat(static_cast<uint16_t>(i));
    return values;
  }();
  return table.data();
}

// Widens the 16-bit elements of fragment registers (exactly): bf16 is the top half of an f32.
template <typename T>
class Widener {
 public:
  // Element `k` (0 or 1) of a register holding a pair (the low half holds the lower index).
  float operator()(uint32_t word, int k) const {
    const auto bits = static_cast<uint16_t>(word >> (16 * k));
    if constexpr (std::is_same_v<T, __nv_bfloat16>) {
      return AsFloat(static_cast<uint32_t>(bits) << 16);
    } else {
      static_assert(std::is_same_v<T, __half>);
      return half_table_[bits];
    }
  }

 private:
  const float* half_table_ = std::is_same_v<T, __half> ? HalfTable() : nullptr;
};

}  // namespace emu_mma

template <typename T>
void MmaM16N8K16(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  constexpr int kWords = 6;  // a[4] and b[2] of every lane
  const uint32_t mine[kWords] = {a[0], a[1], a[2], a[3], b[0], b[1]};
  const uint32_t* all = ::emu::WarpGather(mine, kWords);
  const int lane = ::emu::LaneId();
  const int g = lane / 4, t = lane % 4;
  // This lane's rows g, g + 8 of A and columns 2t, 2t + 1 of B. A[row][k] sits in lane
  // 4 (row % 8) + (k % 8) / 2, register (row >= 8) + 2 (k >= 8); B[k][col] in lane
  // 4 col + (k % 8) / 2, register 4 + (k >= 8); both in half k % 2.
  const emu_mma::Widener<T> widen;
  float rows[2][16], cols[2][16];
  for (int k = 0; k < 16; ++k) {
    for (int h = 0; h < 2; ++h) {
      rows[h][k] = widen(all[(4 * g + k % 8 / 2) * kWords + h + 2 * (k / 8)], k % 2);
      cols[h][k] = widen(all[(4 * (2 * t + h) + k % 8 / 2) * kWords + 4 + k / 8], k % 2);
    }
  }
  for (int i = 0; i < 4; ++i) {
    float sum = d[i];  // D[g + 8 (i / 2)][2t + i % 2]
    for (int k = 0; k < 16; ++k) sum = Add(sum, Mul(rows[i / 2][k], cols[i % 2][k]));
    d[i] = sum;
  }
}

}  // namespace ringserve::kernels::RS_CUDA_NS

#endif  // RINGSERVE_TESTS_UNIT_KERNELS_CUDA_EMU_EMU_MMA_H_
