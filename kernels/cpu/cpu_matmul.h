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
// which become f32 exactly as they are loaded, so the same values in f32 panels give the same
// bits from half the bytes, on either ISA's kernels; or Q8_0's int8 quants with each
// 32-value block's scale, kQ4Affine's 4-bit or kQ5Affine's 5-bit quants with each block's
// scale and offset, kIQ4's 4-bit indices of int8 levels with each block's scale, or kQ6's
// 6-bit quants with each block's f16 scale and int8 half-block scales, which quant_matmul.h
// multiplies as integers against activations quantized to int8 (its own
// arithmetic, described there).
//
// Arithmetic of the float panels. Every output y[i, j] is computed as acc = 0; for c = 0..k-1
// in order: acc = fma(x[i, c], W[j, c], acc); whatever the path (register tile size, k
// blocking, vector width or ISA, thread split, scalar tail). FMA is correctly rounded, so a
// vector lane and a scalar std::fma agree, and storing acc between k blocks is exact. Hence
// y[i, j] is bit-identical whatever n is and wherever row i sits in the batch (batch
// invariance). Work is split across threads over output panels only, never over k.
#ifndef RINGSERVE_KERNELS_CPU_CPU_MATMUL_H_
#define RINGSERVE_KERNELS_CPU_CPU_MATMUL_H_

#include <cstdint>
#include <iterator>

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

enum class PanelType : uint8_t { kF32, kBF16, kF16, kQ8_0, kQ4Affine, kQ5Affine, kIQ4, kQ6 };

// The values one set of block parameters covers, in every quantized type.
inline constexpr int kQuantBlock = 32;
static_assert(kQ8_0BlockValues == kQuantBlock && kQ4AffineBlockValues == kQuantBlock &&
              kQ5AffineBlockValues == kQuantBlock && kIq4BlockValues == kQuantBlock &&
              kQ6BlockValues == kQuantBlock);

// What each panel type holds: the dtype a checkpoint stores its rows in (f32 for kF32), the
// bits of each quant (0: a float type) and its parameter words a 32-value block (below).
struct PanelTypeInfo {
  PanelType type;
  DType dtype;
  int quant_bits;
  int block_params;
};
inline constexpr PanelTypeInfo kPanelTypes[] = {
    {PanelType::kF32, DType::kF32, 0, 0},           {PanelType::kBF16, DType::kBF16, 0, 0},
    {PanelType::kF16, DType::kF16, 0, 0},           {PanelType::kQ8_0, DType::kQ8_0, 8, 1},
    {PanelType::kQ4Affine, DType::kQ4Affine, 4, 2}, {PanelType::kQ5Affine, DType::kQ5Affine, 5, 2},
    {PanelType::kIQ4, DType::kIQ4, 4, 1},           {PanelType::kQ6, DType::kQ6, 6, 1},
};
constexpr const PanelTypeInfo& InfoOf(PanelType type) {
  return kPanelTypes[static_cast<int>(type)];
}
static_assert([] {
  for (int i = 0; i < static_cast<int>(std::size(kPanelTypes)); ++i) {
    if (static_cast<int>(kPanelTypes[i].type) != i) return false;
  }
  return true;
}());

constexpr bool IsQuantized(PanelType type) { return InfoOf(type).quant_bits > 0; }
// Whether `type`'s blocks are fma(q, d, m): a scale and an offset each.
constexpr bool IsAffine(PanelType type) { return InfoOf(type).block_params == 2; }

// The quantized panels keep their quants first, every panel 16 features wide (a narrower
// last one padded with zero quants), k rows in groups of 4 so that one 32-bit lane holds 4
// consecutive values of one feature (what the integer dot products consume), a 32-value
// block of k after another:
//  - kQ8_0: 64 bytes a group, feature j's 4 int8 quants at bytes 4j..4j+3;
//  - kQ4Affine: 32 bytes a group, byte 4 (j % 8) + r holding k row r of feature j in its low
//    nibble when j < 8, its high one otherwise;
//  - kQ5Affine: the block's 8 groups of nibbles as kQ4Affine's (the quants' low 4 bits),
//    then 8 bytes a group of fifth bits: with e = 4j + r (the byte k row r of feature j
//    takes when the nibbles are spread out as bytes, features 0-7 then 8-15), bit e / 8 of
//    byte e % 8. Shifting 64-bit lane L of those 8 bytes left by 4 - L puts each quant's
//    fifth bit at bit 4 of its own byte;
//  - kIQ4: kQ4Affine's layout, each nibble an index into kIq4Levels;
//  - kQ6: the block's 8 groups of nibbles as kQ4Affine's (the quants' low 4 bits), then 16
//    bytes a group of top bit pairs: with e = 4j + r (the byte k row r of feature j takes
//    when the nibbles are spread out as bytes), bits 2 (e / 16) and up of byte e % 16.
//    Those 16 bytes broadcast to each 128-bit lane L of the spread bytes, shifted left by
//    4 - 2L (right by 2 for L = 3), put each quant's pair at bits 4-5 of its own byte.
// Then the block parameters, 32 bits a feature per 32 values of a W row, in the packed
// layout of a [m rounded up to 16, k / 32 * per-block] matrix of f32 (padding features
// zero): kQ8_0's and kIQ4's scale; an affine type's scale, then its offset; kQ6's block
// header as its dtype stores it (int8 s0, int8 s1, f16 d: not an f32).
constexpr int QuantBits(PanelType type) { return InfoOf(type).quant_bits; }
// Bytes of one panel's 32-value block of k.
constexpr int64_t PanelBlockBytes(PanelType type) {
  return int64_t{kPanelWidth} * kQuantBlock * QuantBits(type) / 8;
}
inline int64_t QuantBytes(PanelType type, int64_t rows, int64_t cols) {
  const int64_t bytes =
      PanelLayout{false, rows, cols}.num_panels() * (cols / kQuantBlock) * PanelBlockBytes(type);
  return (bytes + 63) / 64 * 64;  // the parameters start on a cache line
}
constexpr int BlockParams(PanelType type) { return InfoOf(type).block_params; }

// The panel type a matrix stored as `dtype` is packed in (f32 for any dtype without one).
constexpr PanelType PanelTypeOf(DType dtype) {
  for (const PanelTypeInfo& info : kPanelTypes) {
    if (info.dtype == dtype) return info.type;
  }
  return PanelType::kF32;
}
inline PanelLayout BlockParamLayout(PanelType type, const PanelLayout& layout) {
  return {false, layout.num_panels() * kPanelWidth, layout.cols / kQuantBlock * BlockParams(type)};
}

// Bytes of a [rows, cols] weight of `type`.
inline int64_t PanelBytes(PanelType type, int64_t rows, int64_t cols) {
  if (!IsQuantized(type)) return rows * cols * (type == PanelType::kF32 ? 4 : 2);
  const PanelLayout params = BlockParamLayout(type, {false, rows, cols});
  return QuantBytes(type, rows, cols) + params.rows * params.cols * 4;
}

// Writes `num_rows` row-major rows starting at W row `first_row` into their place in `dst`
// (num_rows = 16 and first_row a multiple of 16 except for the last panel). A half `type`
// rounds each value to it (exact for values that came from it).
void PackRows(const PanelLayout& layout, const float* src, int64_t first_row, int64_t num_rows,
              float* dst);
void PackRows(const PanelLayout& layout, PanelType type, const float* src, int64_t first_row,
              int64_t num_rows, void* dst);
// The same for quantized rows (DType blocks: Q8_0, affine, kIQ4, kQ6, as a checkpoint stores
// them): the quants into `quants`, the block parameters into `params`, both laid out as above.
// One whole panel a call (first_row a multiple of 16, num_rows its width).
void PackBlockRows(const PanelLayout& layout, PanelType type, const uint8_t* src, int64_t first_row,
                   int64_t num_rows, void* quants, float* params);

// Copies W row r (cols values, as f32) out of the layout.
void UnpackRow(const PanelLayout& layout, PanelType type, const void* w, int64_t r, float* dst,
               const float* params = nullptr);

struct MatMulArgs {
  const float* x = nullptr;
  int64_t ldx = 0;
  int64_t n = 0;
  const void* w = nullptr;  // w_type elements
  PanelLayout layout;
  float* y = nullptr;
  int64_t ldy = 0;
  PanelType w_type = PanelType::kF32;  // all but f32 need the packed layout
  const float* w_params = nullptr;     // quantized types: the block parameters
};

// The fewest output panels a thread takes of a product: below ~64k multiply-adds a thread's
// wake-up costs more than it saves (tiny models).
inline int64_t MinPanelsPerChunk(const MatMulArgs& args) {
  const int64_t macs_per_panel = kPanelWidth * args.layout.cols * args.n;
  return macs_per_panel >= (int64_t{1} << 16) ? 1 : (int64_t{1} << 16) / macs_per_panel;
}

// The batch-invariant product described above, parallel over output panels, on BestIsa().
void MatMul(ThreadPool& pool, const MatMulArgs& args);
// The same on a given ISA (which must be IsaSupported): for tests that compare the ISAs'
// bits and benchmarks that compare their speed.
void MatMul(ThreadPool& pool, const MatMulArgs& args, Isa isa);

// cblas_sgemm on a transposed-layout weight: faster for large n, not batch invariant.
void MatMulBlas(const MatMulArgs& args);

}  // namespace ringserve::kernels::cpu

#endif  // RINGSERVE_KERNELS_CPU_CPU_MATMUL_H_
