#include "kernels/cpu/cpu_matmul.h"

#include <cblas.h>
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "common/check.h"
#include "kernels/cpu/cpu_matmul_avx512.h"
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
// w + dp * panel_step + c * ldw + j. Q8_0 panels (T = int8_t) hold the quants there and
// the f32 scale of each 32-value block at s + dp * s_panel_step + (c / 32) * ldw + j; the
// product of an int8 and an f16-exact scale has at most 19 significant bits, so it is the
// exact value the f32 conversion of the block holds.
template <typename T>
struct Cursor {
  const T* w;
  int64_t ldw;
  int64_t panel_step;
  const float* s = nullptr;
  int64_t s_panel_step = 0;

  __m256 Load8(int64_t dp, int64_t c, int64_t j) const {
    const T* at = w + dp * panel_step + c * ldw + j;
    if constexpr (std::is_same_v<T, int8_t>) {
      const __m128i q = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(at));
      const float* scale = s + dp * s_panel_step + (c >> 5) * ldw + j;
      return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)), _mm256_loadu_ps(scale));
    } else {
      return ::ringserve::kernels::cpu::Load8(at);
    }
  }
  float Get(int64_t c, int64_t j) const {
    if constexpr (std::is_same_v<T, int8_t>) {
      return static_cast<float>(w[c * ldw + j]) * s[(c >> 5) * ldw + j];
    } else {
      return ToFloat(w[c * ldw + j]);
    }
  }
  // The same cursor `rows` k rows further on (a multiple of 32 for Q8_0).
  Cursor Advanced(int64_t rows) const {
    Cursor next = *this;
    next.w += rows * ldw;
    if (s != nullptr) next.s += (rows >> 5) * ldw;
    return next;
  }
};

// Accumulates x[0..MR) x [k0, k0 + kc) against NP adjacent full panels (16 columns each).
// w points at the panels' first k row, panel_step apart, rows ldw apart. With accumulate
// the running sums are reloaded from y (exact), otherwise they start at +0. With a
// prefetch pointer `pf`, every `pf_every` k steps one row of each of NP adjacent panels at
// pf is prefetched into L2, pf advancing a row at a time; it changes no value.
template <int MR, int NP, typename T>
void Kernel(const float* x, int64_t ldx, const Cursor<T>& w, int64_t kc, float* y, int64_t ldy,
            bool accumulate, const T* pf = nullptr, int64_t pf_every = 1) {
  __m256 acc[MR][NP][2];
  for (int i = 0; i < MR; ++i) {
    for (int p = 0; p < NP; ++p) {
      for (int v = 0; v < 2; ++v) {
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
    for (int p = 0; p < NP; ++p) {
      wv[p][0] = w.Load8(p, c, 0);
      wv[p][1] = w.Load8(p, c, 8);
    }
    for (int i = 0; i < MR; ++i) {
      const __m256 xb = _mm256_broadcast_ss(x + i * ldx + c);
      for (int p = 0; p < NP; ++p) {
        acc[i][p][0] = _mm256_fmadd_ps(xb, wv[p][0], acc[i][p][0]);
        acc[i][p][1] = _mm256_fmadd_ps(xb, wv[p][1], acc[i][p][1]);
      }
    }
  }
  for (int i = 0; i < MR; ++i) {
    for (int p = 0; p < NP; ++p) {
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

// W of panel p from k row k0 on (a multiple of 32 for Q8_0), adjacent full panels after it.
template <typename T>
Cursor<T> PanelAt(const MatMulArgs& a, int64_t p, int64_t k0) {
  const PanelLayout& l = a.layout;
  Cursor<T> at{static_cast<const T*>(a.w) + l.base(p), l.ldw(p), l.base(1)};
  if constexpr (std::is_same_v<T, int8_t>) {
    const PanelLayout scales = Q8_0ScaleLayout(l);
    at.s = a.w_scales + scales.base(p);
    at.s_panel_step = scales.base(1);
  }
  return at.Advanced(k0);
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

// Runs MR rows over full panels [p0, p1), NP at a time while they last.
template <int MR, int NP, typename T>
void SweepPanels(const MatMulArgs& a, int64_t i0, int64_t k0, int64_t kc, int64_t p0, int64_t p1,
                 const Ahead& ahead) {
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
    Kernel<MR, NP>(x, a.ldx, PanelAt<T>(a, p, k0), kc, y + p * kPanelWidth, a.ldy, k0 > 0,
                   prefetch(p, NP), ahead.tiles);
  }
  for (; p < p1; ++p) {
    Kernel<MR, 1>(x, a.ldx, PanelAt<T>(a, p, k0), kc, y + p * kPanelWidth, a.ldy, k0 > 0,
                  prefetch(p, 1), ahead.tiles);
  }
}

// Register tiles per row count: as many accumulators as fit beside the W vectors in 16
// ymm registers, so even a single row keeps several independent FMA chains in flight.
template <typename T>
void RowTile(const MatMulArgs& a, int64_t i0, int64_t mr, int64_t k0, int64_t kc, int64_t p0,
             int64_t p1, const Ahead& ahead) {
  switch (mr) {
    case 1:
      return SweepPanels<1, 3, T>(a, i0, k0, kc, p0, p1, ahead);
    case 2:
      return SweepPanels<2, 2, T>(a, i0, k0, kc, p0, p1, ahead);
    case 3:
      return SweepPanels<3, 2, T>(a, i0, k0, kc, p0, p1, ahead);
    case 4:
      return SweepPanels<4, 1, T>(a, i0, k0, kc, p0, p1, ahead);
    case 5:
      return SweepPanels<5, 1, T>(a, i0, k0, kc, p0, p1, ahead);
    default:
      return SweepPanels<6, 1, T>(a, i0, k0, kc, p0, p1, ahead);
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
        RowTile<T>(a, i0, std::min<int64_t>(kMaxRowTile, a.n - i0), k0, kc, g0, g1, ahead);
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
  RS_CHECK(!layout.transposed && type != PanelType::kQ8_0);  // Q8_0: PackQ8_0Rows
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

void PackQ8_0Rows(const PanelLayout& layout, const uint8_t* src, int64_t first_row,
                  int64_t num_rows, int8_t* quants, float* scales) {
  RS_CHECK(!layout.transposed && layout.cols % kQ8_0BlockValues == 0);
  const PanelLayout scale_layout = Q8_0ScaleLayout(layout);
  const int64_t row_bytes = layout.cols / kQ8_0BlockValues * kQ8_0BlockBytes;
  for (int64_t r = first_row; r < first_row + num_rows; ++r) {
    const uint8_t* row = src + (r - first_row) * row_bytes;
    const int64_t ldw = layout.ldw(r / kPanelWidth);
    int8_t* q_out = quants + layout.Offset(r, 0);
    float* s_out = scales + scale_layout.Offset(r, 0);
    for (int64_t b = 0; b < layout.cols / kQ8_0BlockValues; ++b) {
      const uint8_t* block = row + b * kQ8_0BlockBytes;
      uint16_t scale_bits = 0;
      std::memcpy(&scale_bits, block, sizeof(scale_bits));
      s_out[b * ldw] = HalfToFloat(scale_bits);
      for (int64_t i = 0; i < kQ8_0BlockValues; ++i) {
        q_out[(b * kQ8_0BlockValues + i) * ldw] = static_cast<int8_t>(block[2 + i]);
      }
    }
  }
}

namespace {

template <typename T>
void UnpackTyped(const PanelLayout& layout, const Cursor<T>& w, float* dst) {
  for (int64_t c = 0; c < layout.cols; ++c) dst[c] = w.Get(c, 0);
}

// Row r's cursor: column 0 of its panel is the row itself.
template <typename T>
Cursor<T> RowAt(const PanelLayout& layout, const void* w, const float* scales, int64_t r) {
  const int64_t p = r / kPanelWidth;
  const int64_t j = r - p * kPanelWidth;
  Cursor<T> at{static_cast<const T*>(w) + layout.base(p) + j, layout.ldw(p), 0};
  if constexpr (std::is_same_v<T, int8_t>) {
    at.s = scales + Q8_0ScaleLayout(layout).base(p) + j;
  }
  return at;
}

}  // namespace

void UnpackRow(const PanelLayout& layout, PanelType type, const void* w, int64_t r, float* dst,
               const float* scales) {
  switch (type) {
    case PanelType::kF32:
      return UnpackTyped(layout, RowAt<float>(layout, w, scales, r), dst);
    case PanelType::kBF16:
      return UnpackTyped(layout, RowAt<Bf16>(layout, w, scales, r), dst);
    case PanelType::kF16:
      return UnpackTyped(layout, RowAt<F16>(layout, w, scales, r), dst);
    case PanelType::kQ8_0:
      RS_CHECK(scales != nullptr);
      return UnpackTyped(layout, RowAt<int8_t>(layout, w, scales, r), dst);
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
  // Below ~64k multiply-adds per thread a wake-up costs more than it saves (tiny models).
  const int64_t macs_per_panel = kPanelWidth * args.layout.cols * args.n;
  const int64_t min_chunk = std::max<int64_t>(1, (int64_t{1} << 16) / macs_per_panel);
  const auto run = [&](auto panels) {
    pool.ParallelFor(args.layout.num_panels(), panels, min_chunk);
  };
  switch (args.w_type) {
    case PanelType::kF32:
      if (isa == Isa::kAvx512) {
        return run([&](int64_t p0, int64_t p1) { MatMulPanelsAvx512(args, p0, p1); });
      }
      return run([&](int64_t p0, int64_t p1) { MatMulPanels<float>(args, p0, p1); });
    case PanelType::kBF16:
      RS_CHECK(!args.layout.transposed);
      return run([&](int64_t p0, int64_t p1) { MatMulPanels<Bf16>(args, p0, p1); });
    case PanelType::kF16:
      RS_CHECK(!args.layout.transposed);
      return run([&](int64_t p0, int64_t p1) { MatMulPanels<F16>(args, p0, p1); });
    case PanelType::kQ8_0:
      RS_CHECK(!args.layout.transposed && args.w_scales != nullptr &&
               args.layout.cols % kQ8_0BlockValues == 0);
      return run([&](int64_t p0, int64_t p1) { MatMulPanels<int8_t>(args, p0, p1); });
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
