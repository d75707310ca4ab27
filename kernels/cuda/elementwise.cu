// Row-wise ops of the CUDA backend: weight conversion and random fill, embedding gather,
// RMSNorm (plain and fused with the residual add), SwiGLU's SiLU-mul, row gathers and LoRA
// adapters' deltas.
//
// Batch invariance: one thread block per row with a fixed size (kThreads), so a row's
// reduction order depends only on its length; element-wise ops have no reduction at all.
#include <algorithm>
#include <cstdint>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_dtype.cuh"
#include "kernels/cuda/cuda_namespace.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/random_weights.h"

namespace ringserve::kernels::RS_CUDA_NS {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;

// Grid for a [rows, cols] element-wise op: x = row, y = 256-column chunk.
dim3 RowGrid(int64_t rows, int64_t cols) {
  RS_CHECK(rows <= 0x7FFFFFFF && (cols + kThreads - 1) / kThreads <= 65535);
  return dim3(static_cast<unsigned>(rows), static_cast<unsigned>((cols + kThreads - 1) / kThreads));
}

template <typename Dst>
__global__ void ConvertKernel(DType src_dtype, const void* src, Dst* dst, int64_t count) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
       i += step) {
    float v = 0;
    switch (src_dtype) {
      case DType::kF32:
        v = static_cast<const float*>(src)[i];
        break;
      case DType::kF16:
        v = __half2float(static_cast<const __half*>(src)[i]);
        break;
      case DType::kBF16:
        v = __bfloat162float(static_cast<const __nv_bfloat16*>(src)[i]);
        break;
      case DType::kQ8_0: {
        // GGUF Q8_0 block: f16 scale, then 32 int8 quants. 34-byte blocks keep the scale
        // 2-byte aligned.
        const auto* block =
            static_cast<const uint8_t*>(src) + (i / kQ8_0BlockValues) * kQ8_0BlockBytes;
        const float scale = __half2float(*reinterpret_cast<const __half*>(block));
        const auto q = static_cast<int8_t>(block[2 + i % kQ8_0BlockValues]);
        v = Mul(scale, static_cast<float>(q));
        break;
      }
      case DType::kQ4Affine:
      case DType::kQ5Affine: {
        // f32 scale and offset, then 16 bytes of nibbles (value j in byte j % 16's low
        // nibble for j < 16, high for the rest), and for kQ5Affine a uint32 of fifth bits.
        // 24- and 28-byte blocks keep the floats aligned.
        const bool five = src_dtype == DType::kQ5Affine;
        const auto* block =
            static_cast<const uint8_t*>(src) +
            (i / kQ4AffineBlockValues) * (five ? kQ5AffineBlockBytes : kQ4AffineBlockBytes);
        const auto* params = reinterpret_cast<const float*>(block);
        const int j = static_cast<int>(i % kQ4AffineBlockValues);
        const int byte = block[8 + j % 16];
        int q = j < 16 ? byte & 0x0F : byte >> 4;
        if (five)
          q |= static_cast<int>((reinterpret_cast<const uint32_t*>(block)[6] >> j) & 1U) << 4;
        v = Fma(static_cast<float>(q), params[0], params[1]);
        break;
      }
      case DType::kIQ4: {
        // An f32 scale, then 16 bytes of indices (as kQ4Affine's nibbles) into IQ4's int8
        // levels (dtype.h's kIq4Levels).
        constexpr int8_t kLevels[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                        1,    13,   25,  38,  53,  69,  89,  113};
        const auto* block =
            static_cast<const uint8_t*>(src) + (i / kIq4BlockValues) * kIq4BlockBytes;
        const int j = static_cast<int>(i % kIq4BlockValues);
        const int byte = block[4 + j % 16];
        const int index = j < 16 ? byte & 0x0F : byte >> 4;
        v = Mul(*reinterpret_cast<const float*>(block), static_cast<float>(kLevels[index]));
        break;
      }
      case DType::kQ6: {
        // int8 scales for values 0-15 and 16-31, an f16 scale, 16 bytes of low nibbles (as
        // kQ4Affine's), then value j's top two bits at bit 2 (j % 4) of byte 20 + j / 4.
        // d * s and its product with q - 32 are exact, in either order.
        const auto* block = static_cast<const uint8_t*>(src) + (i / kQ6BlockValues) * kQ6BlockBytes;
        const int j = static_cast<int>(i % kQ6BlockValues);
        const int byte = block[4 + j % 16];
        const int low = j < 16 ? byte & 0x0F : byte >> 4;
        const int q = low | ((block[20 + j / 4] >> (2 * (j % 4))) & 3) << 4;
        const float scale = Mul(__half2float(*reinterpret_cast<const __half*>(block + 2)),
                                static_cast<float>(static_cast<int8_t>(block[j / 16])));
        v = Mul(scale, static_cast<float>(q - 32));
        break;
      }
      default:
        __trap();
    }
    dst[i] = FromFloat<Dst>(v);
  }
}

template <typename T>
__global__ void RandomUniformKernel(uint64_t state, float scale, T* dst, int64_t count) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
       i += step) {
    dst[i] = FromFloat<T>(RandomUniform(state, static_cast<uint64_t>(i), scale));
  }
}

// Enough blocks for every element, at most 2^16 (then each thread loops).
unsigned ElementBlocks(int64_t count) {
  return static_cast<unsigned>(std::min<int64_t>((count + kThreads - 1) / kThreads, 1 << 16));
}

// O is T, or float for an f32 residual stream (exact: every T converts to float exactly).
template <typename T, typename O>
__global__ void EmbeddingGatherKernel(const T* table, int64_t table_rows, const int32_t* ids,
                                      O* out, int64_t out_stride, int64_t cols) {
  const int64_t c = static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x;
  if (c >= cols) return;
  const int32_t id = ids[blockIdx.x];
  if (id < 0 || id >= table_rows) __trap();  // the model validates ids; this is a bug
  out[blockIdx.x * out_stride + c] = FromFloat<O>(ToFloat(table[id * cols + c]));
}

template <typename T>
__global__ void GatherRowsKernel(const T* x, int64_t x_rows, int64_t x_stride, const int32_t* rows,
                                 T* out, int64_t out_stride, int64_t cols) {
  const int64_t c = static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x;
  if (c >= cols) return;
  const int32_t r = rows[blockIdx.x];
  if (r < 0 || r >= x_rows) __trap();
  out[blockIdx.x * out_stride + c] = x[r * x_stride + c];
}

// Sum over the block in a fixed order: each warp's butterfly, then the warp sums' butterfly
// (identical in every warp). Call with all kThreads threads.
__device__ float BlockSum(float v) {
  __shared__ float warp_sums[kWarps];
  v = WarpSum(v);
  const int lane = threadIdx.x % 32;
  if (lane == 0) warp_sums[threadIdx.x / 32] = v;
  __syncthreads();
  return WarpSum(lane < kWarps ? warp_sums[lane] : 0.0F);
}

// 1 / sqrt(mean square + eps), as the CPU backend computes it.
__device__ float InverseRms(float sum_of_squares, int64_t cols, float eps) {
  return Div(1.0F, Sqrt(Add(Div(sum_of_squares, static_cast<float>(cols)), eps)));
}

// X (the input) is T, or float for an f32 residual stream; weight and output are T.
template <typename X, typename T>
__global__ void __launch_bounds__(kThreads)
    RmsNormKernel(const X* x, int64_t x_stride, const T* weight, float eps, T* out,
                  int64_t out_stride, int64_t cols) {
  const X* row = x + blockIdx.x * x_stride;
  float ss = 0;
  for (int64_t c = threadIdx.x; c < cols; c += kThreads) {
    const float v = ToFloat(row[c]);
    ss = Fma(v, v, ss);
  }
  const float scale = InverseRms(BlockSum(ss), cols, eps);
  T* o = out + blockIdx.x * out_stride;
  for (int64_t c = threadIdx.x; c < cols; c += kThreads) {
    o[c] = FromFloat<T>(Mul(Mul(ToFloat(row[c]), scale), ToFloat(weight[c])));
  }
}

// The residual is updated first and normalised as stored (rounded to R), so the output is
// exactly RmsNorm of the new residual. R (residual and delta) is T, or float for an f32
// residual stream; weight and output are T.
template <typename R, typename T>
__global__ void __launch_bounds__(kThreads)
    AddRmsNormKernel(R* residual, int64_t r_stride, const R* delta, int64_t d_stride,
                     const T* weight, float eps, T* out, int64_t out_stride, int64_t cols) {
  R* row = residual + blockIdx.x * r_stride;
  const R* d = delta + blockIdx.x * d_stride;
  float ss = 0;
  for (int64_t c = threadIdx.x; c < cols; c += kThreads) {
    const R sum = FromFloat<R>(Add(ToFloat(row[c]), ToFloat(d[c])));
    row[c] = sum;
    const float v = ToFloat(sum);
    ss = Fma(v, v, ss);
  }
  const float scale = InverseRms(BlockSum(ss), cols, eps);
  T* o = out + blockIdx.x * out_stride;
  for (int64_t c = threadIdx.x; c < cols; c += kThreads) {  // this thread's own writes
    o[c] = FromFloat<T>(Mul(Mul(ToFloat(row[c]), scale), ToFloat(weight[c])));
  }
}

template <typename T>
__global__ void AddBiasKernel(float* x, int64_t stride, const T* bias, int64_t cols) {
  const int64_t c = static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x;
  if (c >= cols) return;
  float* row = x + blockIdx.x * stride;
  row[c] = Add(row[c], ToFloat(bias[c]));
}

// One block per (row, head): the group is read for its sum of squares, then each thread
// rewrites the elements it read (in place: no thread writes what another reads).
template <typename T>
__global__ void __launch_bounds__(kThreads)
    HeadRmsNormKernel(float* x, int64_t stride, int64_t head_dim, const T* weight, float eps) {
  float* group = x + blockIdx.x * stride + static_cast<int64_t>(blockIdx.y) * head_dim;
  float ss = 0;
  for (int64_t c = threadIdx.x; c < head_dim; c += kThreads) ss = Fma(group[c], group[c], ss);
  const float scale = InverseRms(BlockSum(ss), head_dim, eps);
  for (int64_t c = threadIdx.x; c < head_dim; c += kThreads) {
    group[c] = Mul(Mul(group[c], scale), ToFloat(weight[c]));
  }
}

// silu(g) * u = g * u / (1 + exp(-g)), as on the CPU.
template <typename T>
__global__ void SiluMulKernel(const T* gate_up, int64_t gu_stride, T* out, int64_t out_stride,
                              int64_t cols) {
  const int64_t c = static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x;
  if (c >= cols) return;
  const T* row = gate_up + blockIdx.x * gu_stride;
  const float g = ToFloat(row[c]);
  const float u = ToFloat(row[cols + c]);
  out[blockIdx.x * out_stride + c] = FromFloat<T>(Div(Mul(g, u), Add(1.0F, Exp(-g))));
}

// LoRA's shrink: scratch[row, r] = x[row, :] . A_s[r, :], one block per (row, r).
template <typename T>
__global__ void __launch_bounds__(kThreads)
    LoraShrinkKernel(const T* x, int64_t x_stride, const T* a, int64_t in, int rank, int num_slots,
                     const int32_t* row_slots, float* scratch) {
  const int32_t slot = row_slots[blockIdx.x];
  if (slot < 0) return;  // the whole block: BlockSum is never reached by part of it
  if (slot >= num_slots) __trap();
  const T* row = x + blockIdx.x * x_stride;
  const T* a_row = a + (static_cast<int64_t>(slot) * rank + blockIdx.y) * in;
  float dot = 0;
  for (int64_t k = threadIdx.x; k < in; k += kThreads) {
    dot = Fma(ToFloat(row[k]), ToFloat(a_row[k]), dot);
  }
  dot = BlockSum(dot);
  if (threadIdx.x == 0) scratch[blockIdx.x * rank + blockIdx.y] = dot;
}

// LoRA's expand: y[row, c] += sum over r of scratch[row, r] B_s^T[r, c], r in order.
template <typename T, typename Y>
__global__ void LoraExpandKernel(const float* scratch, const T* b_t, int64_t out, int rank,
                                 const int32_t* row_slots, Y* y, int64_t y_stride) {
  const int64_t c = static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x;
  const int32_t slot = row_slots[blockIdx.x];
  if (c >= out || slot < 0) return;
  const float* t = scratch + static_cast<int64_t>(blockIdx.x) * rank;
  const T* b = b_t + static_cast<int64_t>(slot) * rank * out + c;
  float delta = 0;
  for (int r = 0; r < rank; ++r) delta = Fma(t[r], ToFloat(b[r * out]), delta);
  Y* dst = y + blockIdx.x * y_stride + c;
  *dst = FromFloat<Y>(Add(ToFloat(*dst), delta));
}

__global__ void NoOpKernel() {}

void CheckRows(const Mat& m) {
  RS_CHECK(m.data != nullptr || m.rows == 0);
  RS_CHECK(m.rows >= 0 && m.cols >= 0 && m.stride >= m.cols);
}

// The residual stream and the projections' outputs may be f32 while the activations that
// feed a GEMM are narrower (LlamaModel keeps them so: one bf16 rounding fewer per step).
// Calls launch(W{}) with W = float for an f32 `wide`, else T, the device type of `narrow`
// (which `wide` must then equal).
template <typename T, typename Launch>
void WithWide(DType narrow, DType wide, Launch launch) {
  if (wide == DType::kF32) {
    launch(float{});
  } else {
    RS_CHECK(wide == narrow);
    launch(T{});
  }
}

}  // namespace

bool IsActivationDtype(DType dtype) {
  return dtype == DType::kF32 || dtype == DType::kF16 || dtype == DType::kBF16;
}

void LaunchConvert(cudaStream_t stream, DType src_dtype, const void* src, DType dst_dtype,
                   void* dst, int64_t count) {
  RS_CHECK(count >= 0);
  const bool blocks = IsBlockDType(src_dtype);
  RS_CHECK(!blocks || count % kQ8_0BlockValues == 0);
  RS_CHECK(IsActivationDtype(src_dtype) || blocks);
  if (count == 0) return;
  RS_DISPATCH_ACTIVATION(dst_dtype, T,
                         RS_LAUNCH(ConvertKernel<T>, ElementBlocks(count), kThreads, 0, stream,
                                   src_dtype, src, static_cast<T*>(dst), count));
  RS_CUDA_CHECK_LAUNCH();
}

void LaunchRandomUniform(cudaStream_t stream, uint64_t state, float scale, DType dtype, void* dst,
                         int64_t count) {
  RS_CHECK(count >= 0);
  if (count == 0) return;
  RS_DISPATCH_ACTIVATION(dtype, T,
                         RS_LAUNCH(RandomUniformKernel<T>, ElementBlocks(count), kThreads, 0,
                                   stream, state, scale, static_cast<T*>(dst), count));
  RS_CUDA_CHECK_LAUNCH();
}

void LaunchEmbeddingGather(cudaStream_t stream, DType table_dtype, const void* table,
                           int64_t table_rows, const int32_t* ids, const Mat& out) {
  CheckRows(out);
  if (out.rows == 0 || out.cols == 0) return;
  RS_CHECK(table != nullptr && ids != nullptr && table_rows > 0);
  RS_DISPATCH_ACTIVATION(table_dtype, T, WithWide<T>(table_dtype, out.dtype, [&](auto wide) {
                           using O = decltype(wide);
                           const auto kernel = &EmbeddingGatherKernel<T, O>;
                           RS_LAUNCH(kernel, RowGrid(out.rows, out.cols), kThreads, 0, stream,
                                     static_cast<const T*>(table), table_rows, ids,
                                     static_cast<O*>(out.data), out.stride, out.cols);
                         }));
  RS_CUDA_CHECK_LAUNCH();
}

void LaunchGatherRows(cudaStream_t stream, const Mat& x, const int32_t* rows, const Mat& out) {
  CheckRows(x);
  CheckRows(out);
  RS_CHECK(x.dtype == out.dtype && x.cols == out.cols);
  if (out.rows == 0 || out.cols == 0) return;
  RS_CHECK(rows != nullptr && x.rows > 0);
  RS_DISPATCH_ACTIVATION(out.dtype, T,
                         RS_LAUNCH(GatherRowsKernel<T>, RowGrid(out.rows, out.cols), kThreads, 0,
                                   stream, static_cast<const T*>(x.data), x.rows, x.stride, rows,
                                   static_cast<T*>(out.data), out.stride, out.cols));
  RS_CUDA_CHECK_LAUNCH();
}

void LaunchAddLora(cudaStream_t stream, const Mat& x, const LoraStack& lora,
                   const int32_t* row_slots, float* scratch, const Mat& y) {
  CheckRows(x);
  CheckRows(y);
  RS_CHECK(x.cols == lora.in && y.cols == lora.out && x.rows == y.rows);
  RS_CHECK(lora.rank > 0 && lora.rank <= 65535 && lora.num_slots > 0);
  RS_CHECK(lora.a != nullptr && lora.b_t != nullptr);
  if (x.rows == 0) return;
  RS_CHECK(x.rows <= 0x7FFFFFFF && row_slots != nullptr && scratch != nullptr);
  const dim3 shrink_grid(static_cast<unsigned>(x.rows), static_cast<unsigned>(lora.rank));
  RS_DISPATCH_ACTIVATION(x.dtype, T, {
    RS_LAUNCH(LoraShrinkKernel<T>, shrink_grid, kThreads, 0, stream, static_cast<const T*>(x.data),
              x.stride, static_cast<const T*>(lora.a), lora.in, lora.rank, lora.num_slots,
              row_slots, scratch);
    WithWide<T>(x.dtype, y.dtype, [&](auto wide) {
      using Y = decltype(wide);
      const auto kernel = &LoraExpandKernel<T, Y>;
      RS_LAUNCH(kernel, RowGrid(y.rows, y.cols), kThreads, 0, stream, scratch,
                static_cast<const T*>(lora.b_t), lora.out, lora.rank, row_slots,
                static_cast<Y*>(y.data), y.stride);
    });
  });
  RS_CUDA_CHECK_LAUNCH();
}

void LaunchRmsNorm(cudaStream_t stream, const Mat& x, const void* weight, float eps,
                   const Mat& out) {
  CheckRows(x);
  CheckRows(out);
  RS_CHECK(x.rows == out.rows && x.cols == out.cols);
  if (x.rows == 0 || x.cols == 0) return;
  RS_CHECK(x.rows <= 0x7FFFFFFF && weight != nullptr);
  RS_DISPATCH_ACTIVATION(out.dtype, T, WithWide<T>(out.dtype, x.dtype, [&](auto wide) {
                           using X = decltype(wide);
                           const auto kernel = &RmsNormKernel<X, T>;
                           RS_LAUNCH(kernel, static_cast<unsigned>(x.rows), kThreads, 0, stream,
                                     static_cast<const X*>(x.data), x.stride,
                                     static_cast<const T*>(weight), eps, static_cast<T*>(out.data),
                                     out.stride, x.cols);
                         }));
  RS_CUDA_CHECK_LAUNCH();
}

void LaunchAddRmsNorm(cudaStream_t stream, const Mat& residual, const Mat& delta,
                      const void* weight, float eps, const Mat& out) {
  CheckRows(residual);
  CheckRows(delta);
  CheckRows(out);
  RS_CHECK(residual.dtype == delta.dtype);
  RS_CHECK(residual.rows == delta.rows && residual.rows == out.rows);
  RS_CHECK(residual.cols == delta.cols && residual.cols == out.cols);
  if (residual.rows == 0 || residual.cols == 0) return;
  RS_CHECK(residual.rows <= 0x7FFFFFFF && weight != nullptr);
  RS_DISPATCH_ACTIVATION(out.dtype, T, WithWide<T>(out.dtype, residual.dtype, [&](auto wide) {
                           using R = decltype(wide);
                           const auto kernel = &AddRmsNormKernel<R, T>;
                           RS_LAUNCH(kernel, static_cast<unsigned>(residual.rows), kThreads, 0,
                                     stream, static_cast<R*>(residual.data), residual.stride,
                                     static_cast<const R*>(delta.data), delta.stride,
                                     static_cast<const T*>(weight), eps, static_cast<T*>(out.data),
                                     out.stride, residual.cols);
                         }));
  RS_CUDA_CHECK_LAUNCH();
}

void LaunchAddBias(cudaStream_t stream, const Mat& x, const void* bias, DType bias_dtype) {
  CheckRows(x);
  RS_CHECK(x.dtype == DType::kF32 && bias != nullptr);
  if (x.rows == 0 || x.cols == 0) return;
  RS_DISPATCH_ACTIVATION(
      bias_dtype, T,
      RS_LAUNCH(AddBiasKernel<T>, RowGrid(x.rows, x.cols), kThreads, 0, stream,
                static_cast<float*>(x.data), x.stride, static_cast<const T*>(bias), x.cols));
  RS_CUDA_CHECK_LAUNCH();
}

void LaunchHeadRmsNorm(cudaStream_t stream, const Mat& x, int64_t head_dim, const void* weight,
                       DType weight_dtype, float eps) {
  CheckRows(x);
  RS_CHECK(x.dtype == DType::kF32 && weight != nullptr && head_dim > 0 && x.cols % head_dim == 0);
  if (x.rows == 0 || x.cols == 0) return;
  RS_CHECK(x.rows <= 0x7FFFFFFF && x.cols / head_dim <= 0xFFFF);
  const dim3 grid(static_cast<unsigned>(x.rows), static_cast<unsigned>(x.cols / head_dim));
  RS_DISPATCH_ACTIVATION(
      weight_dtype, T,
      RS_LAUNCH(HeadRmsNormKernel<T>, grid, kThreads, 0, stream, static_cast<float*>(x.data),
                x.stride, head_dim, static_cast<const T*>(weight), eps));
  RS_CUDA_CHECK_LAUNCH();
}

void LaunchSiluMul(cudaStream_t stream, const Mat& gate_up, const Mat& out) {
  CheckRows(gate_up);
  CheckRows(out);
  RS_CHECK(gate_up.dtype == out.dtype && gate_up.rows == out.rows && gate_up.cols == 2 * out.cols);
  if (out.rows == 0 || out.cols == 0) return;
  RS_DISPATCH_ACTIVATION(out.dtype, T,
                         RS_LAUNCH(SiluMulKernel<T>, RowGrid(out.rows, out.cols), kThreads, 0,
                                   stream, static_cast<const T*>(gate_up.data), gate_up.stride,
                                   static_cast<T*>(out.data), out.stride, out.cols));
  RS_CUDA_CHECK_LAUNCH();
}

cudaError_t CheckKernelImage() {
  cudaFuncAttributes attributes;
  return cudaFuncGetAttributes(&attributes, NoOpKernel);
}

}  // namespace ringserve::kernels::RS_CUDA_NS
