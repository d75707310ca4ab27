// RoPE + KV write and paged causal attention on the CPU: the attention call is planned
// here as work items (rows for decode tokens, tiles for prefill chunks), balanced over the
// threads and run by the row path (attention_row.cc) or the tile path (attention_tile.inc).
//
// Batch invariance: a query row's result depends only on its own q, its position and the
// K/V stored for positions 0..position (its window's, with a sliding window). Both paths do the
// same operations per query (cpu_attention.h spells them out), so neither batch-mates, the plan nor
// the prefill chunking change a single bit.
#include "kernels/cpu/cpu_attention.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "common/check.h"
#include "kernels/backend.h"
#include "kernels/cpu/cpu_isa.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/simd.h"
#include "kernels/cpu/thread_pool.h"

namespace ringserve::kernels::cpu {
namespace {

float* RowPtr(const Tensor& t, int64_t i) { return static_cast<float*>(t.data) + i * t.row_stride; }

// Rotates the rotary_dim leading values of one head by per-pair (cos, sin).
void RotateHead(float* x, const float* cos_sin, const RopeParams& rope) {
  const int64_t half = rope.rotary_dim / 2;
  for (int64_t i = 0; i < half; ++i) {
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

// f16 holds magnitudes up to 65504; a K or V value past it is stored as 65504 (with its
// sign), not as an infinity that would turn the whole head's attention into NaN. NaN stays.
constexpr float kHalfMax = 65504.0F;

template <class T>
void StoreKvRowOf(const float* src, int64_t count, void* dst) {
  T* out = static_cast<T*>(dst);
  int64_t i = 0;
  for (; i + 8 <= count; i += 8) {
    __m256 v = _mm256_loadu_ps(src + i);
    if constexpr (std::is_same_v<T, F16>) {
      // max/min return their second operand when either is NaN: NaN passes through.
      v = _mm256_min_ps(_mm256_set1_ps(kHalfMax), _mm256_max_ps(_mm256_set1_ps(-kHalfMax), v));
    }
    Store8(out + i, v);
  }
  for (; i < count; ++i) {
    float v = src[i];
    if constexpr (std::is_same_v<T, F16>) {
      v = v > kHalfMax ? kHalfMax : v < -kHalfMax ? -kHalfMax : v;
    }
    out[i] = FromFloat<T>(v);
  }
}

}  // namespace

void StoreKvRow(DType dtype, const float* src, int64_t count, void* dst) {
  WithKvElement(dtype, [&]<class T>(const T*) { StoreKvRowOf<T>(src, count, dst); });
}

bool CpuKvDtypeSupported(DType dtype) {
  return dtype == DType::kF32 || dtype == DType::kF16 || dtype == DType::kBF16 ||
         dtype == DType::kF8E4M3;
}

void RopeAndWriteKvOp(ThreadPool& pool, const Tensor& qkv, const AttentionShape& shape,
                      const RopeParams& rope, const AttentionBatch& batch, const KvLayerView& kv) {
  RS_CHECK(CpuKvDtypeSupported(kv.dtype) && rope.rotary_dim <= shape.head_dim);
  const size_t element_bytes = DTypeBytes(kv.dtype, 1);
  const int hd = shape.head_dim;
  const int64_t kv_width = static_cast<int64_t>(shape.num_kv_heads) * hd;
  pool.ParallelFor(
      batch.num_tokens,
      [&](int64_t begin, int64_t end) {
        std::vector<float> cos_sin(static_cast<size_t>(rope.rotary_dim));
        for (int64_t t = begin; t < end; ++t) {
          // float64 angles: one deterministic value per (position, i), close to exact.
          const double pos = batch.positions[t];
          for (int64_t i = 0; i < rope.rotary_dim / 2; ++i) {
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
          const size_t offset = static_cast<size_t>(slot * kv_width) * element_bytes;
          StoreKvRow(kv.dtype, k, kv_width, static_cast<char*>(kv.k) + offset);
          StoreKvRow(kv.dtype, k + kv_width, kv_width, static_cast<char*>(kv.v) + offset);
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
  const int32_t position = c.batch.positions[t];
  const AttentionRow row{
      RowPtr(c.qkv, t) + q_offset,
      RowPtr(c.out, t) + q_offset,
      c.group,
      item.kv_head,
      item.num_kv_heads,
      static_cast<int64_t>(position) + 1,
      c.batch.block_tables + static_cast<int64_t>(item.seq) * c.batch.max_blocks_per_seq,
      FirstAttendedKey(position, c.shape.window)};
  AttendRow(row, c.shape, c.kv, scratch);
}

void RunTile(const AttentionCall& c, const WorkItem& item, Isa isa, std::vector<float>& scratch,
             std::vector<int64_t>& key_offsets) {
  const int hd = c.shape.head_dim;
  const int64_t first_token = c.batch.query_start[item.seq];
  AttentionTile tile;
  tile.num_lanes = item.count;
  int64_t n_end = 0;
  int64_t first_min = INT32_MAX;
  for (int i = 0; i < item.count; ++i) {
    const int vec = item.first + i;
    const int64_t t = first_token + vec / c.group;
    const int64_t q_offset = (static_cast<int64_t>(item.kv_head) * c.group + vec % c.group) * hd;
    tile.q[i] = RowPtr(c.qkv, t) + q_offset;
    tile.out[i] = RowPtr(c.out, t) + q_offset;
    tile.context[i] = c.batch.positions[t] + 1;
    tile.first_key[i] = FirstAttendedKey(c.batch.positions[t], c.shape.window);
    n_end = std::max<int64_t>(n_end, tile.context[i]);
    first_min = std::min<int64_t>(first_min, tile.first_key[i]);
  }
  const int64_t token_stride = static_cast<int64_t>(c.kv.num_kv_heads) * hd;
  const int32_t* blocks =
      c.batch.block_tables + static_cast<int64_t>(item.seq) * c.batch.max_blocks_per_seq;
  key_offsets.resize(static_cast<size_t>(n_end));
  const int bs = c.kv.block_size;
  for (int64_t b = first_min / bs; b * bs < n_end; ++b) {
    const int64_t base = static_cast<int64_t>(blocks[b]) * bs * token_stride;
    for (int64_t j = std::max(first_min, b * bs); j < std::min<int64_t>(n_end, (b + 1) * bs); ++j) {
      key_offsets[j] = base + (j - b * bs) * token_stride;
    }
  }
  const size_t head_offset = DTypeBytes(c.kv.dtype, static_cast<size_t>(item.kv_head) * hd);
  tile.k = static_cast<const char*>(c.kv.k) + head_offset;
  tile.v = static_cast<const char*>(c.kv.v) + head_offset;
  tile.kv_dtype = c.kv.dtype;
  tile.key_offsets = key_offsets.data();
  tile.head_dim = hd;
  tile.scale = c.shape.scale;
  scratch.resize(static_cast<size_t>(TileScratchFloats(hd, n_end)));
  if (HasAvx512(isa)) {
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
  const int lanes = HasAvx512(options.isa) ? 16 : 8;
  const int num_kv_heads = c.shape.num_kv_heads;
  const int ranges = RowHeadRanges(c, options, threads);
  std::vector<WorkItem> items;
  for (int s = 0; s < c.batch.num_seqs; ++s) {
    const int32_t begin = c.batch.query_start[s];
    const int32_t end = c.batch.query_start[s + 1];
    const int vectors = (end - begin) * c.group;
    if (vectors >= options.min_tile_vectors) {
      for (int first = 0; first < vectors; first += lanes) {
        const int count = std::min(lanes, vectors - first);
        // Tokens are in position order: the tile's keys run from its first token's window
        // to its last token.
        const int32_t last = c.batch.positions[begin + (first + count - 1) / c.group];
        const int64_t keys =
            last + 1 - FirstAttendedKey(c.batch.positions[begin + first / c.group], c.shape.window);
        for (int h = 0; h < num_kv_heads; ++h) {
          items.push_back({keys * kTileKeyCost, s, begin, h, first, count});
        }
      }
    } else {
      for (int32_t t = begin; t < end; ++t) {
        const int64_t keys =
            c.batch.positions[t] + 1 - FirstAttendedKey(c.batch.positions[t], c.shape.window);
        for (int r = 0; r < ranges; ++r) {
          const int h0 = num_kv_heads * r / ranges;
          const int h1 = num_kv_heads * (r + 1) / ranges;
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
  RS_CHECK(CpuKvDtypeSupported(kv.dtype) && shape.num_q_heads % shape.num_kv_heads == 0);
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
