#include "kernels/cpu/cpu_matmul_avx512.h"

#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "common/check.h"
#include "kernels/cpu/cpu_isa.h"
#include "kernels/cpu/cpu_matmul.h"
#include "kernels/cpu/simd_avx512.h"

namespace ringserve::kernels::cpu {

RS_BEGIN_AVX512
// GCC 12 reports the pass-through operand of its own cvtph_ps and cvtepu16_epi32
// intrinsics as maybe-uninitialized (a known false positive).
#if !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace {

// k-blocked path (products whose x is too big for the caches). Each row tile of x (kRowTile x
// kKBlock floats, 28 KiB) is copied into a stack buffer and sweeps the panels of a group from
// there; the group's W (kPanelGroup x kKBlock x 16 floats, 768 KiB) stays in L2 across every row
// tile. Measured on Sapphire Rapids, k blocks of 512 beat 256 by ~2% (fewer passes over y), and the
// copy ~3%: one base register with constant row offsets instead of 14 row pointers, and no
// cache-set conflicts when ldx is a multiple of 4 KiB.
constexpr int64_t kKBlock = 512;
constexpr int64_t kPanelGroup = 24;
constexpr int kRowTile = 14;
// W rows are 64 bytes, so this path prefetches each panel's row 16 k steps ahead: the panels
// come from L2 and every kernel call starts new streams the hardware has to discover
// (~4% on the 110M shapes).
constexpr int64_t kPrefetchRows = 16;
// Every other product streams W once, a group of 3-4 panels (whole k) at a time, through
// every row tile of x while the next group is prefetched into L2 (StreamPanels); x is then
// read once per group and should stay in the caches. Measured on Sapphire Rapids over the
// 110M shapes, streaming beat the k-blocked path at every n from 16 to 2048 (x up to
// 16 MiB; by up to a third on the 32000-row output head, by 0-10% elsewhere); above this
// size of x, where nothing was measured, the k-blocked path bounds the traffic.
constexpr int64_t kMaxStreamXBytes = int64_t{32} << 20;
constexpr int kStreamRowTile = 8;
// Fewer rows than this leave the core mostly waiting on W, which the hardware prefetcher
// streams well enough alone: measured end to end (ringserve-run bench, 110M), prefetching
// ahead made P = 1 and P = 4 decode 6-8% slower, while at n = 8 (BM_DecodeStep110M) it
// doubled the rate.
constexpr int64_t kMinAheadRows = 6;

// How a kernel call treats W: kStream loads it as it comes; kAhead also prefetches its share
// of the next panel group into L2 (see StreamPanels); kBlocked reads x from the row tile's
// copy and prefetches W from L2 into L1.
enum class Mode { kStream, kAhead, kBlocked };

int64_t Min(int64_t a, int64_t b) { return a < b ? a : b; }

// y[0..MR) x [NP panels] (+)= x[0..MR) x [k0, k0 + kc) * W block: one zmm accumulator per
// (row, panel), so each output keeps its own in-order FMA chain over c, exactly as the AVX2
// kernel's two ymm halves do. kTail: the single panel is the last, partial one; `mask`
// covers its columns and no load or store touches the rest. kMode: see Mode; with kAhead,
// every `pf_every` k steps one row of each of the NP panels at `pf` is prefetched, pf
// advancing a row at a time.
template <class T, int MR, int NP, bool kTail, Mode kMode>
void Kernel(const float* x, int64_t ldx, const T* w, int64_t ldw, int64_t panel_step, int64_t kc,
            float* y, int64_t ldy, bool accumulate, __mmask16 mask, const T* pf = nullptr,
            int64_t pf_every = 1) {
  static_assert(!kTail || NP == 1);
  constexpr bool kBlocked = kMode == Mode::kBlocked;
  const int64_t x_stride = kBlocked ? kKBlock : ldx;
  __m512 acc[MR][NP] = {};  // (all set below; the braces silence a GCC 12 false positive)
  for (int64_t i = 0; i < MR; ++i) {
    for (int64_t p = 0; p < NP; ++p) {
      const float* out = y + i * ldy + p * kPanelWidth;
      acc[i][p] = !accumulate ? _mm512_setzero_ps()
                  : kTail     ? _mm512_maskz_loadu_ps(mask, out)
                              : _mm512_loadu_ps(out);
    }
  }
  int64_t phase = 0;
  for (int64_t c = 0; c < kc; ++c) {
    if (kMode == Mode::kAhead) {
      if (phase == 0) {
        for (int p = 0; p < NP; ++p) {
          _mm_prefetch(reinterpret_cast<const char*>(pf + p * panel_step), _MM_HINT_T1);
        }
        pf += ldw;
      }
      if (++phase == pf_every) phase = 0;
    }
    __m512 wv[NP];
    for (int p = 0; p < NP; ++p) {
      const T* src = w + p * panel_step + c * ldw;
      // Past the block this touches the panel's next rows or the next panel; a prefetch of
      // an address past the weight cannot fault.
      if (kBlocked) {
        _mm_prefetch(reinterpret_cast<const char*>(src + kPrefetchRows * ldw), _MM_HINT_T0);
      }
      wv[p] = kTail ? Load16(src, mask) : Load16(src);
    }
    for (int i = 0; i < MR; ++i) {
      const __m512 xb = _mm512_set1_ps(x[i * x_stride + c]);
      for (int p = 0; p < NP; ++p) acc[i][p] = _mm512_fmadd_ps(xb, wv[p], acc[i][p]);
    }
  }
  for (int64_t i = 0; i < MR; ++i) {
    for (int64_t p = 0; p < NP; ++p) {
      float* out = y + i * ldy + p * kPanelWidth;
      if (kTail) {
        _mm512_mask_storeu_ps(out, mask, acc[i][p]);
      } else {
        _mm512_storeu_ps(out, acc[i][p]);
      }
    }
  }
}

// Runs MR rows over panels [p0, p1) (the last one possibly partial), NP at a time while
// full panels last. With kAhead, [p0, p1) is one full group, the row tile is number
// `ahead_tile` of `num_tiles` and prefetches its slice of the next group's rows
// (StreamPanels).
template <class T, int MR, int NP, Mode kMode>
void SweepPanels(const MatMulArgs& a, int64_t i0, int64_t k0, int64_t kc, int64_t p0, int64_t p1,
                 int64_t ahead_tile = 0, int64_t num_tiles = 1) {
  constexpr bool kBlocked = kMode == Mode::kBlocked;
  constexpr Mode kRest = kMode == Mode::kAhead ? Mode::kStream : kMode;
  const PanelLayout& l = a.layout;
  const float* x = a.x + i0 * a.ldx + k0;
  alignas(64) float tile[kBlocked ? MR * kKBlock : 1];
  if (kBlocked) {
    for (int i = 0; i < MR; ++i) std::memcpy(tile + i * kKBlock, x + i * a.ldx, kc * sizeof(float));
    x = tile;
  }
  float* y = a.y + i0 * a.ldy;
  const auto* wf = static_cast<const T*>(a.w);
  const int64_t step = l.base(1);  // distance between adjacent full panels
  const bool accumulate = k0 > 0;
  const int64_t last_width = l.width(p1 - 1);
  const int64_t full_end = last_width < kPanelWidth ? p1 - 1 : p1;
  int64_t p = p0;
  for (; p + NP <= full_end; p += NP) {
    const T* w = wf + l.base(p) + k0 * l.ldw(p);
    const int64_t slice = (kc + num_tiles - 1) / num_tiles;  // rows each tile prefetches
    Kernel<T, MR, NP, false, kMode>(x, a.ldx, w, l.ldw(p), step, kc, y + p * kPanelWidth, a.ldy,
                                    accumulate, 0xFFFF,
                                    w + NP * step + ahead_tile * slice * l.ldw(p), num_tiles);
  }
  for (; p < full_end; ++p) {
    Kernel<T, MR, 1, false, kRest>(x, a.ldx, wf + l.base(p) + k0 * l.ldw(p), l.ldw(p), step, kc,
                                   y + p * kPanelWidth, a.ldy, accumulate, 0xFFFF);
  }
  if (full_end < p1) {
    const auto mask = static_cast<__mmask16>((1U << last_width) - 1);
    Kernel<T, MR, 1, true, kRest>(x, a.ldx, wf + l.base(p) + k0 * l.ldw(p), l.ldw(p), step, kc,
                                  y + p * kPanelWidth, a.ldy, accumulate, mask);
  }
}

// k-blocked register tiles per row count: MR x NP accumulators plus NP W vectors in the 32
// zmm registers (a short last tile gets more panels).
template <class T>
void BlockedTile(const MatMulArgs& a, int64_t i0, int64_t mr, int64_t k0, int64_t kc, int64_t p0,
                 int64_t p1) {
  constexpr Mode kP = Mode::kBlocked;
  switch (mr) {
    case 1:
      return SweepPanels<T, 1, 4, kP>(a, i0, k0, kc, p0, p1);
    case 2:
      return SweepPanels<T, 2, 4, kP>(a, i0, k0, kc, p0, p1);
    case 3:
      return SweepPanels<T, 3, 4, kP>(a, i0, k0, kc, p0, p1);
    case 4:
      return SweepPanels<T, 4, 4, kP>(a, i0, k0, kc, p0, p1);
    case 5:
      return SweepPanels<T, 5, 4, kP>(a, i0, k0, kc, p0, p1);
    case 6:
      return SweepPanels<T, 6, 3, kP>(a, i0, k0, kc, p0, p1);
    case 7:
      return SweepPanels<T, 7, 3, kP>(a, i0, k0, kc, p0, p1);
    case 8:
      return SweepPanels<T, 8, 3, kP>(a, i0, k0, kc, p0, p1);
    case 9:
      return SweepPanels<T, 9, 2, kP>(a, i0, k0, kc, p0, p1);
    case 10:
      return SweepPanels<T, 10, 2, kP>(a, i0, k0, kc, p0, p1);
    case 11:
      return SweepPanels<T, 11, 2, kP>(a, i0, k0, kc, p0, p1);
    case 12:
      return SweepPanels<T, 12, 2, kP>(a, i0, k0, kc, p0, p1);
    case 13:
      return SweepPanels<T, 13, 2, kP>(a, i0, k0, kc, p0, p1);
    default:
      return SweepPanels<T, 14, 2, kP>(a, i0, k0, kc, p0, p1);
  }
}

template <class T>
void BlockedPanels(const MatMulArgs& a, int64_t p0, int64_t p1) {
  const int64_t k = a.layout.cols;
  for (int64_t k0 = 0; k0 < k; k0 += kKBlock) {
    const int64_t kc = Min(kKBlock, k - k0);
    for (int64_t g0 = p0; g0 < p1; g0 += kPanelGroup) {
      const int64_t g1 = Min(p1, g0 + kPanelGroup);
      for (int64_t i0 = 0; i0 < a.n; i0 += kRowTile) {
        BlockedTile<T>(a, i0, Min(kRowTile, a.n - i0), k0, kc, g0, g1);
      }
    }
  }
}

// One stream row tile of mr rows (NP = 4 takes 1..5 rows, NP = 3 takes 5..8) over panels
// [p0, p1), whole k.
template <class T, int NP, Mode kMode>
void StreamTile(const MatMulArgs& a, int64_t i0, int64_t mr, int64_t p0, int64_t p1, int64_t t,
                int64_t nt) {
  constexpr int kMaxRows = NP == 4 ? 5 : 8;  // larger tiles would spill accumulators
  const int64_t k = a.layout.cols;
  switch (mr) {
    case 1:
      return SweepPanels<T, 1, NP, kMode>(a, i0, 0, k, p0, p1, t, nt);
    case 2:
      return SweepPanels<T, 2, NP, kMode>(a, i0, 0, k, p0, p1, t, nt);
    case 3:
      return SweepPanels<T, 3, NP, kMode>(a, i0, 0, k, p0, p1, t, nt);
    case 4:
      return SweepPanels<T, 4, NP, kMode>(a, i0, 0, k, p0, p1, t, nt);
    case 5:
      return SweepPanels<T, 5, NP, kMode>(a, i0, 0, k, p0, p1, t, nt);
    case 6:
      return SweepPanels<T, std::min(6, kMaxRows), NP, kMode>(a, i0, 0, k, p0, p1, t, nt);
    case 7:
      return SweepPanels<T, std::min(7, kMaxRows), NP, kMode>(a, i0, 0, k, p0, p1, t, nt);
    default:
      return SweepPanels<T, kMaxRows, NP, kMode>(a, i0, 0, k, p0, p1, t, nt);
  }
}

// Decode: groups of NP panels, each read from memory once. Within a group every row tile
// (rows split evenly into tiles of at most kStreamRowTile) runs over the whole k, and from
// kMinAheadRows rows on each of the T tiles prefetches a 1/T slice of the next group's rows
// into L2, NP lines every T k steps. Memory thus streams at an even rate under all the FMAs:
// measured on the 110M decode step at n = 16, letting the first tile alone prefetch left it waiting
// on memory while the second ran from L2 with the memory idle.
template <class T, int NP>
void StreamPanels(const MatMulArgs& a, int64_t p0, int64_t p1, int64_t num_tiles) {
  const int64_t rows = a.n / num_tiles;
  const int64_t extra = a.n % num_tiles;
  for (int64_t g0 = p0; g0 < p1; g0 += NP) {
    const int64_t g1 = Min(p1, g0 + NP);
    int64_t i0 = 0;
    for (int64_t t = 0; t < num_tiles; ++t) {
      const int64_t mr = rows + (t < extra ? 1 : 0);
      if (g1 < p1 && a.n >= kMinAheadRows) {
        StreamTile<T, NP, Mode::kAhead>(a, i0, mr, g0, g1, t, num_tiles);
      } else {
        StreamTile<T, NP, Mode::kStream>(a, i0, mr, g0, g1, t, num_tiles);
      }
      i0 += mr;
    }
  }
}

template <class T>
void MatMulPanelsOf(const MatMulArgs& a, int64_t p0, int64_t p1) {
  if (a.n * a.layout.cols * static_cast<int64_t>(sizeof(float)) > kMaxStreamXBytes) {
    return BlockedPanels<T>(a, p0, p1);
  }
  const int64_t num_tiles = (a.n + kStreamRowTile - 1) / kStreamRowTile;
  // Tiles differ by at most one row, so four panels fit (<= 5 rows) for all or for none.
  if ((a.n + num_tiles - 1) / num_tiles <= 5) return StreamPanels<T, 4>(a, p0, p1, num_tiles);
  return StreamPanels<T, 3>(a, p0, p1, num_tiles);
}

}  // namespace

void MatMulPanelsAvx512(const MatMulArgs& a, int64_t p0, int64_t p1) {
  switch (a.w_type) {
    case PanelType::kF32:
      return MatMulPanelsOf<float>(a, p0, p1);
    case PanelType::kBF16:
      return MatMulPanelsOf<Bf16>(a, p0, p1);
    case PanelType::kF16:
      return MatMulPanelsOf<F16>(a, p0, p1);
    default:
      RS_CHECK_MSG(false, "the AVX-512 kernels take f32, bf16 or f16 panels");
  }
}

#if !defined(__clang__)
#pragma GCC diagnostic pop
#endif
RS_END_AVX512

}  // namespace ringserve::kernels::cpu
