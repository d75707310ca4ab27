#include "kernels/cpu/quant_matmul.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "common/check.h"
#include "kernels/cpu/quant_matmul_vnni.h"
#include "kernels/cpu/simd.h"
#include "kernels/dtype.h"

namespace ringserve::kernels::cpu {
namespace {

// A block of x whose largest magnitude is below this quantizes to zero: 127 / a would
// overflow, and its products are below anything f32 outputs resolve.
constexpr float kMinBlockMax = 1e-30F;

// Rows of x quantized and multiplied at a time (MatMulQuantized).
constexpr int64_t kRowSlab = 1024;

#include "kernels/cpu/quant_matmul_panels.inc"

// The sum of a vector's 8 int32 lanes.
int32_t SumLanes(__m256i v) {
  __m128i four = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  four = _mm_add_epi32(four, _mm_shuffle_epi32(four, 0x4E));
  four = _mm_add_epi32(four, _mm_shuffle_epi32(four, 0xB1));
  return _mm_cvtsi128_si32(four);
}

// One row of x, k / 32 blocks.
void QuantizeRow(const float* x, int64_t k, int8_t* quants, float* scales, float* sums,
                 float* first_sums) {
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
      first_sums[b] = 0;
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
    const __m256i first8 = _mm256_add_epi32(q[0], q[1]);
    scales[b] = block_max / 127.0F;
    sums[b] = static_cast<float>(SumLanes(_mm256_add_epi32(first8, _mm256_add_epi32(q[2], q[3]))));
    first_sums[b] = static_cast<float>(SumLanes(first8));
  }
}

// The integer dot products on AVX2: maddubs multiplies unsigned by signed bytes, so the
// affine types' quants multiply x directly, and Q8_0's |w| multiplies x carrying w's sign.
// Each accumulator covers 8 features.
struct Avx2 {
  static constexpr int kLanes = 8;
  static constexpr int kMaxRowTile = 4;
  using Acc = __m256i;
  using F = __m256;

  template <PanelType T>
  struct Block;

  static Acc ZeroAcc() { return _mm256_setzero_si256(); }
  static F Zero() { return _mm256_setzero_ps(); }
  static F Set1(float v) { return _mm256_set1_ps(v); }
  static F Load(const float* p) { return _mm256_loadu_ps(p); }
  static void Store(float* p, F v) { _mm256_storeu_ps(p, v); }
  static F Mul(F a, F b) { return _mm256_mul_ps(a, b); }
  static F Fma(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  template <PanelType>
  static constexpr int Accs() {
    return 2;
  }
  // kQ6's d: the top 16 bits of each parameter word, packed to 8 halves for cvtph.
  static F Q6Scale(const float* params, int64_t h) {
    const __m256i words = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(params + 8 * h));
    const __m256i d16 = _mm256_packus_epi32(_mm256_srli_epi32(words, 16), _mm256_setzero_si256());
    return _mm256_cvtph_ps(_mm256_castsi256_si128(_mm256_permute4x64_epi64(d16, 0x08)));
  }
};

// Group g's nibbles: features 0-7 into w[0], 8-15 into w[1], a quant's 4 bits a byte.
void LoadNibbles(const uint8_t* block, int64_t g, __m256i (&w)[2]) {
  const __m256i low_nibbles = _mm256_set1_epi8(0x0F);
  const __m256i raw = _mm256_loadu_si256(
      reinterpret_cast<const __m256i*>(block + g * GroupBytes(PanelType::kQ4Affine)));
  w[0] = _mm256_and_si256(raw, low_nibbles);
  w[1] = _mm256_and_si256(_mm256_srli_epi16(raw, 4), low_nibbles);
}

// kQ4Affine: int16 sums over the block's 8 groups (|q x| <= 15 * 127, 16 terms: no
// overflow), widened once at the end.
template <>
struct Avx2::Block<PanelType::kQ4Affine> {
  __m256i w[2];
  void Load(const uint8_t* block, int64_t g) { LoadNibbles(block, g, w); }
  void Multiply(__m256i (&acc)[2], int32_t four) const {
    const __m256i xs = _mm256_set1_epi32(four);
    for (int h = 0; h < 2; ++h) acc[h] = _mm256_add_epi16(acc[h], _mm256_maddubs_epi16(w[h], xs));
  }
  static __m256 Sums(const __m256i (&acc)[2], int h, const XSums& /*x*/) {
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(acc[h], _mm256_set1_epi16(1)));
  }
};

// kQ5Affine: the nibbles with each fifth bit added as 16 (64-bit lane L of w[h] shifted by
// 4 - 4h - L moves them to bit 4 of their bytes, cpu_matmul.h), then int32 sums (a maddubs
// pair is at most 2 x 31 x 127; 16 terms would overflow int16).
template <>
struct Avx2::Block<PanelType::kQ5Affine> {
  __m256i w[2];
  void Load(const uint8_t* block, int64_t g) {
    LoadNibbles(block, g, w);
    int64_t bits = 0;
    std::memcpy(&bits, block + kHighBitsAt + g * 8, sizeof(bits));
    const __m256i all = _mm256_set1_epi64x(bits);
    const __m256i fifth = _mm256_set1_epi8(0x10);
    w[0] = _mm256_or_si256(
        w[0], _mm256_and_si256(_mm256_sllv_epi64(all, _mm256_setr_epi64x(4, 3, 2, 1)), fifth));
    w[1] = _mm256_or_si256(
        w[1], _mm256_and_si256(_mm256_srlv_epi64(all, _mm256_setr_epi64x(0, 1, 2, 3)), fifth));
  }
  void Multiply(__m256i (&acc)[2], int32_t four) const {
    const __m256i xs = _mm256_set1_epi32(four);
    for (int h = 0; h < 2; ++h) {
      const __m256i pairs = _mm256_maddubs_epi16(w[h], xs);
      acc[h] = _mm256_add_epi32(acc[h], _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
    }
  }
  static __m256 Sums(const __m256i (&acc)[2], int h, const XSums& /*x*/) {
    return _mm256_cvtepi32_ps(acc[h]);
  }
};

// Q8_0, kIQ4 (its indices looked up as their int8 levels) and kQ6 (its quants less 32, in
// [-32, 31]): int32 sums (a pair of products, at most 2 x 128 x 127, fits maddubs' int16),
// the pairs widened by a multiply-add with `weights`: 1, or kQ6's int8 scale of the group's
// half, which so weighs its sums for free (at most 2 x 2 x 32 x 127 x 128 a group).
template <PanelType T>
struct SignedBlock {
  __m256i w[2];
  __m256i magnitude[2];
  __m256i weights[2] = {_mm256_set1_epi16(1), _mm256_set1_epi16(1)};
  void Load(const uint8_t* block, int64_t g) {
    if constexpr (T == PanelType::kIQ4) {
      const __m256i levels = _mm256_broadcastsi128_si256(
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(kIq4Levels)));
      LoadNibbles(block, g, w);
      for (__m256i& half : w) half = _mm256_shuffle_epi8(levels, half);
    } else if constexpr (T == PanelType::kQ6) {
      // The group's 16 bytes of pairs in both 128-bit lanes; lane L of the spread bytes
      // (features 4L to 4L + 3) shifted left by 4 - 2L (right by 2 for L = 3) puts every
      // pair at bits 4-5 of its quant's byte.
      LoadNibbles(block, g, w);
      const __m256i pairs = _mm256_broadcastsi128_si256(_mm_loadu_si128(
          reinterpret_cast<const __m128i*>(block + kHighBitsAt + g * HighBytes(T))));
      const __m256i top = _mm256_set1_epi8(0x30);
      const __m256i moved[2] = {_mm256_sllv_epi64(pairs, _mm256_setr_epi64x(4, 4, 2, 2)),
                                _mm256_srlv_epi64(pairs, _mm256_setr_epi64x(0, 0, 2, 2))};
      for (int h = 0; h < 2; ++h) {
        w[h] = _mm256_sub_epi8(_mm256_or_si256(w[h], _mm256_and_si256(moved[h], top)),
                               _mm256_set1_epi8(32));
      }
      if (g == kGroupsPerBlock / 2) std::copy_n(second_half, 2, weights);
    } else {
      for (int64_t h = 0; h < 2; ++h) {
        w[h] = _mm256_loadu_si256(
            reinterpret_cast<const __m256i*>(block + g * GroupBytes(T) + 32 * h));
      }
    }
    for (int h = 0; h < 2; ++h) magnitude[h] = _mm256_abs_epi8(w[h]);
  }
  void Multiply(__m256i (&acc)[2], int32_t four) const {
    const __m256i xs = _mm256_set1_epi32(four);
    for (int h = 0; h < 2; ++h) {
      const __m256i pairs = _mm256_maddubs_epi16(magnitude[h], _mm256_sign_epi8(xs, w[h]));
      acc[h] = _mm256_add_epi32(acc[h], _mm256_madd_epi16(pairs, weights[h]));
    }
  }
  static __m256 Sums(const __m256i (&acc)[2], int h, const XSums& /*x*/) {
    return _mm256_cvtepi32_ps(acc[h]);
  }
  // kQ6: each feature's int8 scales s0 and s1 (bytes 0 and 1 of its parameter word), each
  // in both int16s of the feature's lane: s0 weighs the first half's groups, s1 the second's.
  __m256i second_half[2];
  void Begin(const float* params) {
    // Byte 4k (4k + 1) of each 128-bit lane into the high byte of both int16s of lane k,
    // then sign-extended by the arithmetic shift.
    const __m256i first =
        _mm256_setr_epi8(-128, 0, -128, 0, -128, 4, -128, 4, -128, 8, -128, 8, -128, 12, -128, 12,
                         -128, 0, -128, 0, -128, 4, -128, 4, -128, 8, -128, 8, -128, 12, -128, 12);
    const __m256i second = _mm256_add_epi8(first, _mm256_set1_epi16(0x0100));
    for (int h = 0; h < 2; ++h) {
      const __m256i words =
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(params + ptrdiff_t{8} * h));
      weights[h] = _mm256_srai_epi16(_mm256_shuffle_epi8(words, first), 8);
      second_half[h] = _mm256_srai_epi16(_mm256_shuffle_epi8(words, second), 8);
    }
  }
};
template <>
struct Avx2::Block<PanelType::kQ8_0> : SignedBlock<PanelType::kQ8_0> {};
template <>
struct Avx2::Block<PanelType::kIQ4> : SignedBlock<PanelType::kIQ4> {};
template <>
struct Avx2::Block<PanelType::kQ6> : SignedBlock<PanelType::kQ6> {};

}  // namespace

void QuantizeRows(ThreadPool& pool, const float* x, int64_t ldx, int64_t n, int64_t k,
                  QuantizedRows& out) {
  RS_CHECK(k % kQuantBlock == 0);
  out.k = k;
  out.quants.resize(static_cast<size_t>(n * k));
  out.scales.resize(static_cast<size_t>(n * (k / kQuantBlock)));
  out.sums.resize(out.scales.size());
  out.first_sums.resize(out.scales.size());
  pool.ParallelFor(
      n,
      [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
          QuantizeRow(x + r * ldx, k, out.quants.data() + r * k,
                      out.scales.data() + r * (k / kQuantBlock),
                      out.sums.data() + r * (k / kQuantBlock),
                      out.first_sums.data() + r * (k / kQuantBlock));
        }
      },
      std::max<int64_t>(1, (int64_t{1} << 15) / std::max<int64_t>(k, 1)));
}

void MatMulQuantized(ThreadPool& pool, const MatMulArgs& args, Isa isa) {
  const PanelLayout& l = args.layout;
  RS_CHECK(!l.transposed && args.w_params != nullptr && l.cols % kQuantBlock == 0 &&
           IsQuantized(args.w_type));
  RS_CHECK(IsaSupported(isa));
  // Reused across calls on this thread: no allocation once it has seen a full slab. (The
  // pool's threads read it through `x`: a lambda naming the thread_local itself would reach
  // each thread's own.)
  thread_local QuantizedRows calling_thread_rows;
  QuantizedRows& x = calling_thread_rows;
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
          if (HasAvx512Vnni(isa)) {
            MatMulQuantizedPanelsVnni(slab, x, p0, p1);
          } else {
            MatMulQuantizedPanels<Avx2>(slab, x, p0, p1);
          }
        },
        MinPanelsPerChunk(slab));
  }
}

void PackBlockRows(const PanelLayout& layout, PanelType type, const uint8_t* src, int64_t first_row,
                   int64_t num_rows, void* quants, float* params) {
  RS_CHECK(!layout.transposed && layout.cols % kQuantBlock == 0 && IsQuantized(type));
  const DType dtype = InfoOf(type).dtype;
  const int64_t blocks = layout.cols / kQuantBlock;
  const auto block_bytes = static_cast<int64_t>(DTypeBytes(dtype, kQuantBlock));
  const PanelLayout params_layout = BlockParamLayout(type, layout);
  const int64_t p = first_row / kPanelWidth;
  // One whole panel a call: its bytes are shared by its rows (a 4-bit byte holds two), and a
  // narrow last panel's padding features must be zero.
  RS_CHECK(first_row == p * kPanelWidth && num_rows == layout.width(p));
  uint8_t* panel = static_cast<uint8_t*>(quants) + p * PanelQuantBytes(type, layout.cols);
  std::memset(panel, 0, static_cast<size_t>(PanelQuantBytes(type, layout.cols)));
  std::fill_n(params + params_layout.base(p), kPanelWidth * params_layout.cols, 0.0F);
  for (int64_t r = first_row; r < first_row + num_rows; ++r) {
    const uint8_t* row = src + (r - first_row) * blocks * block_bytes;
    const int64_t j = r - first_row;
    for (int64_t b = 0; b < blocks; ++b) {
      const uint8_t* block = row + b * block_bytes;
      if (type == PanelType::kQ8_0) {
        uint16_t scale_bits = 0;
        std::memcpy(&scale_bits, block, sizeof(scale_bits));
        params[params_layout.Offset(r, b)] = HalfToFloat(scale_bits);
        for (int64_t i = 0; i < kQuantBlock; ++i) {
          panel[QuantOffset(type, b * kQuantBlock + i, j)] = block[2 + i];
        }
        continue;
      }
      const uint8_t* nibbles_at = block + 4;  // kIQ4's and kQ6's: after their header
      if (type == PanelType::kIQ4 || type == PanelType::kQ6) {
        std::memcpy(&params[params_layout.Offset(r, b)], block, 4);
      } else {
        std::memcpy(&params[params_layout.Offset(r, 2 * b)], block, 4);
        std::memcpy(&params[params_layout.Offset(r, 2 * b + 1)], block + 4, 4);
      }
      // A group at a time: its 4 k rows of feature j take 4 consecutive nibbles (and high
      // bits), so the offsets are the group's, without a branch on the quants' random bits.
      const int nibble_shift = j < 8 ? 0 : 4;
      uint8_t* wb = panel + b * PanelBlockBytes(type);
      for (int64_t g = 0; g < kGroupsPerBlock; ++g) {
        uint8_t* nibbles = wb + QuantOffset(type, g * kGroupRows, j);
        // (Only kQ5Affine's and kQ6's panels have high bits.)
        const HighBit high =
            type == PanelType::kQ6 ? HighPairOf(g * kGroupRows, j) : HighBitOf(g * kGroupRows, j);
        for (int i = 0; i < kGroupRows; ++i) {
          const int v = static_cast<int>(g * kGroupRows + i);
          int q = 0;
          if (type == PanelType::kIQ4) {
            q = Q4AffineQuant(nibbles_at, v);
          } else if (type == PanelType::kQ6) {
            q = Q6Quant(block, v);
          } else {
            q = AffineQuant(dtype, block, v);
          }
          nibbles[i] |= static_cast<uint8_t>((q & 0x0F) << nibble_shift);
          if (type == PanelType::kQ5Affine || type == PanelType::kQ6) {
            wb[high.byte + i] |= static_cast<uint8_t>((q >> 4) << high.bit);
          }
        }
      }
    }
  }
}

void UnpackQuantizedRow(const PanelLayout& layout, PanelType type, const void* w, int64_t r,
                        float* dst, const float* params) {
  RS_CHECK(params != nullptr && IsQuantized(type));
  const PanelLayout params_layout = BlockParamLayout(type, layout);
  const int64_t p = r / kPanelWidth;
  const int64_t j = r - p * kPanelWidth;
  const auto* panel = static_cast<const uint8_t*>(w) + p * PanelQuantBytes(type, layout.cols);
  for (int64_t c = 0; c < layout.cols; ++c) {
    const uint8_t byte = panel[QuantOffset(type, c, j)];
    const int64_t b = c / kQuantBlock;
    if (type == PanelType::kQ8_0) {
      dst[c] = static_cast<float>(static_cast<int8_t>(byte)) * params[params_layout.Offset(r, b)];
      continue;
    }
    int q = j < 8 ? byte & 0x0F : byte >> 4;
    if (type == PanelType::kIQ4) {
      dst[c] = static_cast<float>(kIq4Levels[q]) * params[params_layout.Offset(r, b)];
      continue;
    }
    if (type == PanelType::kQ6) {
      const HighBit high = HighPairOf(c, j);
      q |= (panel[high.byte] >> high.bit & 3) << 4;
      // The block's header, as the parameter word holds it, gives the scale.
      uint8_t header[4];
      std::memcpy(header, &params[params_layout.Offset(r, b)], sizeof(header));
      dst[c] = Q6Scale(header, static_cast<int>(c % kQuantBlock)) * static_cast<float>(q - 32);
      continue;
    }
    if (type == PanelType::kQ5Affine) {
      const HighBit high = HighBitOf(c, j);
      q |= (panel[high.byte] >> high.bit & 1) << 4;
    }
    dst[c] = std::fma(static_cast<float>(q), params[params_layout.Offset(r, 2 * b)],
                      params[params_layout.Offset(r, 2 * b + 1)]);
  }
}

}  // namespace ringserve::kernels::cpu
