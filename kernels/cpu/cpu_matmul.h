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

// Writes `num_rows` row-major rows starting at W row `first_row` into their place in `dst`
// (num_rows = 16 and first_row a multiple of 16 except for the last panel).
void PackRows(const PanelLayout& layout, const float* src, int64_t first_row, int64_t num_rows,
              float* dst);

// Copies W row r (cols values) out of the layout.
void UnpackRow(const PanelLayout& layout, const float* w, int64_t r, float* dst);

struct MatMulArgs {
  const float* x = nullptr;
  int64_t ldx = 0;
  int64_t n = 0;
  const float* w = nullptr;
  PanelLayout layout;
  float* y = nullptr;
  int64_t ldy = 0;
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
