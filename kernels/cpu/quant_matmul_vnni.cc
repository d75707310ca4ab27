// The quantized products on AVX-512 VNNI: one vpdpbusd adds four byte products per 32-bit
// lane, so a zmm accumulator covers a panel's 16 features and each group of 4 k rows costs
// one instruction per row of x, where AVX2 spends two to four per 8 features.
#include "kernels/cpu/quant_matmul_vnni.h"

#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "kernels/cpu/cpu_isa.h"
#include "kernels/cpu/cpu_matmul.h"
#include "kernels/cpu/quant_matmul.h"

namespace ringserve::kernels::cpu {

RS_BEGIN_AVX512_VNNI
// GCC 12 reports the pass-through operand of its own AVX-512 intrinsics (cvtepi32_ps,
// set1) as maybe-uninitialized (a known false positive).
#if !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace {

#include "kernels/cpu/quant_matmul_panels.inc"

struct Vnni {
  static constexpr int kLanes = 16;
  // 8 accumulators of the 32 zmm registers; more rows a weight load would leave the decode
  // path (which streams panels whole up to this many rows) for the k-blocked one sooner.
  static constexpr int kMaxRowTile = 8;
  using Acc = __m512i;
  using F = __m512;

  template <PanelType T>
  struct Block;

  static Acc ZeroAcc() { return _mm512_setzero_si512(); }
  static F Zero() { return _mm512_setzero_ps(); }
  static F Set1(float v) { return _mm512_set1_ps(v); }
  static F Load(const float* p) { return _mm512_loadu_ps(p); }
  static void Store(float* p, F v) { _mm512_storeu_ps(p, v); }
  static F Mul(F a, F b) { return _mm512_mul_ps(a, b); }
  static F Fma(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  // kQ6 sums its halves apart, to weigh each by its int8 scale.
  template <PanelType T>
  static constexpr int Accs() {
    return T == PanelType::kQ6 ? 2 : 1;
  }
  // kQ6's d: the top 16 bits of each parameter word.
  static F Q6Scale(const float* params, int64_t /*h*/) {
    return _mm512_cvtph_ps(
        _mm512_cvtepi32_epi16(_mm512_srli_epi32(_mm512_loadu_si512(params), 16)));
  }
};

// Group g's nibbles: the group's 32 bytes hold features 0-7 in their low nibbles and 8-15 in
// their high ones: side by side in one zmm, lane j is feature j.
__m512i LoadNibbles(const uint8_t* block, int64_t g) {
  const __m256i raw = _mm256_loadu_si256(
      reinterpret_cast<const __m256i*>(block + g * GroupBytes(PanelType::kQ4Affine)));
  const __m512i both =
      _mm512_inserti64x4(_mm512_castsi256_si512(raw), _mm256_srli_epi16(raw, 4), 1);
  return _mm512_and_si512(both, _mm512_set1_epi8(0x0F));
}

// Every type's quants are vpdpbusd's unsigned operand and x's its signed one, broadcast
// from memory: one instruction a row a group, nothing to compute on x's side.
struct UnsignedBlock {
  // (A constructor, not member initializers: the target attribute reaches only functions
  // written out.)
  UnsignedBlock() : w(_mm512_setzero_si512()) {}
  __m512i w;
  void Multiply(__m512i (&acc)[1], int32_t four) const {
    acc[0] = _mm512_dpbusd_epi32(acc[0], w, _mm512_set1_epi32(four));
  }
};

// The affine types: their unsigned quants as they are. kQ5Affine's fifth bits, 64-bit lane L
// rotated left by 4 - L, land on bit 4 of their bytes (cpu_matmul.h).
template <PanelType T>
struct AffineBlock : UnsignedBlock {
  void Load(const uint8_t* block, int64_t g) {
    w = LoadNibbles(block, g);
    if constexpr (T == PanelType::kQ5Affine) {
      int64_t bits = 0;
      std::memcpy(&bits, block + kHighBitsAt + g * 8, sizeof(bits));
      const __m512i moved =
          _mm512_rolv_epi64(_mm512_set1_epi64(bits), _mm512_setr_epi64(4, 3, 2, 1, 0, 63, 62, 61));
      w = _mm512_or_si512(w, _mm512_and_si512(moved, _mm512_set1_epi8(0x10)));
    }
  }
  static __m512 Sums(const __m512i (&acc)[1], int /*h*/, const XSums& /*x*/) {
    return _mm512_cvtepi32_ps(acc[0]);
  }
};
template <>
struct Vnni::Block<PanelType::kQ4Affine> : AffineBlock<PanelType::kQ4Affine> {};
template <>
struct Vnni::Block<PanelType::kQ5Affine> : AffineBlock<PanelType::kQ5Affine> {};

// Q8_0 and kIQ4 (its indices looked up as their int8 levels) have signed quants: lifted by
// 128 (1-255), unsigned, each row's sum gains 128 * the sum of its x quants, which comes off
// at the end: sum((w + 128) x) - 128 sum(x) is sum(w x) exactly (at most 32 * 255 * 127).
struct LiftedBlock : UnsignedBlock {
  static __m512 Sums(const __m512i (&acc)[1], int /*h*/, const XSums& x) {
    return _mm512_cvtepi32_ps(
        _mm512_sub_epi32(acc[0], _mm512_set1_epi32(128 * static_cast<int32_t>(x.all))));
  }
};

template <>
struct Vnni::Block<PanelType::kQ8_0> : LiftedBlock {
  void Load(const uint8_t* block, int64_t g) {  // w + 128: each quant's top bit flipped
    w = _mm512_xor_si512(_mm512_loadu_si512(block + g * GroupBytes(PanelType::kQ8_0)),
                         _mm512_set1_epi8(static_cast<char>(0x80)));
  }
};

template <>
struct Vnni::Block<PanelType::kIQ4> : LiftedBlock {
  void Load(const uint8_t* block, int64_t g) {
    const __m512i lifted = _mm512_add_epi8(
        _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kIq4Levels))),
        _mm512_set1_epi8(static_cast<char>(0x80)));
    w = _mm512_shuffle_epi8(lifted, LoadNibbles(block, g));
  }
};

// kQ6: its unsigned 6-bit quants q, each half's sums apart (acc[0], acc[1]), weighed by the
// half's int8 scale at the end less 32 times the half's x sum:
// s0 (sum_0 q x - 32 X0) + s1 (sum_1 q x - 32 X1) is sum s (q - 32) x, at most
// 2 x 16 x 32 x 127 x 128 (below 2^24, exact as f32; the int32 steps wrap to it exactly).
template <>
struct Vnni::Block<PanelType::kQ6> {
  Block() : w(_mm512_setzero_si512()), scales{_mm512_setzero_si512(), _mm512_setzero_si512()} {}
  __m512i w;
  __m512i scales[2];
  int half = 0;  // which half of the block the loaded group is in
  void Begin(const float* params) {
    const __m512i words = _mm512_loadu_si512(params);
    scales[0] = _mm512_srai_epi32(_mm512_slli_epi32(words, 24), 24);
    scales[1] = _mm512_srai_epi32(_mm512_slli_epi32(words, 16), 24);
  }
  void Load(const uint8_t* block, int64_t g) {
    constexpr PanelType kT = PanelType::kQ6;
    // The group's 16 bytes of pairs in every 128-bit lane; lane L (features 4L to 4L + 3)
    // rotated left by 4 - 2L puts every pair at bits 4-5 of its quant's byte.
    const __m512i pairs = _mm512_broadcast_i32x4(
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(block + kHighBitsAt + g * HighBytes(kT))));
    const __m512i moved = _mm512_rolv_epi64(pairs, _mm512_setr_epi64(4, 4, 2, 2, 0, 0, 62, 62));
    // The nibbles (features 0-7 low, 8-15 high in both 256-bit halves, the upper half
    // shifted down by 4), then (nibbles & 0x0F) | (moved & 0x30) in one ternary op: 0xD8
    // takes the nibbles (B) where the mask (C) is set, else the pairs (A).
    const __m512i nibbles = _mm512_srlv_epi64(
        _mm512_broadcast_i64x4(
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block + g * GroupBytes(kT)))),
        _mm512_setr_epi64(0, 0, 0, 0, 4, 4, 4, 4));
    w = _mm512_ternarylogic_epi32(_mm512_and_si512(moved, _mm512_set1_epi8(0x30)), nibbles,
                                  _mm512_set1_epi8(0x0F), 0xD8);
    half = g < kGroupsPerBlock / 2 ? 0 : 1;
  }
  // (Branches, not indices: an indexed array would live in memory, not registers. The group
  // loop is unrolled, so `half` is known here.)
  void Multiply(__m512i (&acc)[2], int32_t four) const {
    if (half == 0) {
      acc[0] = _mm512_dpbusd_epi32(acc[0], w, _mm512_set1_epi32(four));
    } else {
      acc[1] = _mm512_dpbusd_epi32(acc[1], w, _mm512_set1_epi32(four));
    }
  }
  __m512 Sums(const __m512i (&acc)[2], int /*h*/, const XSums& x) const {
    const auto first = static_cast<int32_t>(x.first);
    const auto second = static_cast<int32_t>(x.all) - first;
    const __m512i weighed = _mm512_add_epi32(
        _mm512_mullo_epi32(_mm512_sub_epi32(acc[0], _mm512_set1_epi32(32 * first)), scales[0]),
        _mm512_mullo_epi32(_mm512_sub_epi32(acc[1], _mm512_set1_epi32(32 * second)), scales[1]));
    return _mm512_cvtepi32_ps(weighed);
  }
};

}  // namespace

void MatMulQuantizedPanelsVnni(const MatMulArgs& args, const QuantizedRows& x, int64_t p0,
                               int64_t p1) {
  MatMulQuantizedPanels<Vnni>(args, x, p0, p1);
}

#if !defined(__clang__)
#pragma GCC diagnostic pop
#endif
RS_END_AVX512

}  // namespace ringserve::kernels::cpu
