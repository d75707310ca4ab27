// The CPU backend's matrix product y = x * W^T and the weight layout it runs on.
//
// Layout. W [m, k] is stored as column panels of 16 output features: panel p holds W rows
// [16p, 16p + width) transposed, i.e. element (r, c) sits at panel_base(p) + c * ldw(p) +
// (r - 16p). Two instances of that scheme:
//  - packed (default): panels stored one after another, each [k][width] contiguous
//    (panel_base = 16p * k, ldw = width). The AVX-512 path streams groups of 3-4 panels
//    front to back, each once through all row tiles of x, prefetching the next group.
//    When x is too big for the caches (and on AVX2 from 6 rows on) k is blocked instead: a
//    block of panels stays in L2 while row tiles of x stream past it.
//  - transposed (BackendOptions::cpu_use_blas): one panel of width m, i.e. W^T [k][m]
//    row-major (panel_base = 16p, ldw = m), which cblas_sgemm reads directly.
// A [1, k] weight (a norm's gain) is row-major in both.
//
// Element types. Packed panels hold f32, or what a checkpoint stores: bf16 or f16 values,
// or Q8_0's int8 quants with each 32-value block's scale in a second, [m, k / 32] packed
// layout (as f32). Each element becomes f32 exactly as it is loaded (a quant times its f16
// scale is exact in f32), so the same values in f32 panels give the same bits, from half
// (a quarter plus 1/32) of the bytes. These panels run on the AVX2 kernels on every CPU
// (the AVX-512 kernels take f32 only).
//
// Arithmetic. Every output y[i, j] is computed as acc = 0; for c = 0..k-1 in order:
// acc = fma(x[i, c], W[j, c], acc); whatever the path (register tile size, k blocking,
// vector width or ISA, thread split, scalar tail). FMA is correctly rounded, so a vector lane and
// a scalar std::fma agree, and storing acc between k blocks is exact. Hence y[i, j] is
// bit-identical whatever n is and wherever row i sits in the batch (batch invariance). Work
// is split across threads over output panels only, never over k.
#ifndef RINGSERVE_KERNELS_CPU_CPU_MATMUL_H_
#define RINGSERVE_KERNELS_CPU_CPU_MATMUL_H_

#include <cstdint>

#include "kernels/cpu/cpu_isa.h"
#include "kernels/cpu/thread_pool.h"
#include "kernels/dtype.h"

namespace ringserve::kernels::cpu {

inline constexpr int kPanelWidth = 16;

struct PanelLayout {
  bool transposed = false;  // W^T [k][m] instead of packed panels
  int64_t rows = 0;         // m, output features
  int64_t cols = 0;         // k, input features

  int64_t num_panels() const { return (rows + kPanelWidth - 1) / kPanelWidth; }
  int64_t width(int64_t p) const {
    return rows - p * kPanelWidth < kPanelWidth ? rows - p * kPanelWidth : kPanelWidth;
  }
  int64_t base(int64_t p) const { return transposed ? p * kPanelWidth : p * kPanelWidth * cols; }
  int64_t ldw(int64_t p) const { return transposed ? rows : width(p); }
  // Offset of element (r, c) from the start of the weight.
  int64_t Offset(int64_t r, int64_t c) const {
    const int64_t p = r / kPanelWidth;
    return base(p) + c * ldw(p) + (r - p * kPanelWidth);
  }
};

enum class PanelType : uint8_t { kF32, kBF16, kF16, kQ8_0 };

// Bytes of the quants of a [rows, cols] Q8_0 weight, rounded up to a cache line: its block
// scales follow them.
inline int64_t Q8_0QuantBytes(int64_t rows, int64_t cols) { return (rows * cols + 63) / 64 * 64; }

// Where a Q8_0 weight of `layout` keeps its block scales: one per 32 values of a row.
inline PanelLayout Q8_0ScaleLayout(const PanelLayout& layout) {
  return {false, layout.rows, layout.cols / kQ8_0BlockValues};
}

// Bytes of a [rows, cols] weight of `type` (Q8_0: quants and then f32 block scales).
inline int64_t PanelBytes(PanelType type, int64_t rows, int64_t cols) {
  switch (type) {
    case PanelType::kF32:
      return rows * cols * 4;
    case PanelType::kQ8_0:
      return Q8_0QuantBytes(rows, cols) + rows * (cols / kQ8_0BlockValues) * 4;
    default:
      return rows * cols * 2;
  }
}

// Writes `num_rows` row-major rows starting at W row `first_row` into their place in `dst`
// (num_rows = 16 and first_row a multiple of 16 except for the last panel). A half `type`
// rounds each value to it (exact for values that came from it).
void PackRows(const PanelLayout& layout, const float* src, int64_t first_row, int64_t num_rows,
              float* dst);
void PackRows(const PanelLayout& layout, PanelType type, const float* src, int64_t first_row,
              int64_t num_rows, void* dst);
// The same for Q8_0 rows as a checkpoint stores them (blocks of an f16 scale and 32 int8
// quants): the quants into `quants` ([m, k] layout), the scales as f32 into `scales` (the
// [m, k / 32] layout).
void PackQ8_0Rows(const PanelLayout& layout, const uint8_t* src, int64_t first_row,
                  int64_t num_rows, int8_t* quants, float* scales);

// Copies W row r (cols values, as f32) out of the layout.
void UnpackRow(const PanelLayout& layout, PanelType type, const void* w, int64_t r, float* dst,
               const float* scales = nullptr);

struct MatMulArgs {
  const float* x = nullptr;
  int64_t ldx = 0;
  int64_t n = 0;
  const void* w = nullptr;  // w_type elements
  PanelLayout layout;
  float* y = nullptr;
  int64_t ldy = 0;
  PanelType w_type = PanelType::kF32;  // all but f32 need the packed layout
  const float* w_scales = nullptr;     // kQ8_0: the block scales ([m, k / 32] layout)
};

// The batch-invariant product described above, parallel over output panels, on BestIsa().
void MatMul(ThreadPool& pool, const MatMulArgs& args);
// The same on a given ISA (which must be IsaSupported): for tests that compare the ISAs'
// bits and benchmarks that compare their speed.
void MatMul(ThreadPool& pool, const MatMulArgs& args, Isa isa);

// cblas_sgemm on a transposed-layout weight: faster for large n, not batch invariant.
void MatMulBlas(const MatMulArgs& args);

}  // namespace ringserve::kernels::cpu

#endif  // RINGSERVE_KERNELS_CPU_CPU_MATMUL_H_
