// The CPU's products on quantized weights (Q8_0, affine, kIQ4 and kQ6 panels, cpu_matmul.h):
// integer dot products, as llama.cpp's CPU backend computes them. Decoding a quant to f32 for
// an FMA costs more than reading its byte, so a product that loaded each weight as f32 ran
// at about two thirds of the memory's bandwidth on one sequence, and 4-bit weights ran no
// faster than 8-bit ones; a byte multiply-add does 32 products an instruction.
//
// Arithmetic. Each row of x is quantized per 32-value block b: with a = max |x| over the
// block, the block's scale s_b = a / 127 and its quants x_q = nearbyint(x * (127 / a)) in
// [-127, 127], each step one f32 operation (a block with a < 1e-30 quantizes to zero; one
// holding an infinity or a NaN gets the scale NaN, so the output is NaN). Then for every
// output y[i, j]: acc = 0; for each block b in order, with the weight block's scale d (and
// an affine type's offset m):
//   t = d * float(sum q * x_q)                       (Q8_0; kIQ4 with q its index's level)
//   t = fma(m, float(sum x_q), d * float(sum q * x_q)) (affine: sum (q d + m) x_q)
//   acc = fma(t, s_b, acc)
// where kQ6 weighs each 16-value half's integer sum by its int8 scale s_h before the one
// float step, with d its f16 block scale (the sum stays below 2^24, so float() is exact):
//   t = d * float(sum_h s_h * sum (q - 32) * x_q)
// The integer sums are exact and the float steps are fixed, so y[i, j] is bit-identical
// whatever n is and wherever row i sits in the batch (batch invariance), on any thread count.
// The result differs from the product of the weights' f32 values by x's quantization error,
// at most s_b / 2 per value (about 0.2% of the block's largest), the error llama.cpp serves.
#ifndef RINGSERVE_KERNELS_CPU_QUANT_MATMUL_H_
#define RINGSERVE_KERNELS_CPU_QUANT_MATMUL_H_

#include <cstdint>
#include <vector>

#include "kernels/cpu/cpu_isa.h"
#include "kernels/cpu/cpu_matmul.h"
#include "kernels/cpu/thread_pool.h"

namespace ringserve::kernels::cpu {

// A product whose quantized x (n * k bytes) is at most this streams each panel of W whole
// through every row tile of x; a bigger one blocks k (quant_matmul_panels.inc says why).
inline constexpr int64_t kQuantStreamXBytes = int64_t{256} << 10;

// Rows of x quantized as above.
struct QuantizedRows {
  int64_t k = 0;
  std::vector<int8_t> quants;     // [n][k]
  std::vector<float> scales;      // [n][k / 32]: s_b
  std::vector<float> sums;        // [n][k / 32]: sum of the block's quants, as f32 (exact)
  std::vector<float> first_sums;  // [n][k / 32]: sum of its first 16 quants (kQ6's half), too
};

// Quantizes rows [0, n) of x (k a multiple of 32) into `out`, across the pool.
void QuantizeRows(ThreadPool& pool, const float* x, int64_t ldx, int64_t n, int64_t k,
                  QuantizedRows& out);

// y = x * W^T for a quantized weight, parallel over output panels: on kAvx512Vnni
// with its byte dot products, on every other ISA with AVX2's (the same bits either way).
void MatMulQuantized(ThreadPool& pool, const MatMulArgs& args, Isa isa);

// Copies W row r of a quantized weight out as f32: q * d, or fma(q, d, m).
void UnpackQuantizedRow(const PanelLayout& layout, PanelType type, const void* w, int64_t r,
                        float* dst, const float* params);

}  // namespace ringserve::kernels::cpu

#endif  // RINGSERVE_KERNELS_CPU_QUANT_MATMUL_H_
