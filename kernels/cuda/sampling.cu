// Backend::SampleRows on the device: each row's token under the chain of
// kernels/row_sampling.h, picked without sorting the vocabulary; the penalties before it, and
// LogprobRows after it, which finds its top tokens with the same select.
//
// One block of kThreads threads per row. The row is read a few times (from L2 or memory), and
// each pass recomputes what it needs (s = logit * 1/T, the key, the weight: a multiply, a few
// integer operations and at most one Exp) rather than storing it:
//  1. m, the largest s (NaN ignored); under top-k the same pass counts the keys' top 8 bits.
//  2. top-k: a radix select of the top_k-th largest key, 8 bits a pass from the top: each
//     pass counts the next digit of the keys that match the digits chosen so far, and the
//     digit where the count from 255 down reaches the remaining rank is chosen. It stops as
//     soon as the chosen digit holds one key.
//  3. top-p: the same select over the kept tokens of weight > 0, their weights summed per
//     digit in place of counts; its first pass also gives the total that NucleusMass cuts.
//  4. the draw: each warp sums the kept weights of a contiguous slice of the row; the warp
//     sums locate the target's slice, and block-wide scans of that slice find the token.
// Everything summed is an integer (counts, and weights in uint64 fixed point), so shared
// atomics and any order of reduction give the same bits: the CPU backend and the emulation
// (tests/unit/kernels/cuda_emu) pick the same token as the device.
#include <cstdint>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_dtype.cuh"
#include "kernels/cuda/cuda_namespace.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/row_logprobs.h"
#include "kernels/row_sampling.h"

namespace ringserve::kernels::RS_CUDA_NS {
namespace {

// Two blocks an SM (the kernel needs under 64 registers a thread), so one block's barriers and
// digit choices overlap the other's loads.
constexpr int kThreads = 512;
constexpr int kWarps = kThreads / 32;
constexpr int kDigits = 256;
// Copies of the histogram bins, lane % kCopies adding to its own: the top digits of a row's
// keys take few values, and lanes of a warp adding to one address serialize 4 ways, not 32.
constexpr int kCopies = 8;
// The draw's block-wide scan: consecutive columns per thread, and columns per step.
constexpr int kDrawPerThread = 8;
constexpr int kDrawChunk = kThreads * kDrawPerThread;
// Column indices (plus a step of a loop) stay within int.
constexpr int64_t kMaxCols = 0x7FFFFFFF - 4 * kDrawChunk;

// The type of CUDA's 64-bit atomicAdd (uint64_t is unsigned long on LP64 hosts).
using Mass = unsigned long long;  // NOLINT(google-runtime-int)

struct SampleShared {
  unsigned count[kDigits][kCopies];  // keys per digit (under top-p: of weight > 0)
  Mass mass[kDigits][kCopies];       // weight per digit (top-p)
  // The bins summed over the copies, read by every warp to choose a digit.
  unsigned merged_count[kDigits];
  Mass merged_mass[kDigits];
  float warp_max[kWarps];
  // [0]: the draw's range sums; [1], [2]: its chunk scans, alternately, so a warp still
  // reading one chunk's sums is never overwritten by a warp already on the next.
  Mass warp_sums[3][kWarps];
};

// 64-bit shuffles as two 32-bit ones.
__device__ __forceinline__ uint64_t ShflU64(uint64_t v, int lane) {
  const uint32_t lo = __shfl_sync(kFullMask, static_cast<uint32_t>(v), lane);
  const uint32_t hi = __shfl_sync(kFullMask, static_cast<uint32_t>(v >> 32), lane);
  return static_cast<uint64_t>(hi) << 32 | lo;
}
__device__ __forceinline__ uint64_t ShflXorU64(uint64_t v, int lane_mask) {
  const uint32_t lo = __shfl_xor_sync(kFullMask, static_cast<uint32_t>(v), lane_mask);
  const uint32_t hi = __shfl_xor_sync(kFullMask, static_cast<uint32_t>(v >> 32), lane_mask);
  return static_cast<uint64_t>(hi) << 32 | lo;
}

__device__ __forceinline__ uint64_t WarpSumU64(uint64_t v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) v += ShflXorU64(v, offset);
  return v;
}

// The sum of v over lanes 0..lane.
__device__ __forceinline__ uint64_t WarpInclusiveSum(uint64_t v) {
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int offset = 1; offset < 32; offset *= 2) {
    const uint64_t other = ShflU64(v, lane >= offset ? lane - offset : lane);
    if (lane >= offset) v += other;
  }
  return v;
}

// The first lane whose `pred` holds, 32 when none does (the same in every lane).
__device__ __forceinline__ int FirstLane(bool pred) {
  int lane = pred ? static_cast<int>(threadIdx.x % 32) : 32;
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) {
    lane = min(lane, __shfl_xor_sync(kFullMask, lane, offset));
  }
  return lane;
}

// Calls f(c, row[c]) for this thread's columns, threadIdx.x + i * kThreads, with kUnroll
// loads in flight per thread.
constexpr int kUnroll = 8;
template <typename F>
__device__ __forceinline__ void ForThreadColumns(const float* row, int cols, F&& f) {
  int c = threadIdx.x;
  for (; c < cols - (kUnroll - 1) * kThreads; c += kUnroll * kThreads) {
    float v[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) v[u] = row[c + u * kThreads];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) f(c + u * kThreads, v[u]);
  }
  for (; c < cols; c += kThreads) f(c, row[c]);
}

__device__ __forceinline__ void AddCount(SampleShared& sh, uint32_t digit) {
  atomicAdd(&sh.count[digit][threadIdx.x % kCopies], 1U);
}
__device__ __forceinline__ void AddMass(SampleShared& sh, uint32_t digit, uint64_t weight) {
  const int copy = threadIdx.x % kCopies;
  atomicAdd(&sh.count[digit][copy], 1U);
  atomicAdd(&sh.mass[digit][copy], static_cast<Mass>(weight));
}

// Each thread keeps the first index of its largest value over a strided slice; the pairs then
// reduce by (larger value, else smaller index), which is the plain scan's answer whatever the
// order of the reduction and the block size. Every thread starts from index 0, so a NaN never
// wins except at index 0 (nothing compares greater than it).
__device__ __forceinline__ void KeepBetter(float& value, int& index, float other_value,
                                           int other_index) {
  if (other_value > value || (other_value == value && other_index < index)) {
    value = other_value;
    index = other_index;
  }
}

// Greedy: the first index of the row's largest value. Call with all kBlockThreads threads of
// the block, at most once per kernel (its shared arrays are not guarded for reuse); thread 0
// returns the index, the others a partial.
template <int kBlockThreads>
__device__ __forceinline__ int BlockArgmax(const float* row, int cols) {
  constexpr int kBlockWarps = kBlockThreads / 32;
  float value = row[0];
  int index = 0;
  for (int c = threadIdx.x; c < cols; c += kBlockThreads) KeepBetter(value, index, row[c], c);
  for (int offset = 16; offset > 0; offset /= 2) {
    KeepBetter(value, index, __shfl_xor_sync(kFullMask, value, offset),
               __shfl_xor_sync(kFullMask, index, offset));
  }
  __shared__ float warp_values[kBlockWarps];
  __shared__ int warp_indices[kBlockWarps];
  const int lane = threadIdx.x % 32;
  if (lane == 0) {
    warp_values[threadIdx.x / 32] = value;
    warp_indices[threadIdx.x / 32] = index;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < kBlockWarps; ++w) {
      KeepBetter(value, index, warp_values[w], warp_indices[w]);
    }
  }
  return index;
}

// One round of a radix select: the digit chosen, from the histogram of the keys that matched
// the digits chosen before.
struct Choice {
  uint32_t digit = 0;
  uint32_t count = 0;  // keys with that digit
  uint64_t above = 0;  // metric of the higher digits
  uint64_t total = 0;  // metric of all digits
  uint64_t want = 0;   // the rank the digit was chosen for
};

// After a histogram pass (call with every thread): sums the copies (which clears them for the
// next pass), then every warp alike finds the digit at which the metric (weight when by_mass,
// else the count), summed from digit 255 down, first reaches want_of(total) (1 <= it <= total).
template <typename Want>
__device__ Choice ChooseDigit(SampleShared& sh, bool by_mass, Want want_of) {
  __syncthreads();  // the pass's additions are in
  if (threadIdx.x < kDigits) {
    const int d = threadIdx.x;
    uint32_t count = 0;
    uint64_t mass = 0;
#pragma unroll
    for (int k = 0; k < kCopies; ++k) {
      count += sh.count[d][k];
      mass += sh.mass[d][k];
      sh.count[d][k] = 0;
      sh.mass[d][k] = 0;
    }
    sh.merged_count[d] = count;
    sh.merged_mass[d] = mass;
  }
  __syncthreads();
  // Lane l holds digits 255 - 8l - j, j < 8: the lanes in descending digit order.
  constexpr int kPerLane = kDigits / 32;
  const int lane = threadIdx.x % 32;
  uint64_t metric[kPerLane];
  uint64_t lane_sum = 0;
#pragma unroll
  for (int j = 0; j < kPerLane; ++j) {
    const int d = kDigits - 1 - kPerLane * lane - j;
    metric[j] = by_mass ? static_cast<uint64_t>(sh.merged_mass[d]) : sh.merged_count[d];
    lane_sum += metric[j];
  }
  const uint64_t inclusive = WarpInclusiveSum(lane_sum);
  Choice choice;
  choice.total = ShflU64(inclusive, 31);
  choice.want = want_of(choice.total);
  const int owner = min(FirstLane(inclusive >= choice.want), 31);
  uint64_t above = inclusive - lane_sum;
  uint32_t digit = 0;
  if (lane == owner) {
#pragma unroll
    for (int j = 0; j < kPerLane; ++j) {
      if (above + metric[j] >= choice.want) {
        digit = kDigits - 1 - kPerLane * lane - j;
        break;
      }
      above += metric[j];
    }
  }
  choice.digit = __shfl_sync(kFullMask, digit, owner);
  choice.above = ShflU64(above, owner);
  choice.count = sh.merged_count[choice.digit];
  return choice;
}

// Bits of a key above digit `shift` (the digits already chosen).
__device__ __forceinline__ uint64_t HighBits(int shift) {
  return shift >= 56 ? 0 : ~uint64_t{0} << (shift + 8);
}

// The floor of the keys SortKey(row[c] * inv_t, c) of the row's `rank` largest (1 <= rank <
// cols): those keys, and no other, are >= it. A radix select of the rank-th largest key, 8
// bits a pass from the top; when the chosen digit holds one key, the prefix chosen so far (the
// low bits 0) is as good a floor as that key, and the select stops. The caller has counted
// every key's first digit (key >> 56) with AddCount.
__device__ uint64_t TopKeysFloor(SampleShared& sh, const float* row, int cols, float inv_t,
                                 uint64_t rank) {
  uint64_t prefix = 0;
  for (int shift = 56;; shift -= 8) {
    if (shift != 56) {
      const uint64_t high = HighBits(shift);
      ForThreadColumns(row, cols, [&](int c, float v) {
        const uint64_t key = SortKey(Mul(v, inv_t), c);
        if ((key & high) == prefix) AddCount(sh, static_cast<uint32_t>(key >> shift & 0xFF));
      });
    }
    const Choice choice = ChooseDigit(sh, false, [&](uint64_t) { return rank; });
    prefix |= static_cast<uint64_t>(choice.digit) << shift;
    rank -= choice.above;
    if (choice.count == 1 || shift == 0) return prefix;
  }
}

// Zeroes the histogram bins before a select's first pass (then __syncthreads).
__device__ __forceinline__ void ClearBins(SampleShared& sh) {
  for (int i = threadIdx.x; i < kDigits * kCopies; i += kThreads) {
    sh.count[i / kCopies][i % kCopies] = 0;
    sh.mass[i / kCopies][i % kCopies] = 0;
  }
}

// The largest of every thread's `v` (NaN ignored), in every thread. At most once per kernel:
// a second call could overwrite sh.warp_max while a slow warp still reads the first's.
__device__ __forceinline__ float BlockMax(SampleShared& sh, float v) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  v = WarpMax(v);
  if (lane == 0) sh.warp_max[warp] = v;
  __syncthreads();
  return WarpMax(lane < kWarps ? sh.warp_max[lane] : kNegInf);
}

__global__ void __launch_bounds__(kThreads, 2)
    SampleRowsKernel(const float* x, int64_t stride, int cols, const RowSampling* params,
                     int32_t* ids) {
  __shared__ SampleShared sh;
  const float* row = x + blockIdx.x * stride;
  const RowSampling p = params[blockIdx.x];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const auto greedy = [&] {
    const int index = BlockArgmax<kThreads>(row, cols);
    if (threadIdx.x == 0) ids[blockIdx.x] = index;
  };
  if (!(p.temperature > 0.0F)) {
    greedy();
    return;
  }
  const float inv_t = InverseTemperature(p.temperature);
  const bool top_k = p.top_k > 0 && p.top_k < cols;

  ClearBins(sh);
  __syncthreads();

  // 1. m (a max is exact in any order), and top-k's first digit, which needs no m.
  float m = kNegInf;
  ForThreadColumns(row, cols, [&](int c, float v) {
    const float s = Mul(v, inv_t);
    m = MaxF(m, s);  // a NaN never replaces m
    if (top_k) AddCount(sh, static_cast<uint32_t>(SortKey(s, c) >> 56));
  });
  m = BlockMax(sh, m);
  if (!(m > kNegInf && m < -kNegInf)) {  // all -inf or NaN, or an infinite s
    greedy();
    return;
  }

  // 2. top-k.
  const uint64_t floor_k = top_k ? TopKeysFloor(sh, row, cols, inv_t, p.top_k) : 0;

  // 3. top-p over the top-k tokens. Only tokens of weight > 0 take part: the cut key
  // (mass above it < want <= mass with it) always weighs > 0, so the prefix chosen when one
  // such token is left cuts the same weight as that key (the tokens of weight 0 on either
  // side of it never decide the draw).
  uint64_t floor = floor_k;
  if (p.top_p < 1.0F) {
    uint64_t prefix = 0, rank = 0;
    for (int shift = 56;; shift -= 8) {
      const uint64_t high = HighBits(shift);
      ForThreadColumns(row, cols, [&](int c, float v) {
        const float s = Mul(v, inv_t);
        const uint64_t key = SortKey(s, c);
        if ((key & high) != prefix || key < floor_k) return;
        const uint64_t weight = SampleWeight(s, m);
        if (weight != 0) AddMass(sh, static_cast<uint32_t>(key >> shift & 0xFF), weight);
      });
      // The top token weighs 2^40, so total > 0, and NucleusMass is in [1, total].
      const Choice choice = ChooseDigit(sh, true, [&](uint64_t total) {
        return shift != 56 ? rank : NucleusMass(p.top_p, total);
      });
      if (shift == 56 && choice.want == choice.total) break;  // every token of weight stays
      prefix |= static_cast<uint64_t>(choice.digit) << shift;
      rank = choice.want - choice.above;
      if (choice.count == 1 || shift == 0) {
        floor = prefix > floor ? prefix : floor;
        break;
      }
    }
  }

  // 4. The draw. A token's kept weight (0 when cut).
  const bool min_p = p.min_p > 0.0F;
  const auto kept_weight = [&](int c, float v) -> uint64_t {
    const float s = Mul(v, inv_t);
    if (floor != 0 && SortKey(s, c) < floor) return 0;
    const uint64_t weight = SampleWeight(s, m);
    return weight != 0 && min_p && BelowMinP(s, m, p.min_p) ? 0 : weight;
  };
  // Warp w sums the columns [w * range, (w + 1) * range), 32 consecutive ones a step.
  static_assert(kWarps <= 32, "the warps' sums are scanned by one warp");
  const int range = ((cols + kWarps - 1) / kWarps + 31) / 32 * 32;
  const int lo = min(cols, warp * range), hi = min(cols, lo + range);
  uint64_t sum = 0;
  int c = lo + lane;
  for (; c < hi - 96; c += 128) {
    const float v0 = row[c], v1 = row[c + 32], v2 = row[c + 64], v3 = row[c + 96];
    sum += kept_weight(c, v0) + kept_weight(c + 32, v1) + kept_weight(c + 64, v2) +
           kept_weight(c + 96, v3);
  }
  for (; c < hi; c += 32) sum += kept_weight(c, row[c]);
  sum = WarpSumU64(sum);
  if (lane == 0) sh.warp_sums[0][warp] = sum;
  __syncthreads();
  // Every warp alike: the total, the target, and the range that holds it.
  const uint64_t range_sum = lane < kWarps ? sh.warp_sums[0][lane] : 0;
  const uint64_t range_end = WarpInclusiveSum(range_sum);
  const uint64_t target = DrawTarget(p.uniform, ShflU64(range_end, 31));
  const int owner = min(FirstLane(range_end > target), kWarps - 1);
  uint64_t t = target - ShflU64(range_end - range_sum, owner);  // within the owner's range
  const int begin = min(cols, owner * range), end = min(cols, begin + range);
  // The owner's range, kDrawChunk columns a step, kDrawPerThread consecutive ones a thread:
  // one block-wide exclusive scan of the threads' sums finds the thread whose columns hold t.
  int parity = 1;
  for (int base = begin; base < end; base += kDrawChunk, parity = 3 - parity) {
    const int first = base + kDrawPerThread * static_cast<int>(threadIdx.x);
    uint64_t weights[kDrawPerThread];
    uint64_t mine = 0;
#pragma unroll
    for (int j = 0; j < kDrawPerThread; ++j) {
      weights[j] = first + j < end ? kept_weight(first + j, row[first + j]) : 0;
      mine += weights[j];
    }
    const uint64_t in_warp = WarpInclusiveSum(mine);
    if (lane == 31) sh.warp_sums[parity][warp] = in_warp;
    __syncthreads();
    const uint64_t warp_sum = lane < kWarps ? sh.warp_sums[parity][lane] : 0;
    const uint64_t warp_end = WarpInclusiveSum(warp_sum);
    const uint64_t chunk_sum = ShflU64(warp_end, 31);
    if (t < chunk_sum) {
      const uint64_t before = ShflU64(warp_end - warp_sum, warp) + in_warp - mine;
      if (before <= t && t < before + mine) {
        uint64_t running = before;
#pragma unroll
        for (int j = 0; j < kDrawPerThread; ++j) {
          running += weights[j];
          if (running > t) {
            ids[blockIdx.x] = first + j;
            break;
          }
        }
      }
      return;
    }
    t -= chunk_sum;
  }
  // Not reached: the ranges' sums add up to the kept weight, which is > target. As the CPU.
  if (threadIdx.x == 0) ids[blockIdx.x] = cols - 1;
}

// One block a row; a row's tokens are distinct, so no two threads write one logit.
constexpr int kPenaltyThreads = 256;

// f(logit, entry index, entry) for the entries of block blockIdx.x's row inside it.
template <typename F>
__device__ __forceinline__ void ForRowEntries(float* x, int64_t stride, int cols,
                                              const RowSampling& p, const PenaltyEntry* entries,
                                              F&& f) {
  float* row = x + blockIdx.x * stride;
  for (int e = p.penalty_begin + static_cast<int>(threadIdx.x); e < p.penalty_end;
       e += kPenaltyThreads) {
    const PenaltyEntry entry = entries[e];
    if (entry.token >= 0 && entry.token < cols) f(row[entry.token], e, entry);
  }
}

__global__ void __launch_bounds__(kPenaltyThreads)
    PenalizeRowsKernel(float* x, int64_t stride, int cols, const RowSampling* params,
                       PenaltyEntry* entries) {
  const RowSampling& p = params[blockIdx.x];
  ForRowEntries(x, stride, cols, p, entries, [&](float& logit, int e, const PenaltyEntry& entry) {
    entries[e].raw = logit;
    logit = PenalizedLogit(logit, p, entry);
  });
}

__global__ void __launch_bounds__(kPenaltyThreads)
    UnpenalizeRowsKernel(float* x, int64_t stride, int cols, const RowSampling* params,
                         const PenaltyEntry* entries) {
  ForRowEntries(x, stride, cols, params[blockIdx.x], entries,
                [](float& logit, int, const PenaltyEntry& entry) { logit = entry.raw; });
}

// One block of kThreads per listed row: the max, a sum of exponentials in a fixed order (each
// thread's columns in order, then fixed shuffle trees: the same bits whatever the batch), and
// the top tokens by TopKeysFloor, gathered and ordered by one thread.
__global__ void __launch_bounds__(kThreads, 2)
    LogprobRowsKernel(const float* x, int64_t x_rows, int64_t stride, int cols, const int32_t* rows,
                      const int32_t* ids, RowLogprobs* out) {
  __shared__ SampleShared sh;
  __shared__ float warp_sums[kWarps];
  __shared__ uint64_t top_keys[kMaxTopLogprobs];
  __shared__ unsigned num_top;
  const int r = rows[blockIdx.x];
  if (r < 0 || r >= x_rows) __trap();  // the caller validated the rows: this is a bug
  const float* row = x + r * stride;
  const int top = min(cols, kMaxTopLogprobs);
  const bool select = top < cols;
  ClearBins(sh);
  if (threadIdx.x == 0) num_top = 0;
  __syncthreads();

  float m = kNegInf;
  ForThreadColumns(row, cols, [&](int c, float v) {
    m = MaxF(m, v);
    if (select) AddCount(sh, static_cast<uint32_t>(SortKey(v, c) >> 56));
  });
  m = BlockMax(sh, m);
  float log_total = m;
  if (m > kNegInf && m < -kNegInf) {
    float sum = 0;
    ForThreadColumns(row, cols, [&](int, float v) {
      const float d = Sub(v, m);
      if (d >= kExpMin) sum = Add(sum, ExpInRange(d));  // Exp's 0 below; NaN takes no part
    });
    sum = WarpSum(sum);
    if (threadIdx.x % 32 == 0) warp_sums[threadIdx.x / 32] = sum;
    __syncthreads();
    const int lane = threadIdx.x % 32;
    log_total = Add(m, logf(WarpSum(lane < kWarps ? warp_sums[lane] : 0.0F)));
  }

  const uint64_t floor = select ? TopKeysFloor(sh, row, cols, 1.0F, top) : 0;
  ForThreadColumns(row, cols, [&](int c, float v) {
    const uint64_t key = SortKey(v, c);
    if (key < floor) return;
    const unsigned slot = atomicAdd(&num_top, 1U);
    if (slot < kMaxTopLogprobs) top_keys[slot] = key;  // exactly `top` keys reach here
  });
  __syncthreads();
  if (threadIdx.x != 0) return;
  const int n = min(static_cast<int>(num_top), top);
  for (int i = 1; i < n; ++i) {  // insertion sort, descending
    const uint64_t key = top_keys[i];
    int j = i;
    for (; j > 0 && top_keys[j - 1] < key; --j) top_keys[j] = top_keys[j - 1];
    top_keys[j] = key;
  }
  RowLogprobs& o = out[blockIdx.x];
  for (int k = 0; k < kMaxTopLogprobs; ++k) {
    const int id = k < n ? static_cast<int>(0xFFFFFFFFU - static_cast<uint32_t>(top_keys[k])) : -1;
    o.top_ids[k] = id;
    o.top_logprobs[k] = id >= 0 ? Sub(row[id], log_total) : kNegInf;
  }
  const int32_t chosen = ids[r];
  o.chosen = chosen >= 0 && chosen < cols ? Sub(row[chosen], log_total) : 0.0F;
  o.log_total = log_total;
}

}  // namespace

namespace {

void CheckPenaltyArgs(const Mat& x, const RowSampling* params, const PenaltyEntry* entries) {
  RS_CHECK(x.data != nullptr || x.rows == 0);
  RS_CHECK(x.dtype == DType::kF32 && x.cols > 0 && x.cols <= 0x7FFFFFFF && x.stride >= x.cols);
  RS_CHECK(x.rows == 0 || (x.rows <= 0x7FFFFFFF && params != nullptr && entries != nullptr));
}

}  // namespace

void LaunchPenalizeRows(cudaStream_t stream, const Mat& x, const RowSampling* params,
                        PenaltyEntry* entries) {
  CheckPenaltyArgs(x, params, entries);
  if (x.rows == 0) return;
  RS_LAUNCH(PenalizeRowsKernel, static_cast<unsigned>(x.rows), kPenaltyThreads, 0, stream,
            static_cast<float*>(x.data), x.stride, static_cast<int>(x.cols), params, entries);
  RS_CUDA_CHECK_LAUNCH();
}

void LaunchUnpenalizeRows(cudaStream_t stream, const Mat& x, const RowSampling* params,
                          const PenaltyEntry* entries) {
  CheckPenaltyArgs(x, params, entries);
  if (x.rows == 0) return;
  RS_LAUNCH(UnpenalizeRowsKernel, static_cast<unsigned>(x.rows), kPenaltyThreads, 0, stream,
            static_cast<float*>(x.data), x.stride, static_cast<int>(x.cols), params, entries);
  RS_CUDA_CHECK_LAUNCH();
}

void LaunchLogprobRows(cudaStream_t stream, const Mat& x, const int32_t* rows, int32_t num_rows,
                       const int32_t* ids, RowLogprobs* out) {
  RS_CHECK(x.data != nullptr || x.rows == 0);
  RS_CHECK(x.dtype == DType::kF32 && x.cols > 0 && x.cols <= kMaxCols && x.stride >= x.cols);
  RS_CHECK(num_rows >= 0);
  if (num_rows == 0) return;
  RS_CHECK(rows != nullptr && ids != nullptr && out != nullptr);
  RS_LAUNCH(LogprobRowsKernel, static_cast<unsigned>(num_rows), kThreads, 0, stream,
            static_cast<const float*>(x.data), x.rows, x.stride, static_cast<int>(x.cols), rows,
            ids, out);
  RS_CUDA_CHECK_LAUNCH();
}

void LaunchSampleRows(cudaStream_t stream, const Mat& x, const RowSampling* params, int32_t* ids) {
  RS_CHECK(x.data != nullptr || x.rows == 0);
  RS_CHECK(x.rows >= 0 && x.cols >= 0 && x.stride >= x.cols);
  RS_CHECK(x.dtype == DType::kF32 && x.cols > 0 && x.cols <= kMaxCols);
  if (x.rows == 0) return;
  RS_CHECK(x.rows <= 0x7FFFFFFF && params != nullptr && ids != nullptr);
  RS_LAUNCH(SampleRowsKernel, static_cast<unsigned>(x.rows), kThreads, 0, stream,
            static_cast<const float*>(x.data), x.stride, static_cast<int>(x.cols), params, ids);
  RS_CUDA_CHECK_LAUNCH();
}

}  // namespace ringserve::kernels::RS_CUDA_NS
