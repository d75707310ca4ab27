// RoPE + KV write and paged causal attention on the CPU.
//
// Batch invariance: a query row's result depends only on its own q, its position and the
// K/V stored for positions 0..position. Scores are computed key by key in position order,
// the softmax runs over the whole row (two passes, no chunking), and V is accumulated in
// position order, so neither batch-mates nor the prefill chunking change a single bit.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "common/check.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/simd.h"

namespace ringserve::kernels::cpu {
namespace {

float* RowPtr(const Tensor& t, int64_t i) { return static_cast<float*>(t.data) + i * t.row_stride; }

// Rotates the rotary_dim leading values of one head by per-pair (cos, sin).
void RotateHead(float* x, const float* cos_sin, const RopeParams& rope) {
  const int half = rope.rotary_dim / 2;
  for (int i = 0; i < half; ++i) {
    const float c = cos_sin[2 * i];
    const float s = cos_sin[2 * i + 1];
    float* a = rope.layout == RopeLayout::kAdjacentPairs ? x + 2 * i : x + i;
    float* b = rope.layout == RopeLayout::kAdjacentPairs ? x + 2 * i + 1 : x + i + half;
    const float x0 = *a;
    const float x1 = *b;
    *a = x0 * c - x1 * s;
    *b = x0 * s + x1 * c;
  }
}

// Dot products of q with four keys at once (four independent FMA chains hide the FMA
// latency); each key's arithmetic is exactly that of Dot1.
void Dot4(const float* q, const float* const k[4], int hd, float* out) {
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                   _mm256_setzero_ps()};
  int d = 0;
  for (; d + 8 <= hd; d += 8) {
    const __m256 qv = _mm256_loadu_ps(q + d);
    for (int j = 0; j < 4; ++j) acc[j] = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k[j] + d), acc[j]);
  }
  for (int j = 0; j < 4; ++j) {
    float sum = HorizontalSum(acc[j]);
    for (int t = d; t < hd; ++t) sum = std::fma(q[t], k[j][t], sum);
    out[j] = sum;
  }
}

float Dot1(const float* q, const float* k, int hd) {
  __m256 acc = _mm256_setzero_ps();
  int d = 0;
  for (; d + 8 <= hd; d += 8)
    acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + d), _mm256_loadu_ps(k + d), acc);
  float sum = HorizontalSum(acc);
  for (; d < hd; ++d) sum = std::fma(q[d], k[d], sum);
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

// acc[0..hd) += p * v[0..hd).
void Axpy(float p, const float* v, int hd, float* acc) {
  const __m256 pv = _mm256_set1_ps(p);
  int d = 0;
  for (; d + 8 <= hd; d += 8) {
    _mm256_storeu_ps(acc + d,
                     _mm256_fmadd_ps(pv, _mm256_loadu_ps(v + d), _mm256_loadu_ps(acc + d)));
  }
  for (; d < hd; ++d) acc[d] = std::fma(p, v[d], acc[d]);
}

struct AttentionRow {
  const float* q;  // group's first query head; heads hd apart
  float* out;      // same layout as q
  int group;       // query heads sharing this kv head
  int kv_head;
  int64_t context;        // keys 0..context-1
  const int32_t* blocks;  // the sequence's block table
};

// One (token, kv head) row: every query head of the group over the sequence's keys.
void AttendRow(const AttentionRow& row, const AttentionShape& shape, const KvLayerView& kv,
               std::vector<float>& scratch) {
  const int hd = shape.head_dim;
  const int64_t token_stride = static_cast<int64_t>(kv.num_kv_heads) * hd;
  const auto* k_base = static_cast<const float*>(kv.k) + row.kv_head * hd;
  const auto* v_base = static_cast<const float*>(kv.v) + row.kv_head * hd;
  auto slot = [&](int64_t j) {
    return (static_cast<int64_t>(row.blocks[j / kv.block_size]) * kv.block_size +
            j % kv.block_size) *
           token_stride;
  };
  const int64_t n = row.context;
  const int g = row.group;
  // Scores of head h at scratch[h * n ..], then 1 / sum of each head at scratch[g * n + h].
  scratch.resize(static_cast<size_t>(g * (n + 1)));
  float* scores = scratch.data();
  // Keys outer, heads inner: each K and V row is read once for the whole group.
  int64_t j = 0;
  for (; j + 4 <= n; j += 4) {
    const float* keys[4] = {k_base + slot(j), k_base + slot(j + 1), k_base + slot(j + 2),
                            k_base + slot(j + 3)};
    for (int h = 0; h < g; ++h)
      Dot4(row.q + static_cast<int64_t>(h) * hd, keys, hd, scores + h * n + j);
  }
  for (; j < n; ++j) {
    for (int h = 0; h < g; ++h)
      scores[h * n + j] = Dot1(row.q + static_cast<int64_t>(h) * hd, k_base + slot(j), hd);
  }
  for (int h = 0; h < g; ++h) {
    float* s = scores + h * n;
    for (j = 0; j < n; ++j) s[j] *= shape.scale;
    scratch[g * n + h] = 1.0F / SoftmaxNumerators(s, n);
  }
  std::fill_n(row.out, static_cast<int64_t>(g) * hd, 0.0F);
  for (j = 0; j < n; ++j) {
    const float* v = v_base + slot(j);
    for (int h = 0; h < g; ++h)
      Axpy(scores[h * n + j], v, hd, row.out + static_cast<int64_t>(h) * hd);
  }
  for (int h = 0; h < g; ++h) {
    float* out = row.out + static_cast<int64_t>(h) * hd;
    for (int d = 0; d < hd; ++d) out[d] *= scratch[g * n + h];
  }
}

}  // namespace

void RopeAndWriteKvOp(ThreadPool& pool, const Tensor& qkv, const AttentionShape& shape,
                      const RopeParams& rope, const AttentionBatch& batch, const KvLayerView& kv) {
  RS_CHECK(kv.dtype == DType::kF32 && rope.rotary_dim <= shape.head_dim);
  const int hd = shape.head_dim;
  const int64_t kv_width = static_cast<int64_t>(shape.num_kv_heads) * hd;
  pool.ParallelFor(
      batch.num_tokens,
      [&](int64_t begin, int64_t end) {
        std::vector<float> cos_sin(static_cast<size_t>(rope.rotary_dim));
        for (int64_t t = begin; t < end; ++t) {
          // float64 angles: one deterministic value per (position, i), close to exact.
          const double pos = batch.positions[t];
          for (int i = 0; i < rope.rotary_dim / 2; ++i) {
            const double angle = pos * static_cast<double>(rope.inv_freq[i]);
            cos_sin[2 * i] = static_cast<float>(std::cos(angle));
            cos_sin[2 * i + 1] = static_cast<float>(std::sin(angle));
          }
          float* row = RowPtr(qkv, t);
          for (int h = 0; h < shape.num_q_heads + shape.num_kv_heads; ++h) {
            RotateHead(row + static_cast<int64_t>(h) * hd, cos_sin.data(), rope);
          }
          const int64_t slot = batch.slots[t];
          const float* k = row + static_cast<int64_t>(shape.num_q_heads) * hd;
          std::memcpy(static_cast<float*>(kv.k) + slot * kv_width, k, sizeof(float) * kv_width);
          std::memcpy(static_cast<float*>(kv.v) + slot * kv_width, k + kv_width,
                      sizeof(float) * kv_width);
        }
      },
      8);
}

void PagedAttentionOp(ThreadPool& pool, const Tensor& qkv, const AttentionShape& shape,
                      const AttentionBatch& batch, const KvLayerView& kv, const Tensor& out) {
  RS_CHECK(kv.dtype == DType::kF32 && shape.num_q_heads % shape.num_kv_heads == 0);
  const int group = shape.num_q_heads / shape.num_kv_heads;
  const int64_t num_rows = static_cast<int64_t>(batch.num_tokens) * shape.num_kv_heads;
  const int num_workers = static_cast<int>(std::min<int64_t>(pool.num_threads(), num_rows));
  // Rows are dealt round-robin: causal prefill rows grow in cost with position, so
  // contiguous chunks would leave the first thread idle.
  pool.ParallelFor(num_workers, [&](int64_t begin, int64_t end) {
    std::vector<float> scratch;
    for (int64_t worker = begin; worker < end; ++worker) {
      for (int64_t r = worker; r < num_rows; r += num_workers) {
        const int64_t t = r / shape.num_kv_heads;
        const int g = static_cast<int>(r % shape.num_kv_heads);
        const int seq = batch.token_seq[t];
        const int64_t q_offset = static_cast<int64_t>(g) * group * shape.head_dim;
        AttentionRow row{RowPtr(qkv, t) + q_offset,
                         RowPtr(out, t) + q_offset,
                         group,
                         g,
                         static_cast<int64_t>(batch.positions[t]) + 1,
                         batch.block_tables + static_cast<int64_t>(seq) * batch.max_blocks_per_seq};
        AttendRow(row, shape, kv, scratch);
      }
    }
  });
}

}  // namespace ringserve::kernels::cpu
