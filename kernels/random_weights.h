// The values of random (benchmark) weights: element i of a stream with state s is
// splitmix64(s + (i + 1) * golden gamma) mapped to U(-scale, scale). Each element depends
// only on (s, i), so the host (the CPU backend's RandomWeight, split across its threads;
// model::RandomWeightSource) and the CUDA kernel (kernels/cuda/elementwise.cu) compute any
// element independently and get the same bits: the integer mixing is exact, and of the float steps
// only the last rounds (see RandomUniform), so no fused multiply-add can change a result either.
#ifndef RINGSERVE_KERNELS_RANDOM_WEIGHTS_H_
#define RINGSERVE_KERNELS_RANDOM_WEIGHTS_H_

#include <cstdint>

#include "kernels/host_device.h"

#ifndef __CUDACC__  // nvcc builds the kernels as C++17, without std::span
#include <algorithm>
#include <span>
#endif

namespace ringserve::kernels {

// `rows` rows of a random weight, filled from one stream.
struct RandomPart {
  uint64_t state = 0;
  int64_t rows = 0;
};

inline constexpr uint64_t kRandomStreamGamma = 0x9E3779B97F4A7C15ULL;

RS_HD uint64_t RandomStreamBits(uint64_t state, uint64_t index) {
  uint64_t z = state + (index + 1) * kRandomStreamGamma;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// Element `index` of the stream `state`, in [-scale, scale). unit, 2 * unit and
// 2 * unit - 1 are exact (multiples of 2^-24 of magnitude at most 1), so the product with
// scale is the only rounding and no contraction into an FMA can change a bit; the device
// still spells every step with an explicit round-to-nearest intrinsic.
RS_HD float RandomUniform(uint64_t state, uint64_t index, float scale) {
  const float unit =
      static_cast<float>(RandomStreamBits(state, index) >> 40) * (1.0F / 16777216.0F);  // [0, 1)
#ifdef __CUDA_ARCH__
  return __fmul_rn(__fadd_rn(__fmul_rn(2.0F, unit), -1.0F), scale);
#else
  return (2.0F * unit - 1.0F) * scale;
#endif
}

// out[i] = RandomUniform(state, first + i, scale) for i < count, on the host.
inline void FillRandomUniform(uint64_t state, float scale, float* out, int64_t count,
                              uint64_t first = 0) {
  for (int64_t i = 0; i < count; ++i) {
    out[i] = RandomUniform(state, first + static_cast<uint64_t>(i), scale);
  }
}

#ifndef __CUDACC__
// Rows [row_begin, row_end) of the weight stacked from `parts` (their rows in order, `cols`
// values each, element i of a part from its stream's index i) into out, row-major. Any
// window gives the rows the whole would, so threads can each fill their own.
inline void FillRandomRows(std::span<const RandomPart> parts, int64_t cols, float scale,
                           int64_t row_begin, int64_t row_end, float* out) {
  int64_t part_begin = 0;
  for (const RandomPart& part : parts) {
    const int64_t begin = std::max(row_begin, part_begin);
    const int64_t end = std::min(row_end, part_begin + part.rows);
    if (begin < end) {
      FillRandomUniform(part.state, scale, out + (begin - row_begin) * cols, (end - begin) * cols,
                        static_cast<uint64_t>((begin - part_begin) * cols));
    }
    part_begin += part.rows;
  }
}
#endif  // __CUDACC__

}  // namespace ringserve::kernels

#endif  // RINGSERVE_KERNELS_RANDOM_WEIGHTS_H_
