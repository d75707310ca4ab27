#include "kernels/cpu/cpu_matmul_avx512.h"

#include <immintrin.h>

#include <cstdint>

#include "kernels/cpu/cpu_isa.h"
#include "kernels/cpu/cpu_matmul.h"

namespace ringserve::kernels::cpu {

RS_BEGIN_AVX512

namespace {

// Prefill blocking. A row tile of x (kRowTile x kKBlock floats, 14 KiB) stays in L1 while
// it sweeps the panels of a group; the group's W (kPanelGroup x kKBlock x 16 floats,
// 384 KiB) stays in L2 across every row tile.
constexpr int64_t kKBlock = 256;
constexpr int64_t kPanelGroup = 24;
constexpr int kRowTile = 14;

int64_t Min(int64_t a, int64_t b) { return a < b ? a : b; }

// y[0..MR) x [NP panels] (+)= x[0..MR) x [k0, k0 + kc) * W block: one zmm accumulator per
// (row, panel), so each output keeps its own in-order FMA chain over c, exactly as the AVX2
// kernel's two ymm halves do. kTail: the single panel is the last, partial one; `mask`
// covers its columns and no load or store touches the rest.
template <int MR, int NP, bool kTail>
void Kernel(const float* x, int64_t ldx, const float* w, int64_t ldw, int64_t panel_step,
            int64_t kc, float* y, int64_t ldy, bool accumulate, __mmask16 mask) {
  static_assert(!kTail || NP == 1);
  __m512 acc[MR][NP];
  for (int i = 0; i < MR; ++i) {
    for (int p = 0; p < NP; ++p) {
      float* out = y + i * ldy + p * kPanelWidth;
      if (!accumulate) {
        acc[i][p] = _mm512_setzero_ps();
      } else {
        acc[i][p] = kTail ? _mm512_maskz_loadu_ps(mask, out) : _mm512_loadu_ps(out);
      }
    }
  }
  for (int64_t c = 0; c < kc; ++c) {
    __m512 wv[NP];
    for (int p = 0; p < NP; ++p) {
      const float* src = w + p * panel_step + c * ldw;
      wv[p] = kTail ? _mm512_maskz_loadu_ps(mask, src) : _mm512_loadu_ps(src);
    }
    for (int i = 0; i < MR; ++i) {
      const __m512 xb = _mm512_set1_ps(x[i * ldx + c]);
      for (int p = 0; p < NP; ++p) acc[i][p] = _mm512_fmadd_ps(xb, wv[p], acc[i][p]);
    }
  }
  for (int i = 0; i < MR; ++i) {
    for (int p = 0; p < NP; ++p) {
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
// full panels last.
template <int MR, int NP>
void SweepPanels(const MatMulArgs& a, int64_t i0, int64_t k0, int64_t kc, int64_t p0, int64_t p1) {
  const PanelLayout& l = a.layout;
  const float* x = a.x + i0 * a.ldx + k0;
  float* y = a.y + i0 * a.ldy;
  const int64_t step = l.base(1);  // distance between adjacent full panels
  const bool accumulate = k0 > 0;
  const int64_t last_width = l.width(p1 - 1);
  const int64_t full_end = last_width < kPanelWidth ? p1 - 1 : p1;
  int64_t p = p0;
  for (; p + NP <= full_end; p += NP) {
    Kernel<MR, NP, false>(x, a.ldx, a.w + l.base(p) + k0 * l.ldw(p), l.ldw(p), step, kc,
                          y + p * kPanelWidth, a.ldy, accumulate, 0xFFFF);
  }
  for (; p < full_end; ++p) {
    Kernel<MR, 1, false>(x, a.ldx, a.w + l.base(p) + k0 * l.ldw(p), l.ldw(p), step, kc,
                         y + p * kPanelWidth, a.ldy, accumulate, 0xFFFF);
  }
  if (full_end < p1) {
    const auto mask = static_cast<__mmask16>((1U << last_width) - 1);
    Kernel<MR, 1, true>(x, a.ldx, a.w + l.base(p) + k0 * l.ldw(p), l.ldw(p), step, kc,
                        y + p * kPanelWidth, a.ldy, accumulate, mask);
  }
}

// Register tiles per row count: MR x NP accumulators plus NP W vectors in the 32 zmm
// registers; few rows get more panels so a decode row still has several chains in flight.
void RowTile(const MatMulArgs& a, int64_t i0, int64_t mr, int64_t k0, int64_t kc, int64_t p0,
             int64_t p1) {
  switch (mr) {
    case 1:
      return SweepPanels<1, 4>(a, i0, k0, kc, p0, p1);
    case 2:
      return SweepPanels<2, 4>(a, i0, k0, kc, p0, p1);
    case 3:
      return SweepPanels<3, 4>(a, i0, k0, kc, p0, p1);
    case 4:
      return SweepPanels<4, 4>(a, i0, k0, kc, p0, p1);
    case 5:
      return SweepPanels<5, 4>(a, i0, k0, kc, p0, p1);
    case 6:
      return SweepPanels<6, 3>(a, i0, k0, kc, p0, p1);
    case 7:
      return SweepPanels<7, 3>(a, i0, k0, kc, p0, p1);
    case 8:
      return SweepPanels<8, 3>(a, i0, k0, kc, p0, p1);
    case 9:
      return SweepPanels<9, 2>(a, i0, k0, kc, p0, p1);
    case 10:
      return SweepPanels<10, 2>(a, i0, k0, kc, p0, p1);
    case 11:
      return SweepPanels<11, 2>(a, i0, k0, kc, p0, p1);
    case 12:
      return SweepPanels<12, 2>(a, i0, k0, kc, p0, p1);
    case 13:
      return SweepPanels<13, 2>(a, i0, k0, kc, p0, p1);
    default:
      return SweepPanels<14, 2>(a, i0, k0, kc, p0, p1);
  }
}

}  // namespace

void MatMulPanelsAvx512(const MatMulArgs& a, int64_t p0, int64_t p1) {
  const int64_t k = a.layout.cols;
  // Decode rows reuse nothing, so stream each panel whole; prefill blocks k for the caches.
  const int64_t k_block = a.n < kRowTile ? k : kKBlock;
  for (int64_t k0 = 0; k0 < k; k0 += k_block) {
    const int64_t kc = Min(k_block, k - k0);
    for (int64_t g0 = p0; g0 < p1; g0 += kPanelGroup) {
      const int64_t g1 = Min(p1, g0 + kPanelGroup);
      for (int64_t i0 = 0; i0 < a.n; i0 += kRowTile) {
        RowTile(a, i0, Min(kRowTile, a.n - i0), k0, kc, g0, g1);
      }
    }
  }
}

RS_END_AVX512

}  // namespace ringserve::kernels::cpu
