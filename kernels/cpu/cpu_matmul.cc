#include "kernels/cpu/cpu_matmul.h"

#include <cblas.h>
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "common/check.h"
#include "kernels/cpu/cpu_matmul_avx512.h"
#include "kernels/cpu/quant_matmul.h"
#include "kernels/cpu/simd.h"
#include "kernels/dtype.h"

namespace ringserve::kernels::cpu {
namespace {

// k block for prefill: a 6 x 256 tile of x (6 KiB) stays in L1 while it sweeps the panels
// of a group; 24 panels x 256 x 16 floats (384 KiB) of W stay in L2 across the row tiles.
constexpr int64_t kKBlock = 256;
constexpr int64_t kPanelGroup = 24;
constexpr int kMaxRowTile = 6;
// With more than one row tile (batched decode, prefill), the row tiles of a group prefetch
// the next group's block of W into L2 as they go, a 1/T slice each: otherwise memory idles
// while the later tiles read the group from L2, and the first tile of the next group waits
// on it. Groups are then halved so that both fit in L2 (2 x 192 KiB of f32).
constexpr int64_t kPanelGroupAhead = 12;

// Where a kernel reads W: element (c, j) of the panel `dp` after the first at
// w + dp * panel_step + c * ldw + j.
template <typename T>
struct Cursor {
  const T* w = nullptr;
  int64_t ldw = 0;  // the panel's width
  int64_t panel_step = 0;

  // Features 0-7 and 8-15 of k row c of panel dp (a full panel).
  void Load16(int64_t dp, int64_t c, __m256 (&out)[2]) const {
    const T* at = w + dp * panel_step + c * ldw;
    out[0] = Load8(at);
    out[1] = Load8(at + 8);
  }
  float Get(int64_t c, int64_t j) const { return ToFloat(w[c * ldw + j]); }
  // The same cursor `rows` k rows further on.
  Cursor Advanced(int64_t rows) const {
    Cursor next = *this;
    next.w += rows * ldw;
    return next;
  }
};

// Panel p of a weight, from k row 0.
template <typename T>
Cursor<T> PanelCursor(const PanelLayout& l, const void* w, int64_t p) {
  Cursor<T> at;
  at.ldw = l.ldw(p);
  at.panel_step = l.base(1);
  at.w = static_cast<const T*>(w) + l.base(p);
  return at;
}

// Accumulates x[0..MR) x [k0, k0 + kc) against NP adjacent full panels (16 columns each).
// w points at the panels' first k row, panel_step apart, rows ldw apart. With accumulate
// the running sums are reloaded from y (exact), otherwise they start at +0. With a
// prefetch pointer `pf`, every `pf_every` k steps one row of each of NP adjacent panels at
// pf is prefetched into L2, pf advancing a row at a time; it changes no value.
template <int MR, int NP, typename T>
void Kernel(const float* x, int64_t ldx, const Cursor<T>& w, int64_t kc, float* y, int64_t ldy,
            bool accumulate, const T* pf = nullptr, int64_t pf_every = 1) {
  __m256 acc[MR][NP][2];
  for (int64_t i = 0; i < MR; ++i) {
    for (int64_t p = 0; p < NP; ++p) {
      for (int64_t v = 0; v < 2; ++v) {
        acc[i][p][v] =
            accumulate ? _mm256_loadu_ps(y + i * ldy + p * 16 + v * 8) : _mm256_setzero_ps();
      }
    }
  }
  int64_t phase = 0;
  for (int64_t c = 0; c < kc; ++c) {
    if (pf != nullptr) {
      if (phase == 0) {
        for (int p = 0; p < NP; ++p) {
          _mm_prefetch(reinterpret_cast<const char*>(pf + p * w.panel_step), _MM_HINT_T1);
        }
        pf += w.ldw;
      }
      if (++phase == pf_every) phase = 0;
    }
    __m256 wv[NP][2];
    for (int p = 0; p < NP; ++p) w.Load16(p, c, wv[p]);
    for (int i = 0; i < MR; ++i) {
      const __m256 xb = _mm256_broadcast_ss(x + i * ldx + c);
      for (int p = 0; p < NP; ++p) {
        acc[i][p][0] = _mm256_fmadd_ps(xb, wv[p][0], acc[i][p][0]);
        acc[i][p][1] = _mm256_fmadd_ps(xb, wv[p][1], acc[i][p][1]);
      }
    }
  }
  for (int64_t i = 0; i < MR; ++i) {
    for (int64_t p = 0; p < NP; ++p) {
      _mm256_storeu_ps(y + i * ldy + p * 16, acc[i][p][0]);
      _mm256_storeu_ps(y + i * ldy + p * 16 + 8, acc[i][p][1]);
    }
  }
}

// Same arithmetic, one scalar FMA chain per element: the last panel when m % 16 != 0.
template <typename T>
void ScalarKernel(int64_t mr, int64_t width, const float* x, int64_t ldx, const Cursor<T>& w,
                  int64_t kc, float* y, int64_t ldy, bool accumulate) {
  for (int64_t i = 0; i < mr; ++i) {
    for (int64_t j = 0; j < width; ++j) {
      float acc = accumulate ? y[i * ldy + j] : 0.0F;
      for (int64_t c = 0; c < kc; ++c) acc = std::fma(x[i * ldx + c], w.Get(c, j), acc);
      y[i * ldy + j] = acc;
    }
  }
}

// W of panel p from k row k0 on, adjacent full panels after it.
template <typename T>
Cursor<T> PanelAt(const MatMulArgs& a, int64_t p, int64_t k0) {
  return PanelCursor<T>(a.layout, a.w, p).Advanced(k0);
}

// What a row tile prefetches while it sweeps a group (Kernel's pf): panel p's rows of the
// next block at panel p + shift, k row k0 on, its slice `tile` of `tiles`; shift 0: none.
struct Ahead {
  int64_t shift = 0;
  int64_t k0 = 0;
  int64_t kc = 0;
  int64_t end = 0;  // panels at or past it are not prefetched
  int64_t tile = 0;
  int64_t tiles = 1;
};

// Runs MR rows over full panels [p0, p1), NP at a time while they last; adds to y's sums
// when `accumulate` (a later k block).
template <int MR, int NP, typename T>
void SweepPanels(const MatMulArgs& a, int64_t i0, int64_t k0, int64_t kc, int64_t p0, int64_t p1,
                 const Ahead& ahead, bool accumulate) {
  const float* x = a.x + i0 * a.ldx + k0;
  float* y = a.y + i0 * a.ldy;
  const int64_t slice = (ahead.kc + ahead.tiles - 1) / ahead.tiles;
  const auto prefetch = [&](int64_t p, int np) -> const T* {
    const int64_t q = p + ahead.shift;
    if (ahead.shift == 0 || q + np > ahead.end) return nullptr;
    const Cursor<T> next = PanelAt<T>(a, q, ahead.k0);
    return next.w + std::min(ahead.tile * slice, ahead.kc - 1) * next.ldw;
  };
  int64_t p = p0;
  for (; p + NP <= p1; p += NP) {
    Kernel<MR, NP>(x, a.ldx, PanelAt<T>(a, p, k0), kc, y + p * kPanelWidth, a.ldy, accumulate,
                   prefetch(p, NP), ahead.tiles);
  }
  for (; p < p1; ++p) {
    Kernel<MR, 1>(x, a.ldx, PanelAt<T>(a, p, k0), kc, y + p * kPanelWidth, a.ldy, accumulate,
                  prefetch(p, 1), ahead.tiles);
  }
}

// Register tiles per row count: as many accumulators as fit beside the W vectors in 16
// ymm registers, so even a single row keeps several independent FMA chains in flight.
template <typename T>
void RowTile(const MatMulArgs& a, int64_t i0, int64_t mr, int64_t k0, int64_t kc, int64_t p0,
             int64_t p1, const Ahead& ahead, bool accumulate) {
  switch (mr) {
    case 1:
      return SweepPanels<1, 3, T>(a, i0, k0, kc, p0, p1, ahead, accumulate);
    case 2:
      return SweepPanels<2, 2, T>(a, i0, k0, kc, p0, p1, ahead, accumulate);
    case 3:
      return SweepPanels<3, 2, T>(a, i0, k0, kc, p0, p1, ahead, accumulate);
    case 4:
      return SweepPanels<4, 1, T>(a, i0, k0, kc, p0, p1, ahead, accumulate);
    case 5:
      return SweepPanels<5, 1, T>(a, i0, k0, kc, p0, p1, ahead, accumulate);
    default:
      return SweepPanels<6, 1, T>(a, i0, k0, kc, p0, p1, ahead, accumulate);
  }
}

// One thread's share: output panels [p0, p1), every row of x.
template <typename T>
void MatMulPanels(const MatMulArgs& a, int64_t p0, int64_t p1) {
  const PanelLayout& l = a.layout;
  const int64_t k = l.cols;
  // Decode rows reuse nothing, so stream each panel whole; prefill blocks k for the caches.
  const int64_t k_block = a.n < kMaxRowTile ? k : kKBlock;
  const bool has_tail = p1 == l.num_panels() && l.width(p1 - 1) < kPanelWidth;
  const int64_t full_end = has_tail ? p1 - 1 : p1;
  const int64_t tiles = (a.n + kMaxRowTile - 1) / kMaxRowTile;
  const bool prefetch = tiles > 1 && !l.transposed;
  const int64_t group = prefetch ? kPanelGroupAhead : kPanelGroup;
  for (int64_t k0 = 0; k0 < k; k0 += k_block) {
    const int64_t kc = std::min(k_block, k - k0);
    for (int64_t g0 = p0; g0 < full_end; g0 += group) {
      const int64_t g1 = std::min(full_end, g0 + group);
      // Next: the following group of this k block, else this thread's first group of the
      // next k block.
      Ahead ahead{.end = full_end, .tiles = tiles};
      if (prefetch && g1 < full_end) {
        ahead.shift = g1 - g0;
        ahead.k0 = k0;
        ahead.kc = kc;
      } else if (prefetch && k0 + k_block < k && g0 > p0) {
        ahead.shift = p0 - g0;
        ahead.k0 = k0 + k_block;
        ahead.kc = std::min(k_block, k - ahead.k0);
      }
      for (int64_t i0 = 0, t = 0; i0 < a.n; i0 += kMaxRowTile, ++t) {
        ahead.tile = t;
        RowTile<T>(a, i0, std::min<int64_t>(kMaxRowTile, a.n - i0), k0, kc, g0, g1, ahead, k0 > 0);
      }
    }
    if (has_tail) {
      const int64_t p = p1 - 1;
      ScalarKernel(a.n, l.width(p), a.x + k0, a.ldx, PanelAt<T>(a, p, k0), kc,
                   a.y + p * kPanelWidth, a.ldy, k0 > 0);
    }
  }
}

}  // namespace

void PackRows(const PanelLayout& layout, const float* src, int64_t first_row, int64_t num_rows,
              float* dst) {
  for (int64_t r = first_row; r < first_row + num_rows; ++r) {
    const float* row = src + (r - first_row) * layout.cols;
    float* out = dst + layout.Offset(r, 0);
    const int64_t ldw = layout.ldw(r / kPanelWidth);
    for (int64_t c = 0; c < layout.cols; ++c) out[c * ldw] = row[c];
  }
}

void PackRows(const PanelLayout& layout, PanelType type, const float* src, int64_t first_row,
              int64_t num_rows, void* dst) {
  if (type == PanelType::kF32) {
    return PackRows(layout, src, first_row, num_rows, static_cast<float*>(dst));
  }
  RS_CHECK(!layout.transposed && !IsQuantized(type));  // those: PackBlockRows
  auto* out = static_cast<uint16_t*>(dst);
  for (int64_t r = first_row; r < first_row + num_rows; ++r) {
    const float* row = src + (r - first_row) * layout.cols;
    const int64_t offset = layout.Offset(r, 0);
    const int64_t ldw = layout.ldw(r / kPanelWidth);
    for (int64_t c = 0; c < layout.cols; ++c) {
      out[offset + c * ldw] =
          type == PanelType::kBF16 ? FloatToBFloat16(row[c]) : FloatToHalf(row[c]);
    }
  }
}

namespace {

template <typename T>
void UnpackTyped(const PanelLayout& layout, const Cursor<T>& panel, int64_t j, float* dst) {
  for (int64_t c = 0; c < layout.cols; ++c) dst[c] = panel.Get(c, j);
}

}  // namespace

void UnpackRow(const PanelLayout& layout, PanelType type, const void* w, int64_t r, float* dst,
               const float* params) {
  const int64_t p = r / kPanelWidth;
  const int64_t j = r - p * kPanelWidth;
  switch (type) {
    case PanelType::kF32:
      return UnpackTyped(layout, PanelCursor<float>(layout, w, p), j, dst);
    case PanelType::kBF16:
      return UnpackTyped(layout, PanelCursor<Bf16>(layout, w, p), j, dst);
    case PanelType::kF16:
      return UnpackTyped(layout, PanelCursor<F16>(layout, w, p), j, dst);
    case PanelType::kQ8_0:
    case PanelType::kQ4Affine:
    case PanelType::kQ5Affine:
    case PanelType::kIQ4:
    case PanelType::kQ6:
      return UnpackQuantizedRow(layout, type, w, r, dst, params);
  }
}

void MatMul(ThreadPool& pool, const MatMulArgs& args) { MatMul(pool, args, BestIsa()); }

void MatMul(ThreadPool& pool, const MatMulArgs& args, Isa isa) {
  RS_CHECK(IsaSupported(isa));
  if (args.n <= 0 || args.layout.rows <= 0) return;
  if (args.layout.cols == 0) {
    for (int64_t i = 0; i < args.n; ++i) std::fill_n(args.y + i * args.ldy, args.layout.rows, 0.0F);
    return;
  }
  const auto run = [&](auto panels) {
    pool.ParallelFor(args.layout.num_panels(), panels, MinPanelsPerChunk(args));
  };
  switch (args.w_type) {
    case PanelType::kF32:
      if (HasAvx512(isa)) {
        return run([&](int64_t p0, int64_t p1) { MatMulPanelsAvx512(args, p0, p1); });
      }
      return run([&](int64_t p0, int64_t p1) { MatMulPanels<float>(args, p0, p1); });
    case PanelType::kBF16:
    case PanelType::kF16:
      RS_CHECK(!args.layout.transposed);
      if (HasAvx512(isa)) {
        return run([&](int64_t p0, int64_t p1) { MatMulPanelsAvx512(args, p0, p1); });
      }
      if (args.w_type == PanelType::kBF16) {
        return run([&](int64_t p0, int64_t p1) { MatMulPanels<Bf16>(args, p0, p1); });
      }
      return run([&](int64_t p0, int64_t p1) { MatMulPanels<F16>(args, p0, p1); });
    case PanelType::kQ8_0:
    case PanelType::kQ4Affine:
    case PanelType::kQ5Affine:
    case PanelType::kIQ4:
    case PanelType::kQ6:
      return MatMulQuantized(pool, args, isa);
  }
}

void MatMulBlas(const MatMulArgs& a) {
  RS_CHECK(a.layout.transposed && a.w_type == PanelType::kF32);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(a.n),
              static_cast<int>(a.layout.rows), static_cast<int>(a.layout.cols), 1.0F, a.x,
              static_cast<int>(a.ldx), static_cast<const float*>(a.w),
              static_cast<int>(a.layout.rows), 0.0F, a.y, static_cast<int>(a.ldy));
}

}  // namespace ringserve::kernels::cpu
