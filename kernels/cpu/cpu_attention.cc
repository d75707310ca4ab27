// RoPE + KV write and paged causal attention on the CPU.
//
// Batch invariance: a query row's result depends only on its own q, its position and the
// K/V stored for positions 0..position. Scores are computed key by key in position order,
// the softmax runs over the whole row (two passes, no chunking), and V is accumulated in
// position order, so neither batch-mates nor the prefill chunking change a single bit.
// The row path here and the tile path (attention_tile.inc) do the same operations per
// query; cpu_attention.h spells them out.
#include "kernels/cpu/cpu_attention.h"

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

// How far ahead of the dot products the K rows are prefetched: far enough to cover a
// memory latency, and across the jump to the next (randomly placed) block, where the
// hardware prefetcher has to start over.
constexpr int64_t kKeysAhead = 8;

// Prefetches [p, p + bytes): into L1 for K, which the dot products read next, or into L2 for
// V, which the second pass reads after all scores (one token's V is a few hundred KiB).
void PrefetchRange(const float* p, int64_t bytes, bool to_l2) {
  const char* c = reinterpret_cast<const char*>(p);
  for (int64_t off = 0; off < bytes; off += 64) {
    if (to_l2) {
      _mm_prefetch(c + off, _MM_HINT_T1);
    } else {
      _mm_prefetch(c + off, _MM_HINT_T0);
    }
  }
}

struct AttentionRow {
  const float* q;         // first query head of the range; heads hd apart
  float* out;             // same layout as q
  int group;              // query heads sharing each kv head
  int kv_head;            // first kv head of the range ...
  int num_kv_heads;       // ... and how many
  int64_t context;        // keys 0..context-1
  const int32_t* blocks;  // the sequence's block table
};

// One token's query heads of a range of kv heads over the sequence's keys. Keys outer,
// heads inner: the range's part of each K and V row is contiguous (a token's kv heads sit
// side by side in the cache), so one decode token reads its keys as long sequential runs
// the hardware prefetches, where a head at a time would touch 256 bytes every
// num_kv_heads * 256. Each (query head, key) still gets exactly Dot1's and Axpy's
// operations in key order, so the range changes no bit.
void AttendRow(const AttentionRow& row, const AttentionShape& shape, const KvLayerView& kv,
               std::vector<float>& scratch) {
  const int hd = shape.head_dim;
  const int64_t token_stride = static_cast<int64_t>(kv.num_kv_heads) * hd;
  const auto* k_base = static_cast<const float*>(kv.k) + static_cast<int64_t>(row.kv_head) * hd;
  const auto* v_base = static_cast<const float*>(kv.v) + static_cast<int64_t>(row.kv_head) * hd;
  auto slot = [&](int64_t j) {
    return (static_cast<int64_t>(row.blocks[j / kv.block_size]) * kv.block_size +
            j % kv.block_size) *
           token_stride;
  };
  const int64_t n = row.context;
  const int g = row.group;
  const int heads = g * row.num_kv_heads;  // query heads, hd apart in q and out
  // Scores of query head h at scratch[h * n ..], then 1 / sum of each at scratch[heads * n + h].
  scratch.resize(static_cast<size_t>(heads * (n + 1)));
  float* scores = scratch.data();
  int64_t j = 0;
  const int64_t range_bytes = static_cast<int64_t>(row.num_kv_heads) * hd * sizeof(float);
  for (; j + 4 <= n; j += 4) {
    const float* keys[4] = {k_base + slot(j), k_base + slot(j + 1), k_base + slot(j + 2),
                            k_base + slot(j + 3)};
    for (int64_t i = j; i < j + 4; ++i) {
      if (i + kKeysAhead < n) PrefetchRange(k_base + slot(i + kKeysAhead), range_bytes, false);
      PrefetchRange(v_base + slot(i), range_bytes, true);
    }
    for (int kh = 0; kh < row.num_kv_heads; ++kh) {
      const int64_t off = static_cast<int64_t>(kh) * hd;
      const float* head_keys[4] = {keys[0] + off, keys[1] + off, keys[2] + off, keys[3] + off};
      for (int h = kh * g; h < (kh + 1) * g; ++h)
        Dot4(row.q + static_cast<int64_t>(h) * hd, head_keys, hd, scores + h * n + j);
    }
  }
  for (; j < n; ++j) {
    const float* key = k_base + slot(j);
    for (int h = 0; h < heads; ++h) {
      scores[h * n + j] =
          Dot1(row.q + static_cast<int64_t>(h) * hd, key + static_cast<int64_t>(h / g) * hd, hd);
    }
  }
  for (int h = 0; h < heads; ++h) {
    float* s = scores + h * n;
    for (j = 0; j < n; ++j) s[j] *= shape.scale;
    scratch[heads * n + h] = 1.0F / SoftmaxNumerators(s, n);
  }
  std::fill_n(row.out, static_cast<int64_t>(heads) * hd, 0.0F);
  for (j = 0; j < n; ++j) {
    const float* v = v_base + slot(j);
    for (int h = 0; h < heads; ++h) {
      Axpy(scores[h * n + j], v + static_cast<int64_t>(h / g) * hd, hd,
           row.out + static_cast<int64_t>(h) * hd);
    }
  }
  for (int h = 0; h < heads; ++h) {
    float* out = row.out + static_cast<int64_t>(h) * hd;
    for (int d = 0; d < hd; ++d) out[d] *= scratch[heads * n + h];
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
          if (slot < 0) continue;  // a padding token (see AttentionBatch)
          const float* k = row + static_cast<int64_t>(shape.num_q_heads) * hd;
          std::memcpy(static_cast<float*>(kv.k) + slot * kv_width, k, sizeof(float) * kv_width);
          std::memcpy(static_cast<float*>(kv.v) + slot * kv_width, k + kv_width,
                      sizeof(float) * kv_width);
        }
      },
      8);
}

namespace {

// A unit of attention work: the rows path's (token, kv heads [kv_head, kv_head +
// num_kv_heads)), or a tile of `count` query vectors of sequence `seq` and kv head
// `kv_head` starting at vector `first` (vectors run token-major, the group's heads inner).
struct WorkItem {
  int64_t cost = 0;  // relative time estimate, for balancing threads
  int32_t seq = 0;
  int32_t token = 0;
  int32_t kv_head = 0;
  int32_t first = 0;
  int32_t count = 0;  // 0 for a row
  int32_t num_kv_heads = 1;
};

// Per (key, query head), a tile costs ~5x a row's head: 16 lanes of score chains, softmax
// and P V whatever the fill, vs one head's dot product, softmax and V update.
constexpr int64_t kRowKeyCost = 1;
constexpr int64_t kTileKeyCost = 5;

struct AttentionCall {
  const Tensor& qkv;
  const AttentionShape& shape;
  const AttentionBatch& batch;
  const KvLayerView& kv;
  const Tensor& out;
  int group;
};

void RunRow(const AttentionCall& c, const WorkItem& item, std::vector<float>& scratch) {
  const int64_t t = item.token;
  const int64_t q_offset = static_cast<int64_t>(item.kv_head) * c.group * c.shape.head_dim;
  const AttentionRow row{
      RowPtr(c.qkv, t) + q_offset,
      RowPtr(c.out, t) + q_offset,
      c.group,
      item.kv_head,
      item.num_kv_heads,
      static_cast<int64_t>(c.batch.positions[t]) + 1,
      c.batch.block_tables + static_cast<int64_t>(item.seq) * c.batch.max_blocks_per_seq};
  AttendRow(row, c.shape, c.kv, scratch);
}

void RunTile(const AttentionCall& c, const WorkItem& item, Isa isa, std::vector<float>& scratch,
             std::vector<int64_t>& key_offsets) {
  const int hd = c.shape.head_dim;
  const int64_t first_token = c.batch.query_start[item.seq];
  AttentionTile tile;
  tile.num_lanes = item.count;
  int64_t n_end = 0;
  for (int i = 0; i < item.count; ++i) {
    const int vec = item.first + i;
    const int64_t t = first_token + vec / c.group;
    const int64_t q_offset = (static_cast<int64_t>(item.kv_head) * c.group + vec % c.group) * hd;
    tile.q[i] = RowPtr(c.qkv, t) + q_offset;
    tile.out[i] = RowPtr(c.out, t) + q_offset;
    tile.context[i] = c.batch.positions[t] + 1;
    n_end = std::max<int64_t>(n_end, tile.context[i]);
  }
  const int64_t token_stride = static_cast<int64_t>(c.kv.num_kv_heads) * hd;
  const int32_t* blocks =
      c.batch.block_tables + static_cast<int64_t>(item.seq) * c.batch.max_blocks_per_seq;
  key_offsets.resize(static_cast<size_t>(n_end));
  const int bs = c.kv.block_size;
  for (int64_t b = 0; b * bs < n_end; ++b) {
    const int64_t base = static_cast<int64_t>(blocks[b]) * bs * token_stride;
    for (int64_t j = b * bs; j < std::min<int64_t>(n_end, (b + 1) * bs); ++j) {
      key_offsets[j] = base + (j - b * bs) * token_stride;
    }
  }
  tile.k = static_cast<const float*>(c.kv.k) + static_cast<int64_t>(item.kv_head) * hd;
  tile.v = static_cast<const float*>(c.kv.v) + static_cast<int64_t>(item.kv_head) * hd;
  tile.key_offsets = key_offsets.data();
  tile.head_dim = hd;
  tile.scale = c.shape.scale;
  scratch.resize(static_cast<size_t>(TileScratchFloats(hd, n_end)));
  if (isa == Isa::kAvx512) {
    AttendTileAvx512(tile, scratch.data());
  } else {
    AttendTileAvx2(tile, scratch.data());
  }
}

// How many kv-head ranges each row token is cut into: whole tokens read the cache in the
// longest runs, but a few decode tokens must still give every thread about two items.
int RowHeadRanges(const AttentionCall& c, const AttentionOptions& options, int threads) {
  int row_tokens = 0;
  for (int s = 0; s < c.batch.num_seqs; ++s) {
    const int32_t tokens = c.batch.query_start[s + 1] - c.batch.query_start[s];
    if (tokens * c.group < options.min_tile_vectors) row_tokens += tokens;
  }
  if (row_tokens == 0) return 1;
  return std::min(c.shape.num_kv_heads, (2 * threads + row_tokens - 1) / row_tokens);
}

// Splits the batch into work items: tiles for sequences with enough query vectors, rows for
// the rest (decode tokens).
std::vector<WorkItem> PlanWork(const AttentionCall& c, const AttentionOptions& options,
                               int threads) {
  const int lanes = options.isa == Isa::kAvx512 ? 16 : 8;
  const int num_kv_heads = c.shape.num_kv_heads;
  const int ranges = RowHeadRanges(c, options, threads);
  std::vector<WorkItem> items;
  for (int s = 0; s < c.batch.num_seqs; ++s) {
    const int32_t begin = c.batch.query_start[s], end = c.batch.query_start[s + 1];
    const int vectors = (end - begin) * c.group;
    if (vectors >= options.min_tile_vectors) {
      for (int first = 0; first < vectors; first += lanes) {
        const int count = std::min(lanes, vectors - first);
        // Tokens are in position order, so the tile's last token has the longest context.
        const int64_t keys = c.batch.positions[begin + (first + count - 1) / c.group] + 1;
        for (int h = 0; h < num_kv_heads; ++h) {
          items.push_back({keys * kTileKeyCost, s, begin, h, first, count});
        }
      }
    } else {
      for (int32_t t = begin; t < end; ++t) {
        const int64_t keys = c.batch.positions[t] + 1;
        for (int r = 0; r < ranges; ++r) {
          const int h0 = num_kv_heads * r / ranges, h1 = num_kv_heads * (r + 1) / ranges;
          items.push_back({keys * c.group * (h1 - h0) * kRowKeyCost, s, t, h0, 0, 0, h1 - h0});
        }
      }
    }
  }
  return items;
}

// Greedy balancing over `workers` bins: each item to the least loaded bin, kv head by kv
// head and within a head longest first. A thread then works through one head's K and V
// (what its tiles re-read) before the next, so they stay in its L2. Reorders items bin by
// bin and returns each bin's first index.
std::vector<size_t> Balance(std::vector<WorkItem>& items, int workers) {
  std::stable_sort(items.begin(), items.end(), [](const WorkItem& a, const WorkItem& b) {
    return a.kv_head != b.kv_head ? a.kv_head < b.kv_head : a.cost > b.cost;
  });
  std::vector<int64_t> load(workers, 0);
  std::vector<int> bin(items.size());
  std::vector<size_t> start(workers + 1, 0);
  for (size_t i = 0; i < items.size(); ++i) {
    bin[i] = static_cast<int>(std::min_element(load.begin(), load.end()) - load.begin());
    load[bin[i]] += items[i].cost;
    ++start[bin[i] + 1];
  }
  for (int w = 0; w < workers; ++w) start[w + 1] += start[w];
  std::vector<WorkItem> ordered(items.size());
  std::vector<size_t> next(start.begin(), start.end() - 1);
  for (size_t i = 0; i < items.size(); ++i) ordered[next[bin[i]]++] = items[i];
  items.swap(ordered);
  return start;
}

}  // namespace

void PagedAttentionOp(ThreadPool& pool, const Tensor& qkv, const AttentionShape& shape,
                      const AttentionBatch& batch, const KvLayerView& kv, const Tensor& out) {
  PagedAttentionOp(pool, qkv, shape, batch, kv, out, AttentionOptions{BestIsa()});
}

void PagedAttentionOp(ThreadPool& pool, const Tensor& qkv, const AttentionShape& shape,
                      const AttentionBatch& batch, const KvLayerView& kv, const Tensor& out,
                      const AttentionOptions& options) {
  RS_CHECK(kv.dtype == DType::kF32 && shape.num_q_heads % shape.num_kv_heads == 0);
  RS_CHECK(IsaSupported(options.isa));
  const AttentionCall call{qkv, shape, batch, kv, out, shape.num_q_heads / shape.num_kv_heads};
  std::vector<WorkItem> items = PlanWork(call, options, pool.num_threads());
  if (items.empty()) return;
  // Causal prefill work grows with position, so contiguous chunks would leave a thread idle.
  const int workers = static_cast<int>(std::min<size_t>(pool.num_threads(), items.size()));
  const std::vector<size_t> start = Balance(items, workers);
  pool.ParallelFor(workers, [&](int64_t begin, int64_t end) {
    std::vector<float> scratch;
    std::vector<int64_t> key_offsets;
    for (int64_t w = begin; w < end; ++w) {
      for (size_t i = start[w]; i < start[w + 1]; ++i) {
        if (items[i].count == 0) {
          RunRow(call, items[i], scratch);
        } else {
          RunTile(call, items[i], options.isa, scratch, key_offsets);
        }
      }
    }
  });
}

}  // namespace ringserve::kernels::cpu
