#include "kernels/cpu/cpu_sampling.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <functional>
#include <limits>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "kernels/cpu/cpu_ops.h"

namespace ringserve::kernels::cpu {
namespace {

constexpr int32_t kLanes = 16;

// Lane j of `best` / `index` takes the largest of v[j], v[j + 16], ... below `end` and the
// first index holding it. Returns the end of the part scanned.
int32_t ScanLanes(std::span<const float> v, std::array<float, kLanes>& best,
                  std::array<int32_t, kLanes>& index) {
  const auto n = static_cast<int32_t>(v.size());
  int32_t i = 0;
#if defined(__SSE2__)
  // The compiler does not vectorize the select of an index by a float compare: SSE2 by hand,
  // four registers of four lanes.
  __m128 b[4];
  __m128i ix[4];
  for (size_t k = 0; k < 4; ++k) {
    b[k] = _mm_loadu_ps(&best[4 * k]);
    ix[k] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(&index[4 * k]));
  }
  const __m128i lane = _mm_setr_epi32(0, 1, 2, 3);
  for (; i + kLanes <= n; i += kLanes) {
    for (int k = 0; k < 4; ++k) {
      const __m128 x = _mm_loadu_ps(&v[i + 4 * k]);
      const __m128 better = _mm_cmpgt_ps(x, b[k]);
      b[k] = _mm_or_ps(_mm_and_ps(better, x), _mm_andnot_ps(better, b[k]));
      const __m128i at = _mm_add_epi32(lane, _mm_set1_epi32(i + 4 * k));
      const __m128i mask = _mm_castps_si128(better);
      ix[k] = _mm_or_si128(_mm_and_si128(mask, at), _mm_andnot_si128(mask, ix[k]));
    }
  }
  for (size_t k = 0; k < 4; ++k) {
    _mm_storeu_ps(&best[4 * k], b[k]);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(&index[4 * k]), ix[k]);
  }
#else
  for (; i + kLanes <= n; i += kLanes) {
    for (int32_t j = 0; j < kLanes; ++j) {
      if (v[i + j] > best[j]) {
        best[j] = v[i + j];
        index[j] = i + j;
      }
    }
  }
#endif
  return i;
}

// The largest value, NaNs ignored (-inf when there is none). In independent lanes: a
// single running max is one dependent max per token.
float MaxIgnoringNaN(std::span<const float> v) {
  constexpr size_t kMaxLanes = 16;
  std::array<float, kMaxLanes> lane;
  lane.fill(-std::numeric_limits<float>::infinity());
  size_t i = 0;
  for (; i + kMaxLanes <= v.size(); i += kMaxLanes) {
    for (size_t j = 0; j < kMaxLanes; ++j) lane[j] = v[i + j] > lane[j] ? v[i + j] : lane[j];
  }
  float m = -std::numeric_limits<float>::infinity();
  for (; i < v.size(); ++i) m = v[i] > m ? v[i] : m;
  for (const float x : lane) m = x > m ? x : m;
  return m;
}

struct Candidate {
  uint64_t key;
  uint64_t weight;
};

// A thread's buffers, grown to the largest row it has seen and kept.
struct Scratch {
  std::vector<float> scaled;
  std::vector<float> scaled_weights;
  std::vector<uint64_t> weights;
  std::vector<uint64_t> histogram;
  std::vector<uint64_t> heap;
  std::vector<Candidate> candidates;
};

Scratch& ThreadScratch() {
  thread_local Scratch scratch;
  return scratch;
}

// weights[i] = SampleWeight(s[i], m) for every token, in a first loop the compiler
// vectorizes (the exponentials of a clamped argument: no branch) and a second that cuts and
// converts. The same bits as SampleWeight's: the cut and the product are the same.
void AllWeights(std::span<const float> s, float m, std::vector<float>& scaled,
                std::vector<uint64_t>& weights) {
  const size_t n = s.size();
  scaled.resize(n);
  for (size_t i = 0; i < n; ++i) {
    const float d = Sub(s[i], m);
    const bool kept = d >= kWeightCut;  // false for NaN
    const float e = Mul(ExpInRange(kept ? d : 0.0F), kWeightScale);
    scaled[i] = kept ? e : 0.0F;
  }
  for (size_t i = 0; i < n; ++i) weights[i] = static_cast<uint64_t>(scaled[i]);
}

// scratch.heap = the k largest keys of the row (1 <= k < size): a min-heap of the k largest
// so far. Most tokens are below its smallest value: blocks of them pass by after one
// vectorized comparison with it, and only a block holding a candidate (or a NaN) has its
// keys computed.
void TopKeys(std::span<const float> s, int32_t k, Scratch& scratch) {
  std::vector<uint64_t>& heap = scratch.heap;
  heap.clear();
  for (int32_t i = 0; i < k; ++i) heap.push_back(SortKey(s[i], i));
  std::make_heap(heap.begin(), heap.end(), std::greater<>());
  // The smallest kept token's value: a token below it never enters (its key is smaller).
  const auto smallest_value = [&] {
    return s[static_cast<int32_t>(0xFFFFFFFFU - static_cast<uint32_t>(heap.front()))];
  };
  float floor = smallest_value();
  const auto consider = [&](int32_t i) {
    const uint64_t key = SortKey(s[i], i);
    if (key <= heap.front()) return;
    std::pop_heap(heap.begin(), heap.end(), std::greater<>());
    heap.back() = key;
    std::push_heap(heap.begin(), heap.end(), std::greater<>());
    floor = smallest_value();
  };
  const auto n = static_cast<int32_t>(s.size());
  constexpr int32_t kBlock = 16;
  int32_t i = k;
  for (; i + kBlock <= n; i += kBlock) {
    // !(v < floor) holds for a candidate, a NaN, or any value when floor is NaN.
    bool candidate = false;
    for (int32_t j = 0; j < kBlock; ++j) candidate |= !(s[i + j] < floor);
    if (!candidate) continue;
    for (int32_t j = 0; j < kBlock; ++j) consider(i + j);
  }
  for (; i < n; ++i) consider(i);
}

// The first key digit takes 12 bits (the sign, the exponent and 3 mantissa bits of the
// scaled logit): a 32 KiB histogram that leaves a few hundred tokens in the digit that
// decides. The rest goes 8 bits a round over those tokens only.
constexpr int kFirstDigitBits = 12;

// The key at which the weights of the tokens, added from the largest key down, first reach
// `want` (0 < want <= their total): the end of top_p's prefix. Tokens of weight 0 never
// decide it and take no part. A radix select, most significant digit first; sums are exact
// integers.
uint64_t NucleusEndKey(std::span<const float> s, std::span<const uint64_t> weights, uint64_t want,
                       Scratch& scratch) {
  const auto n = static_cast<int32_t>(s.size());
  std::vector<uint64_t>& histogram = scratch.histogram;
  histogram.assign(size_t{1} << kFirstDigitBits, 0);
  constexpr int kFirstShift = 64 - kFirstDigitBits;
  for (int32_t i = 0; i < n; ++i) {
    if (weights[i] != 0) histogram[SortKey(s[i], i) >> kFirstShift] += weights[i];
  }
  auto digit = static_cast<uint64_t>(histogram.size() - 1);
  for (; digit > 0 && histogram[digit] < want; --digit) want -= histogram[digit];
  std::vector<Candidate>& candidates = scratch.candidates;
  candidates.clear();
  for (int32_t i = 0; i < n; ++i) {
    if (weights[i] == 0) continue;
    const uint64_t key = SortKey(s[i], i);
    if (key >> kFirstShift == digit) candidates.push_back({key, weights[i]});
  }
  for (int shift = kFirstShift; shift > 0 && candidates.size() > 1;) {
    const int bits = std::min(shift, 8);
    shift -= bits;
    const uint64_t mask = (uint64_t{1} << bits) - 1;
    std::array<uint64_t, 256> sums{};
    for (const Candidate& c : candidates) sums[c.key >> shift & mask] += c.weight;
    uint64_t d = mask;
    for (; d > 0 && sums[d] < want; --d) want -= sums[d];
    std::erase_if(candidates, [&](const Candidate& c) { return (c.key >> shift & mask) != d; });
  }
  return candidates.front().key;
}

// The chain over the top_k tokens only: the heap of TopKeys holds exactly their keys
// (and so their ids), and the rest of the chain runs over those k, sorted.
int32_t SampleTopK(std::span<const float> s, float m, const RowSampling& params, Scratch& scratch) {
  TopKeys(s, params.top_k, scratch);
  std::vector<Candidate>& top = scratch.candidates;
  top.clear();
  for (const uint64_t key : scratch.heap) {
    const auto id = static_cast<int32_t>(0xFFFFFFFFU - static_cast<uint32_t>(key));
    top.push_back({key, SampleWeight(s[id], m)});
  }
  std::sort(top.begin(), top.end(),
            [](const Candidate& a, const Candidate& b) { return a.key > b.key; });
  if (params.top_p < 1.0F) {
    uint64_t total = 0;
    for (const Candidate& c : top) total += c.weight;
    const uint64_t want = NucleusMass(params.top_p, total);
    uint64_t mass = 0;
    size_t keep = 0;
    while (keep < top.size() && mass < want) mass += top[keep++].weight;
    top.resize(keep);
  }
  auto id_of = [](const Candidate& c) {
    return static_cast<int32_t>(0xFFFFFFFFU - static_cast<uint32_t>(c.key));
  };
  uint64_t kept = 0;
  for (Candidate& c : top) {
    if (params.min_p > 0.0F && BelowMinP(s[id_of(c)], m, params.min_p)) c.weight = 0;
    kept += c.weight;
  }
  std::sort(top.begin(), top.end(),
            [&](const Candidate& a, const Candidate& b) { return id_of(a) < id_of(b); });
  const uint64_t target = DrawTarget(params.uniform, kept);
  uint64_t running = 0;
  for (const Candidate& c : top) {
    running += c.weight;
    if (running > target) return id_of(c);
  }
  return id_of(top.back());  // not reached: the running sum ends at kept > target
}

// The chain over the whole row: weights, top_p's cut by NucleusEndKey, min_p, the draw.
int32_t SampleAll(std::span<const float> s, float m, const RowSampling& params, Scratch& scratch) {
  const auto n = static_cast<int32_t>(s.size());
  std::vector<uint64_t>& weights = scratch.weights;
  weights.resize(n);
  AllWeights(s, m, scratch.scaled_weights, weights);
  // Every token whose key is below `floor` is cut (0 keeps all).
  uint64_t floor = 0;
  if (params.top_p < 1.0F) {
    uint64_t total = 0;
    for (int32_t i = 0; i < n; ++i) total += weights[i];
    floor = NucleusEndKey(s, weights, NucleusMass(params.top_p, total), scratch);
  }
  uint64_t kept = 0;
  for (int32_t i = 0; i < n; ++i) {
    if (weights[i] == 0) continue;
    if ((floor != 0 && SortKey(s[i], i) < floor) ||
        (params.min_p > 0.0F && BelowMinP(s[i], m, params.min_p))) {
      weights[i] = 0;
    }
    kept += weights[i];
  }
  const uint64_t target = DrawTarget(params.uniform, kept);
  uint64_t running = 0;
  for (int32_t i = 0; i < n; ++i) {
    running += weights[i];
    if (running > target) return i;
  }
  return n - 1;  // not reached: the running sum ends at kept > target
}

}  // namespace

int32_t ArgmaxRow(std::span<const float> row) {
  if (row.empty() || std::isnan(row[0])) return 0;
  const auto n = static_cast<int32_t>(row.size());
  std::array<float, kLanes> best;
  std::array<int32_t, kLanes> index;
  best.fill(row[0]);
  index.fill(0);
  int32_t i = ScanLanes(row, best, index);
  int32_t winner = 0;
  for (int32_t j = 0; j < kLanes; ++j) {
    if (best[j] > best[winner] || (best[j] == best[winner] && index[j] < index[winner])) {
      winner = j;
    }
  }
  int32_t result = index[winner];
  for (; i < n; ++i) {
    if (row[i] > row[result]) result = i;
  }
  return result;
}

int32_t SampleRow(std::span<const float> row, const RowSampling& params) {
  const auto n = static_cast<int32_t>(row.size());
  if (!(params.temperature > 0.0F) || n == 0) return ArgmaxRow(row);
  Scratch& scratch = ThreadScratch();
  std::vector<float>& s = scratch.scaled;
  s.resize(n);
  const float inv_t = InverseTemperature(params.temperature);
  for (int32_t i = 0; i < n; ++i) s[i] = Mul(row[i], inv_t);
  const float m = MaxIgnoringNaN(s);
  if (!std::isfinite(m)) return ArgmaxRow(row);
  return params.top_k > 0 && params.top_k < n ? SampleTopK(s, m, params, scratch)
                                              : SampleAll(s, m, params, scratch);
}

void PenalizeRow(std::span<float> row, const RowSampling& params, std::span<PenaltyEntry> entries) {
  for (PenaltyEntry& e : entries) {
    if (e.token >= 0 && static_cast<size_t>(e.token) < row.size()) {
      e.raw = row[e.token];
      row[e.token] = PenalizedLogit(e.raw, params, e);
    }
  }
}

void UnpenalizeRow(std::span<float> row, std::span<const PenaltyEntry> entries) {
  for (const PenaltyEntry& e : entries) {
    if (e.token >= 0 && static_cast<size_t>(e.token) < row.size()) row[e.token] = e.raw;
  }
}

RowLogprobs LogprobRow(std::span<const float> row, int32_t chosen) {
  RowLogprobs out;
  const float m = MaxIgnoringNaN(row);
  out.log_total = m;
  if (std::isfinite(m)) {
    // Lanes the compiler vectorizes: Exp's range checks as selects around ExpInRange.
    constexpr size_t kSumLanes = 16;
    std::array<float, kSumLanes> lane{};
    size_t i = 0;
    const auto term = [m](float v) {
      const float d = Sub(v, m);
      const bool kept = d >= kExpMin;  // false for NaN
      const float e = ExpInRange(kept ? d : 0.0F);
      return kept ? e : 0.0F;
    };
    for (; i + kSumLanes <= row.size(); i += kSumLanes) {
      for (size_t j = 0; j < kSumLanes; ++j) lane[j] = Add(lane[j], term(row[i + j]));
    }
    float total = 0;
    for (; i < row.size(); ++i) total = Add(total, term(row[i]));
    for (const float v : lane) total = Add(total, v);
    out.log_total = Add(m, std::log(total));
  }
  if (chosen >= 0 && static_cast<size_t>(chosen) < row.size()) {
    out.chosen = Sub(row[chosen], out.log_total);
  }
  const auto n = static_cast<int32_t>(row.size());
  const int32_t top = std::min(n, kMaxTopLogprobs);
  std::vector<uint64_t>& keys = ThreadScratch().heap;
  if (top < n) {
    TopKeys(row, top, ThreadScratch());
  } else {
    keys.clear();
    for (int32_t t = 0; t < n; ++t) keys.push_back(SortKey(row[t], t));
  }
  std::sort(keys.begin(), keys.end(), std::greater<>());
  std::fill(std::begin(out.top_ids), std::end(out.top_ids), -1);
  std::fill(std::begin(out.top_logprobs), std::end(out.top_logprobs), kNegInf);
  for (int32_t k = 0; k < top; ++k) {
    const auto id = static_cast<int32_t>(0xFFFFFFFFU - static_cast<uint32_t>(keys[k]));
    out.top_ids[k] = id;
    out.top_logprobs[k] = Sub(row[id], out.log_total);
  }
  return out;
}

namespace {

// f(row, its entries) for every row of x with penalty entries, rows in parallel.
template <typename Entry, typename F>
void ForPenalisedRows(ThreadPool& pool, const Tensor& x, const RowSampling* params, Entry* entries,
                      F&& f) {
  pool.ParallelFor(x.rows, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const RowSampling& p = params[i];
      if (p.penalty_end <= p.penalty_begin) continue;
      f(std::span<float>(static_cast<float*>(x.data) + i * x.row_stride,
                         static_cast<size_t>(x.cols)),
        p, std::span<Entry>(entries + p.penalty_begin, entries + p.penalty_end));
    }
  });
}

}  // namespace

void PenalizeRowsOp(ThreadPool& pool, const Tensor& x, const RowSampling* params,
                    PenaltyEntry* entries) {
  ForPenalisedRows(pool, x, params, entries,
                   [](std::span<float> row, const RowSampling& p, std::span<PenaltyEntry> e) {
                     PenalizeRow(row, p, e);
                   });
}

void UnpenalizeRowsOp(ThreadPool& pool, const Tensor& x, const RowSampling* params,
                      const PenaltyEntry* entries) {
  ForPenalisedRows(pool, x, params, entries,
                   [](std::span<float> row, const RowSampling&, std::span<const PenaltyEntry> e) {
                     UnpenalizeRow(row, e);
                   });
}

void LogprobRowsOp(ThreadPool& pool, const Tensor& x, std::span<const int32_t> rows,
                   const int32_t* ids, RowLogprobs* out) {
  pool.ParallelFor(
      static_cast<int64_t>(rows.size()),
      [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
          const int32_t r = rows[i];
          out[i] = LogprobRow(
              {static_cast<const float*>(x.data) + r * x.row_stride, static_cast<size_t>(x.cols)},
              ids[r]);
        }
      },
      1);
}

void SampleRowsOp(ThreadPool& pool, const Tensor& x, const RowSampling* params, int32_t* ids) {
  pool.ParallelFor(
      x.rows,
      [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
          ids[i] = SampleRow(
              {static_cast<const float*>(x.data) + i * x.row_stride, static_cast<size_t>(x.cols)},
              params[i]);
        }
      },
      1);
}

}  // namespace ringserve::kernels::cpu
