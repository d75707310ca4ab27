// The attention row path (cpu_attention.h): one token's query heads against every key of
// its sequence, what decode runs. A row has no neighbours to share keys with, so this path
// is about reading the cache fast: keys in long sequential runs, prefetched ahead.
//
// Batch invariance: scores are computed key by key in position order, the softmax runs over
// the whole row (two passes, no chunking), and V is accumulated in position order, with
// exactly the operations the tile path does per query vector.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/backend.h"
#include "kernels/cpu/cpu_attention.h"
#include "kernels/cpu/simd.h"

namespace ringserve::kernels::cpu {
namespace {

// Dot products of q with four keys at once (four independent FMA chains hide the FMA
// latency); each key's arithmetic is exactly that of Dot1. Keys of a 16-bit cache are
// widened exactly as they are loaded, so every cache type runs the same f32 operations.
template <class T>
void Dot4(const float* q, const T* const k[4], int hd, float* out) {
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                   _mm256_setzero_ps()};
  int d = 0;
  for (; d + 8 <= hd; d += 8) {
    const __m256 qv = _mm256_loadu_ps(q + d);
    for (int j = 0; j < 4; ++j) acc[j] = _mm256_fmadd_ps(qv, Load8(k[j] + d), acc[j]);
  }
  for (int j = 0; j < 4; ++j) {
    float sum = HorizontalSum(acc[j]);
    for (int t = d; t < hd; ++t) sum = std::fma(q[t], ToFloat(k[j][t]), sum);
    out[j] = sum;
  }
}

template <class T>
float Dot1(const float* q, const T* k, int hd) {
  __m256 acc = _mm256_setzero_ps();
  int d = 0;
  for (; d + 8 <= hd; d += 8) {
    acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + d), Load8(k + d), acc);
  }
  float sum = HorizontalSum(acc);
  for (; d < hd; ++d) sum = std::fma(q[d], ToFloat(k[d]), sum);
  return sum;
}

// p[j] = exp(s[j] - max s); returns sum p. Fixed order for a given length.
float SoftmaxNumerators(float* s, int64_t n) {
  __m256 vmax = _mm256_set1_ps(-INFINITY);
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(s + j));
  float max = HorizontalMax(vmax);
  for (int64_t t = j; t < n; ++t) max = std::max(max, s[t]);
  const __m256 m = _mm256_set1_ps(max);
  __m256 vsum = _mm256_setzero_ps();
  for (j = 0; j + 8 <= n; j += 8) {
    const __m256 p = Exp(_mm256_sub_ps(_mm256_loadu_ps(s + j), m));
    _mm256_storeu_ps(s + j, p);
    vsum = _mm256_add_ps(vsum, p);
  }
  float sum = HorizontalSum(vsum);
  if (j < n) {
    const int rest = static_cast<int>(n - j);
    StorePartial(s + j, rest, Exp(_mm256_sub_ps(LoadPartial(s + j, rest), m)));
    for (int64_t t = j; t < n; ++t) sum += s[t];
  }
  return sum;
}

// out[0..hd) += p[j] * v_j[0..hd) for the keys j of `values` in order, one FMA an element
// a key (what a key at a time, acc[d] = fma(p, v[d], acc[d]), gives), with up to 64 of
// out's values in registers across the keys instead of loaded and stored at every key.
template <class T>
void AxpyKeys(const float* p, const T* const* values, int count, int hd, float* out) {
  constexpr int64_t kVecs = 8;
  int64_t d0 = 0;
  for (int64_t vecs = 0; d0 + 8 <= hd; d0 += vecs * 8) {
    vecs = std::min<int64_t>(kVecs, (hd - d0) / 8);
    __m256 acc[kVecs];
    for (int64_t c = 0; c < vecs; ++c) acc[c] = _mm256_loadu_ps(out + d0 + c * 8);
    for (int j = 0; j < count; ++j) {
      const __m256 pj = _mm256_set1_ps(p[j]);
      const T* v = values[j] + d0;
      for (int64_t c = 0; c < vecs; ++c) {
        acc[c] = _mm256_fmadd_ps(pj, Load8(v + c * 8), acc[c]);
      }
    }
    for (int64_t c = 0; c < vecs; ++c) _mm256_storeu_ps(out + d0 + c * 8, acc[c]);
  }
  for (int64_t d = d0; d < hd; ++d) {
    float acc = out[d];
    for (int j = 0; j < count; ++j) acc = std::fma(p[j], ToFloat(values[j][d]), acc);
    out[d] = acc;
  }
}

// How far ahead of the dot products the K rows are prefetched: far enough to cover a
// memory latency, and across the jump to the next (randomly placed) block, where the
// hardware prefetcher has to start over.
constexpr int64_t kKeysAhead = 8;

// The P V pass takes keys a chunk at a time: every head's outputs stay in registers over the
// chunk while its V rows (a chunk times the range's row, 24 KiB at 6 heads of 64) stay in L1.
constexpr int kPvChunk = 16;

// V is prefetched into L2 during the scores pass only while a token's V for the range fits
// there beside everything else; past it (long contexts) the P V pass prefetches each chunk
// itself, which would otherwise read V twice from memory.
constexpr int64_t kL2PrefetchBytes = int64_t{256} << 10;

// Prefetches [p, p + bytes): into L1 for K, which the dot products read next, or into L2 for
// V, which the second pass reads after all scores (one token's V is a few hundred KiB).
void PrefetchRange(const void* p, int64_t bytes, bool to_l2) {
  const auto* c = static_cast<const char*>(p);
  for (int64_t off = 0; off < bytes; off += 64) {
    if (to_l2) {
      _mm_prefetch(c + off, _MM_HINT_T1);
    } else {
      _mm_prefetch(c + off, _MM_HINT_T0);
    }
  }
}

// One token's query heads of a range of kv heads over the sequence's keys. Keys outer,
// heads inner: the range's part of each K and V row is contiguous (a token's kv heads sit
// side by side in the cache), so one decode token reads its keys as long sequential runs
// the hardware prefetches, where a head at a time would touch 256 bytes every
// num_kv_heads * 256. Each (query head, key) still gets exactly Dot1's operations, and each
// output element the same FMA a key in key order (AxpyKeys), so the range changes no bit.
template <class T>
void AttendRowOf(const AttentionRow& row, const AttentionShape& shape, const KvLayerView& kv,
                 std::vector<float>& scratch) {
  const int hd = shape.head_dim;
  const int64_t token_stride = static_cast<int64_t>(kv.num_kv_heads) * hd;
  const T* k_base = static_cast<const T*>(kv.k) + static_cast<int64_t>(row.kv_head) * hd;
  const T* v_base = static_cast<const T*>(kv.v) + static_cast<int64_t>(row.kv_head) * hd;
  auto slot = [&](int64_t j) {
    return (static_cast<int64_t>(row.blocks[j / kv.block_size]) * kv.block_size +
            j % kv.block_size) *
           token_stride;
  };
  // Keys run from `first` (a sliding window's start) to n - 1; the scores start at `base`,
  // `first` rounded down to 8, the keys below `first` scoring -inf (weights of exactly 0), so
  // every key lands in the running sum of its absolute position mod 8 (cpu_attention.h).
  const int64_t first = row.first_key;
  const int64_t base = first / 8 * 8;
  const int64_t n = row.context - base;  // scores of keys base..context-1
  const int g = row.group;
  const int heads = g * row.num_kv_heads;  // query heads, hd apart in q and out
  // Scores of query head h at scratch[h * n ..], then 1 / sum of each at scratch[heads * n + h].
  scratch.resize(static_cast<size_t>(heads * (n + 1)));
  float* scores = scratch.data();
  for (int h = 0; h < heads; ++h) std::fill_n(scores + h * n, first - base, -INFINITY);
  int64_t j = first - base;
  const int64_t range_bytes = static_cast<int64_t>(row.num_kv_heads) * hd * sizeof(T);
  const bool v_to_l2 = (n - j) * range_bytes <= kL2PrefetchBytes;
  for (; j + 4 <= n; j += 4) {
    const T* keys[4] = {k_base + slot(base + j), k_base + slot(base + j + 1),
                        k_base + slot(base + j + 2), k_base + slot(base + j + 3)};
    for (int64_t i = j; i < j + 4; ++i) {
      if (i + kKeysAhead < n) {
        PrefetchRange(k_base + slot(base + i + kKeysAhead), range_bytes, false);
      }
      if (v_to_l2) PrefetchRange(v_base + slot(base + i), range_bytes, true);
    }
    for (int kh = 0; kh < row.num_kv_heads; ++kh) {
      const int64_t off = static_cast<int64_t>(kh) * hd;
      const T* head_keys[4] = {keys[0] + off, keys[1] + off, keys[2] + off, keys[3] + off};
      for (int h = kh * g; h < (kh + 1) * g; ++h) {
        Dot4(row.q + static_cast<int64_t>(h) * hd, head_keys, hd, scores + h * n + j);
      }
    }
  }
  for (; j < n; ++j) {
    const T* key = k_base + slot(base + j);
    for (int h = 0; h < heads; ++h) {
      scores[h * n + j] =
          Dot1(row.q + static_cast<int64_t>(h) * hd, key + static_cast<int64_t>(h / g) * hd, hd);
    }
  }
  for (int h = 0; h < heads; ++h) {
    float* s = scores + h * n;
    for (j = first - base; j < n; ++j) s[j] *= shape.scale;
    scratch[heads * n + h] = 1.0F / SoftmaxNumerators(s, n);
  }
  std::fill_n(row.out, static_cast<int64_t>(heads) * hd, 0.0F);
  // Keys before `first` weigh nothing and are skipped, not weighted by zero.
  for (j = first - base; j < n; j += kPvChunk) {
    const int count = static_cast<int>(std::min<int64_t>(kPvChunk, n - j));
    for (int64_t i = j + kPvChunk; i < std::min(n, j + int64_t{2} * kPvChunk); ++i) {
      PrefetchRange(v_base + slot(base + i), range_bytes, false);
    }
    const T* rows[kPvChunk];
    for (int i = 0; i < count; ++i) rows[i] = v_base + slot(base + j + i);
    for (int kh = 0; kh < row.num_kv_heads; ++kh) {
      const T* values[kPvChunk];
      for (int i = 0; i < count; ++i) values[i] = rows[i] + static_cast<int64_t>(kh) * hd;
      for (int h = kh * g; h < (kh + 1) * g; ++h) {
        AxpyKeys(scores + h * n + j, values, count, hd, row.out + static_cast<int64_t>(h) * hd);
      }
    }
  }
  for (int h = 0; h < heads; ++h) {
    float* out = row.out + static_cast<int64_t>(h) * hd;
    for (int d = 0; d < hd; ++d) out[d] *= scratch[heads * n + h];
  }
}

}  // namespace

void AttendRow(const AttentionRow& row, const AttentionShape& shape, const KvLayerView& kv,
               std::vector<float>& scratch) {
  WithKvElement(kv.dtype, [&]<class T>(const T*) { AttendRowOf<T>(row, shape, kv, scratch); });
}

}  // namespace ringserve::kernels::cpu
