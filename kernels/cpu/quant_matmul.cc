#include "kernels/cpu/quant_matmul.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "common/check.h"
#include "kernels/cpu/simd.h"
#include "kernels/dtype.h"

namespace ringserve::kernels::cpu {
namespace {

// k rows whose quants share one 32-bit lane of a panel (cpu_matmul.h).
constexpr int64_t kGroupRows = 4;
constexpr int64_t kGroupsPerBlock = kQuantBlock / kGroupRows;
// A block of x whose largest magnitude is below this quantizes to zero: 127 / a would
// overflow, and its products are below anything f32 outputs resolve.
constexpr float kMinBlockMax = 1e-30F;
// Prefill blocks k so that a 4-row tile of quantized x (4 x 256 bytes) stays in L1 while it
// sweeps a group of panels, whose k block (32 x 256 x 16 bytes of Q8_0) stays in L2 across
// the row tiles.
constexpr int64_t kKBlock = 256;
constexpr int64_t kPanelGroup = 32;
constexpr int kMaxRowTile = 4;

// The panel type a kernel instance runs on.
template <bool kQ4>
constexpr PanelType kPanelType = kQ4 ? PanelType::kQ4Affine : PanelType::kQ8_0;

// Rows of x quantized and multiplied at a time (MatMulQuantized).
constexpr int64_t kRowSlab = 1024;

constexpr int64_t GroupBytes(bool q4) { return kPanelWidth * kGroupRows / (q4 ? 2 : 1); }
constexpr int64_t PanelQuantBytes(bool q4, int64_t cols) {
  return cols / kGroupRows * GroupBytes(q4);
}
// Where k row c of feature j sits in its panel (kQ4Affine: in the nibble j / 8 picks).
constexpr int64_t QuantOffset(bool q4, int64_t c, int64_t j) {
  return c / kGroupRows * GroupBytes(q4) + (q4 ? j % 8 : j) * kGroupRows + c % kGroupRows;
}

// One row of x, k / 32 blocks.
void QuantizeRow(const float* x, int64_t k, int8_t* quants, float* scales, float* sums) {
  const __m256 sign_bit = _mm256_set1_ps(-0.0F);
  const __m256 infinity = _mm256_set1_ps(std::numeric_limits<float>::infinity());
  for (int64_t b = 0; b < k / kQuantBlock; ++b) {
    const float* xb = x + b * kQuantBlock;
    int8_t* qb = quants + b * kQuantBlock;
    __m256 v[4];
    __m256 largest = _mm256_setzero_ps();
    int not_finite = 0;
    for (int64_t h = 0; h < 4; ++h) {
      v[h] = _mm256_loadu_ps(xb + 8 * h);
      const __m256 magnitude = _mm256_andnot_ps(sign_bit, v[h]);
      largest = _mm256_max_ps(largest, magnitude);
      not_finite |= _mm256_movemask_ps(_mm256_cmp_ps(magnitude, infinity, _CMP_NLT_UQ));
    }
    const float block_max = HorizontalMax(largest);
    if (not_finite != 0 || !(block_max >= kMinBlockMax)) {
      std::memset(qb, 0, kQuantBlock);
      scales[b] = not_finite != 0 ? std::numeric_limits<float>::quiet_NaN() : 0.0F;
      sums[b] = 0;
      continue;
    }
    const __m256 inverse = _mm256_set1_ps(127.0F / block_max);
    __m256i q[4];
    for (int64_t h = 0; h < 4; ++h) q[h] = _mm256_cvtps_epi32(_mm256_mul_ps(v[h], inverse));
    // packs interleaves 128-bit lanes: dwords come out as values 0-3, 8-11, 16-19, 24-27,
    // 4-7, 12-15, 20-23, 28-31; the permutation puts them back in order.
    const __m256i bytes =
        _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
    _mm256_storeu_si256(
        reinterpret_cast<__m256i*>(qb),
        _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
    const __m256i total8 =
        _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
    __m128i total4 =
        _mm_add_epi32(_mm256_castsi256_si128(total8), _mm256_extracti128_si256(total8, 1));
    total4 = _mm_add_epi32(total4, _mm_shuffle_epi32(total4, 0x4E));
    total4 = _mm_add_epi32(total4, _mm_shuffle_epi32(total4, 0xB1));
    scales[b] = block_max / 127.0F;
    sums[b] = static_cast<float>(_mm_cvtsi128_si32(total4));
  }
}

// Rows [i0, i0 + MR) of x against one panel (16 features), blocks [b0, b0 + blocks) of k:
// the panel's quants from block b0 on at `wq`, its block parameters from block b0 on at
// `params`; writes y (16 wide), adding to what it holds when `accumulate`.
template <int MR, bool kQ4>
void Kernel(const QuantizedRows& x, int64_t i0, int64_t b0, int64_t blocks, const uint8_t* wq,
            const float* params, float* y, int64_t ldy, bool accumulate) {
  const __m256i ones = _mm256_set1_epi16(1);
  const __m256i low_nibbles = _mm256_set1_epi8(0x0F);
  const int64_t row_blocks = x.k / kQuantBlock;
  constexpr int64_t kParamStep = int64_t{BlockParams(kPanelType<kQ4>)} * kPanelWidth;
  for (int64_t b = 0; b < blocks; ++b) {
    const uint8_t* wb = wq + b * kGroupsPerBlock * GroupBytes(kQ4);
    const int8_t* xb = x.quants.data() + i0 * x.k + (b0 + b) * kQuantBlock;
    // kQ4Affine: int16 sums of the block's 8 groups (|q x| <= 15 * 127, 16 terms: no
    // overflow); Q8_0: int32 sums.
    __m256i acc[MR][2];
    for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_si256();
    for (int64_t g = 0; g < kGroupsPerBlock; ++g) {
      // maddubs multiplies unsigned by signed bytes: 4-bit quants by x; Q8_0's |w| by x
      // carrying w's sign.
      __m256i w[2];
      __m256i magnitude[2];
      if constexpr (kQ4) {
        const __m256i raw =
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb + g * GroupBytes(true)));
        w[0] = _mm256_and_si256(raw, low_nibbles);
        w[1] = _mm256_and_si256(_mm256_srli_epi16(raw, 4), low_nibbles);
      } else {
        for (int64_t h = 0; h < 2; ++h) {
          w[h] = _mm256_loadu_si256(
              reinterpret_cast<const __m256i*>(wb + g * GroupBytes(false) + 32 * h));
          magnitude[h] = _mm256_abs_epi8(w[h]);
        }
      }
      for (int i = 0; i < MR; ++i) {
        int32_t four = 0;
        std::memcpy(&four, xb + i * x.k + g * kGroupRows, sizeof(four));
        const __m256i xs = _mm256_set1_epi32(four);
        for (int64_t h = 0; h < 2; ++h) {
          if constexpr (kQ4) {
            acc[i][h] = _mm256_add_epi16(acc[i][h], _mm256_maddubs_epi16(w[h], xs));
          } else {
            const __m256i pairs = _mm256_maddubs_epi16(magnitude[h], _mm256_sign_epi8(xs, w[h]));
            acc[i][h] = _mm256_add_epi32(acc[i][h], _mm256_madd_epi16(pairs, ones));
          }
        }
      }
    }
    const float* p = params + b * kParamStep;
    for (int i = 0; i < MR; ++i) {
      const int64_t at = (i0 + i) * row_blocks + b0 + b;
      const __m256 scale = _mm256_set1_ps(x.scales[at]);
      float* yi = y + i * ldy;
      for (int64_t h = 0; h < 2; ++h) {
        const __m256i sum = kQ4 ? _mm256_madd_epi16(acc[i][h], ones) : acc[i][h];
        __m256 t = _mm256_mul_ps(_mm256_loadu_ps(p + 8 * h), _mm256_cvtepi32_ps(sum));
        if constexpr (kQ4) {
          t = _mm256_fmadd_ps(_mm256_loadu_ps(p + kPanelWidth + 8 * h), _mm256_set1_ps(x.sums[at]),
                              t);
        }
        const __m256 before =
            accumulate || b > 0 ? _mm256_loadu_ps(yi + 8 * h) : _mm256_setzero_ps();
        _mm256_storeu_ps(yi + 8 * h, _mm256_fmadd_ps(t, scale, before));
      }
    }
  }
}

template <bool kQ4>
void RowTile(int mr, const QuantizedRows& x, int64_t i0, int64_t b0, int64_t blocks,
             const uint8_t* wq, const float* params, float* y, int64_t ldy, bool accumulate) {
  switch (mr) {
    case 1:
      return Kernel<1, kQ4>(x, i0, b0, blocks, wq, params, y, ldy, accumulate);
    case 2:
      return Kernel<2, kQ4>(x, i0, b0, blocks, wq, params, y, ldy, accumulate);
    case 3:
      return Kernel<3, kQ4>(x, i0, b0, blocks, wq, params, y, ldy, accumulate);
    default:
      return Kernel<4, kQ4>(x, i0, b0, blocks, wq, params, y, ldy, accumulate);
  }
}

// One thread's share: output panels [p0, p1), every row of x.
template <bool kQ4>
void MatMulPanels(const MatMulArgs& a, const QuantizedRows& x, int64_t p0, int64_t p1) {
  const PanelLayout& l = a.layout;
  const int64_t k = l.cols;
  const PanelLayout params_layout = BlockParamLayout(kPanelType<kQ4>, l);
  const auto* quants = static_cast<const uint8_t*>(a.w);
  // Decode rows reuse nothing, so stream each panel whole; prefill blocks k for the caches.
  const int64_t k_block = a.n <= kMaxRowTile ? k : kKBlock;
  for (int64_t k0 = 0; k0 < k; k0 += k_block) {
    const int64_t b0 = k0 / kQuantBlock;
    const int64_t blocks = std::min(k_block, k - k0) / kQuantBlock;
    for (int64_t g0 = p0; g0 < p1; g0 += kPanelGroup) {
      const int64_t g1 = std::min(p1, g0 + kPanelGroup);
      for (int64_t i0 = 0; i0 < a.n; i0 += kMaxRowTile) {
        const int mr = static_cast<int>(std::min<int64_t>(kMaxRowTile, a.n - i0));
        for (int64_t p = g0; p < g1; ++p) {
          const uint8_t* wq = quants + p * PanelQuantBytes(kQ4, k) + QuantOffset(kQ4, k0, 0);
          const float* params =
              a.w_params + params_layout.base(p) + b0 * BlockParams(kPanelType<kQ4>) * kPanelWidth;
          float* y = a.y + i0 * a.ldy + p * kPanelWidth;
          const int64_t width = l.width(p);
          if (width == kPanelWidth) {
            RowTile<kQ4>(mr, x, i0, b0, blocks, wq, params, y, a.ldy, k0 > 0);
            continue;
          }
          // The narrow last panel computes its zero padding features into scratch.
          float tail[kMaxRowTile][kPanelWidth] = {};
          for (int i = 0; i < mr && k0 > 0; ++i) std::copy_n(y + i * a.ldy, width, tail[i]);
          RowTile<kQ4>(mr, x, i0, b0, blocks, wq, params, tail[0], kPanelWidth, k0 > 0);
          for (int i = 0; i < mr; ++i) std::copy_n(tail[i], width, y + i * a.ldy);
        }
      }
    }
  }
}

}  // namespace

void QuantizeRows(ThreadPool& pool, const float* x, int64_t ldx, int64_t n, int64_t k,
                  QuantizedRows& out) {
  RS_CHECK(k % kQuantBlock == 0);
  out.k = k;
  out.quants.resize(static_cast<size_t>(n * k));
  out.scales.resize(static_cast<size_t>(n * (k / kQuantBlock)));
  out.sums.resize(out.scales.size());
  pool.ParallelFor(
      n,
      [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
          QuantizeRow(x + r * ldx, k, out.quants.data() + r * k,
                      out.scales.data() + r * (k / kQuantBlock),
                      out.sums.data() + r * (k / kQuantBlock));
        }
      },
      std::max<int64_t>(1, (int64_t{1} << 15) / std::max<int64_t>(k, 1)));
}

void MatMulQuantized(ThreadPool& pool, const MatMulArgs& args) {
  const PanelLayout& l = args.layout;
  RS_CHECK(!l.transposed && args.w_params != nullptr && l.cols % kQuantBlock == 0 &&
           (args.w_type == PanelType::kQ8_0 || args.w_type == PanelType::kQ4Affine));
  // Reused across calls on this thread: no allocation once it has seen a full slab. (The
  // pool's threads read it through `x`: a lambda naming the thread_local itself would reach
  // each thread's own.)
  thread_local QuantizedRows calling_thread_rows;
  QuantizedRows& x = calling_thread_rows;
  const bool q4 = args.w_type == PanelType::kQ4Affine;
  // A slab of rows at a time, so the quantized copy stays a few MiB (1024 rows at k = 14336:
  // 18 MiB) whatever the batch; rows are independent, so the bits are the same, and W is
  // streamed once a slab, a small share of a prefill this long.
  for (int64_t r0 = 0; r0 < args.n; r0 += kRowSlab) {
    MatMulArgs slab = args;
    slab.x = args.x + r0 * args.ldx;
    slab.n = std::min(kRowSlab, args.n - r0);
    slab.y = args.y + r0 * args.ldy;
    QuantizeRows(pool, slab.x, slab.ldx, slab.n, l.cols, x);
    pool.ParallelFor(
        l.num_panels(),
        [&](int64_t p0, int64_t p1) {
          if (q4) {
            MatMulPanels<true>(slab, x, p0, p1);
          } else {
            MatMulPanels<false>(slab, x, p0, p1);
          }
        },
        MinPanelsPerChunk(slab));
  }
}

void PackBlockRows(const PanelLayout& layout, PanelType type, const uint8_t* src, int64_t first_row,
                   int64_t num_rows, void* quants, float* params) {
  RS_CHECK(!layout.transposed && layout.cols % kQuantBlock == 0 &&
           (type == PanelType::kQ8_0 || type == PanelType::kQ4Affine));
  const bool q4 = type == PanelType::kQ4Affine;
  const DType dtype = q4 ? DType::kQ4Affine : DType::kQ8_0;
  const int64_t blocks = layout.cols / kQuantBlock;
  const int block_bytes = q4 ? kQ4AffineBlockBytes : kQ8_0BlockBytes;
  const PanelLayout params_layout = BlockParamLayout(type, layout);
  const int64_t p = first_row / kPanelWidth;
  // One whole panel a call: its bytes are shared by its rows (a 4-bit byte holds two), and a
  // narrow last panel's padding features must be zero.
  RS_CHECK(first_row == p * kPanelWidth && num_rows == layout.width(p));
  uint8_t* panel = static_cast<uint8_t*>(quants) + p * PanelQuantBytes(q4, layout.cols);
  std::memset(panel, 0, static_cast<size_t>(PanelQuantBytes(q4, layout.cols)));
  std::fill_n(params + params_layout.base(p), kPanelWidth * params_layout.cols, 0.0F);
  for (int64_t r = first_row; r < first_row + num_rows; ++r) {
    const uint8_t* row =
        src + DTypeBytes(dtype, static_cast<size_t>((r - first_row) * layout.cols));
    const int64_t j = r - first_row;
    for (int64_t b = 0; b < blocks; ++b) {
      const uint8_t* block = row + b * block_bytes;
      if (!q4) {
        uint16_t scale_bits = 0;
        std::memcpy(&scale_bits, block, sizeof(scale_bits));
        params[params_layout.Offset(r, b)] = HalfToFloat(scale_bits);
        for (int64_t i = 0; i < kQuantBlock; ++i) {
          panel[QuantOffset(false, b * kQuantBlock + i, j)] = block[2 + i];
        }
        continue;
      }
      std::memcpy(&params[params_layout.Offset(r, 2 * b)], block, 4);
      std::memcpy(&params[params_layout.Offset(r, 2 * b + 1)], block + 4, 4);
      for (int i = 0; i < kQuantBlock; ++i) {
        const int q = Q4AffineQuant(block + 8, i);
        panel[QuantOffset(true, b * kQuantBlock + i, j)] |=
            static_cast<uint8_t>(j < 8 ? q : q << 4);
      }
    }
  }
}

void UnpackQuantizedRow(const PanelLayout& layout, PanelType type, const void* w, int64_t r,
                        float* dst, const float* params) {
  RS_CHECK(params != nullptr && (type == PanelType::kQ8_0 || type == PanelType::kQ4Affine));
  const bool q4 = type == PanelType::kQ4Affine;
  const PanelLayout params_layout = BlockParamLayout(type, layout);
  const int64_t p = r / kPanelWidth;
  const int64_t j = r - p * kPanelWidth;
  const auto* panel = static_cast<const uint8_t*>(w) + p * PanelQuantBytes(q4, layout.cols);
  for (int64_t c = 0; c < layout.cols; ++c) {
    const uint8_t byte = panel[QuantOffset(q4, c, j)];
    const int64_t b = c / kQuantBlock;
    if (q4) {
      const int q = j < 8 ? byte & 0x0F : byte >> 4;
      dst[c] = std::fma(static_cast<float>(q), params[params_layout.Offset(r, 2 * b)],
                        params[params_layout.Offset(r, 2 * b + 1)]);
    } else {
      dst[c] = static_cast<float>(static_cast<int8_t>(byte)) * params[params_layout.Offset(r, b)];
    }
  }
}

}  // namespace ringserve::kernels::cpu
