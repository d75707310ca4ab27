// The simple MatMul: a classic shared-memory tiled SIMT kernel, 64x64 outputs per block, 4x4
// per thread. Every output is one f32 FMA chain over k = 0..K-1 in order (zero-padded past K
// the same way for every n), so a row's result cannot depend on the batch. It is the
// reference the cuBLASLt path is checked against and its fallback, not a fast path.
#include <cstdint>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_dtype.cuh"
#include "kernels/cuda/cuda_namespace.h"
#include "kernels/cuda/cuda_ops.h"

namespace ringserve::kernels::RS_CUDA_NS {
namespace {

constexpr int kTile = 64;
constexpr int kTileK = 16;
constexpr int kThreads = 256;  // 16 x 16 threads, 4 x 4 outputs each

template <typename Tin, typename Tout>
__global__ void __launch_bounds__(kThreads)
    SimpleMatMulKernel(const Tin* x, int64_t x_stride, const Tin* w, Tout* y, int64_t y_stride,
                       int64_t n, int64_t m, int64_t k) {
  __shared__ float xs[kTileK][kTile + 4];  // [k][row of x]
  __shared__ float ws[kTileK][kTile + 4];  // [k][row of w]
  const int tx = static_cast<int>(threadIdx.x) % 16;
  const int ty = static_cast<int>(threadIdx.x) / 16;
  const int64_t row0 = static_cast<int64_t>(blockIdx.y) * kTile;
  const int64_t col0 = static_cast<int64_t>(blockIdx.x) * kTile;
  float acc[4][4] = {};
  for (int64_t k0 = 0; k0 < k; k0 += kTileK) {
    for (int e = static_cast<int>(threadIdx.x); e < kTile * kTileK; e += kThreads) {
      const int r = e / kTileK, kk = e % kTileK;
      const int64_t kg = k0 + kk;
      xs[kk][r] = row0 + r < n && kg < k ? ToFloat(x[(row0 + r) * x_stride + kg]) : 0.0F;
      ws[kk][r] = col0 + r < m && kg < k ? ToFloat(w[(col0 + r) * k + kg]) : 0.0F;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kTileK; ++kk) {
      float a[4], b[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        a[i] = xs[kk][ty * 4 + i];
        b[i] = ws[kk][tx * 4 + i];
      }
#pragma unroll
      for (int i = 0; i < 4; ++i) {
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = Fma(a[i], b[j], acc[i][j]);
      }
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t r = row0 + ty * 4 + i, c = col0 + tx * 4 + j;
      if (r < n && c < m) y[r * y_stride + c] = FromFloat<Tout>(acc[i][j]);
    }
  }
}

template <typename Tin, typename Tout>
void Launch(cudaStream_t stream, const Mat& x, const void* w, int64_t w_rows, const Mat& y) {
  const dim3 grid(static_cast<unsigned>((w_rows + kTile - 1) / kTile),
                  static_cast<unsigned>((x.rows + kTile - 1) / kTile));
  const auto kernel = &SimpleMatMulKernel<Tin, Tout>;
  RS_LAUNCH(kernel, grid, kThreads, 0, stream, static_cast<const Tin*>(x.data), x.stride,
            static_cast<const Tin*>(w), static_cast<Tout*>(y.data), y.stride, x.rows, w_rows,
            x.cols);
}

}  // namespace

void LaunchSimpleMatMul(cudaStream_t stream, const Mat& x, const void* w, int64_t w_rows,
                        const Mat& y) {
  RS_CHECK(y.rows == x.rows && y.cols == w_rows && x.stride >= x.cols && y.stride >= y.cols);
  RS_CHECK(y.dtype == x.dtype || y.dtype == DType::kF32);
  if (x.rows == 0 || w_rows == 0) return;
  RS_CHECK(x.cols > 0 && w != nullptr);
  RS_CHECK((x.rows + kTile - 1) / kTile <= 65535 && (w_rows + kTile - 1) / kTile <= 0x7FFFFFFF);
  if (y.dtype == DType::kF32) {
    RS_DISPATCH_ACTIVATION(x.dtype, T, Launch<T, float>(stream, x, w, w_rows, y));
  } else {
    RS_DISPATCH_ACTIVATION(x.dtype, T, Launch<T, T>(stream, x, w, w_rows, y));
  }
  RS_CUDA_CHECK_LAUNCH();
}

}  // namespace ringserve::kernels::RS_CUDA_NS
