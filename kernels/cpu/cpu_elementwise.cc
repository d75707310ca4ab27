// Row-wise ops of the CPU backend: RMSNorm (plain and fused with the residual add),
// SwiGLU's SiLU-mul, row gathers and LoRA adapters' deltas. Each row runs the same fixed
// instruction sequence whatever the batch, so results are batch invariant.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "common/check.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/simd.h"

namespace ringserve::kernels::cpu {
namespace {

// Rows smaller than this many elements per thread are not worth a wake-up.
constexpr int64_t kMinElementsPerChunk = 16384;

int64_t MinRows(int64_t cols) {
  return std::max<int64_t>(1, kMinElementsPerChunk / std::max<int64_t>(1, cols));
}

float* RowPtr(const Tensor& t, int64_t i) { return static_cast<float*>(t.data) + i * t.row_stride; }

float SumOfSquares(const float* x, int64_t n) {
  __m256 acc = _mm256_setzero_ps();
  int64_t c = 0;
  for (; c + 8 <= n; c += 8) {
    const __m256 v = _mm256_loadu_ps(x + c);
    acc = _mm256_fmadd_ps(v, v, acc);
  }
  float sum = HorizontalSum(acc);
  for (; c < n; ++c) sum = std::fma(x[c], x[c], sum);
  return sum;
}

// Four independent FMA chains, summed in a fixed order.
float Dot(const float* a, const float* b, int64_t n) {
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                   _mm256_setzero_ps()};
  int64_t c = 0;
  for (; c + 32 <= n; c += 32) {
    for (int64_t k = 0; k < 4; ++k) {
      acc[k] =
          _mm256_fmadd_ps(_mm256_loadu_ps(a + c + 8 * k), _mm256_loadu_ps(b + c + 8 * k), acc[k]);
    }
  }
  for (; c + 8 <= n; c += 8) {
    acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(a + c), _mm256_loadu_ps(b + c), acc[0]);
  }
  float sum =
      HorizontalSum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
  for (; c < n; ++c) sum = std::fma(a[c], b[c], sum);
  return sum;
}

void NormalizeRow(const float* x, const float* weight, float eps, int64_t n, float* out) {
  const float scale = 1.0F / std::sqrt(SumOfSquares(x, n) / static_cast<float>(n) + eps);
  const __m256 vscale = _mm256_set1_ps(scale);
  int64_t c = 0;
  for (; c + 8 <= n; c += 8) {
    const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + c), vscale);
    _mm256_storeu_ps(out + c, _mm256_mul_ps(v, _mm256_loadu_ps(weight + c)));
  }
  for (; c < n; ++c) out[c] = (x[c] * scale) * weight[c];
}

// silu(g) * u = g * u / (1 + exp(-g)).
__m256 SiluMul8(__m256 g, __m256 u) {
  const __m256 one = _mm256_set1_ps(1.0F);
  const __m256 denom = _mm256_add_ps(one, Exp(_mm256_sub_ps(_mm256_setzero_ps(), g)));
  return _mm256_div_ps(_mm256_mul_ps(g, u), denom);
}

}  // namespace

void RmsNormRows(ThreadPool& pool, const Tensor& x, const float* weight, float eps,
                 const Tensor& out) {
  pool.ParallelFor(
      x.rows,
      [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
          NormalizeRow(RowPtr(x, i), weight, eps, x.cols, RowPtr(out, i));
        }
      },
      MinRows(x.cols));
}

void AddRmsNormRows(ThreadPool& pool, const Tensor& residual, const Tensor& delta,
                    const float* weight, float eps, const Tensor& out) {
  pool.ParallelFor(
      residual.rows,
      [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
          float* r = RowPtr(residual, i);
          const float* d = RowPtr(delta, i);
          for (int64_t c = 0; c < residual.cols; ++c) r[c] += d[c];
          NormalizeRow(r, weight, eps, residual.cols, RowPtr(out, i));
        }
      },
      MinRows(residual.cols));
}

void AddBiasRows(ThreadPool& pool, const Tensor& x, const float* bias) {
  pool.ParallelFor(
      x.rows,
      [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
          float* row = RowPtr(x, i);
          for (int64_t c = 0; c < x.cols; ++c) row[c] += bias[c];
        }
      },
      MinRows(x.cols));
}

void HeadRmsNormRows(ThreadPool& pool, const Tensor& x, int64_t head_dim, const float* weight,
                     float eps) {
  pool.ParallelFor(
      x.rows,
      [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
          float* row = RowPtr(x, i);
          // In place: NormalizeRow reads the whole group before it writes.
          for (int64_t h = 0; h < x.cols; h += head_dim) {
            NormalizeRow(row + h, weight, eps, head_dim, row + h);
          }
        }
      },
      MinRows(x.cols));
}

void SiluMulRows(ThreadPool& pool, const Tensor& gate_up, const Tensor& out) {
  const int64_t n = out.cols;
  pool.ParallelFor(
      out.rows,
      [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
          const float* g = RowPtr(gate_up, i);
          const float* u = g + n;
          float* o = RowPtr(out, i);
          int64_t c = 0;
          for (; c + 8 <= n; c += 8) {
            _mm256_storeu_ps(o + c, SiluMul8(_mm256_loadu_ps(g + c), _mm256_loadu_ps(u + c)));
          }
          if (c < n) {  // the same vector code on a zero-padded tail
            const int rest = static_cast<int>(n - c);
            StorePartial(o + c, rest, SiluMul8(LoadPartial(g + c, rest), LoadPartial(u + c, rest)));
          }
        }
      },
      MinRows(n));
}

void GatherRowsOp(ThreadPool& pool, const Tensor& x, const int32_t* rows, const Tensor& out) {
  pool.ParallelFor(
      out.rows,
      [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
          std::memcpy(RowPtr(out, i), RowPtr(x, rows[i]), sizeof(float) * out.cols);
        }
      },
      MinRows(out.cols));
}

namespace {

// Rows a LoRA pass takes together: in a prefill chunk they share an adapter, whose A and B
// rows are then read once for all of them instead of once a row.
constexpr int64_t kLoraRowGroup = 4;
constexpr int64_t kLoraBlock = 256;  // columns an expand item writes

// y[i, first..last) += t_i B for one row: four independent FMA chains of 8 columns, each
// value's chain over the ranks in order.
void ExpandRow(const float* t, const float* b_t, int64_t rank, int64_t out, int64_t first,
               int64_t last, float* row) {
  int64_t c = first;
  for (; c + 32 <= last; c += 32) {
    __m256 acc[4];
    for (int64_t k = 0; k < 4; ++k) acc[k] = _mm256_loadu_ps(row + c + 8 * k);
    for (int64_t r = 0; r < rank; ++r) {
      const __m256 tr = _mm256_set1_ps(t[r]);
      const float* b = b_t + r * out + c;
      for (int64_t k = 0; k < 4; ++k) {
        acc[k] = _mm256_fmadd_ps(tr, _mm256_loadu_ps(b + 8 * k), acc[k]);
      }
    }
    for (int64_t k = 0; k < 4; ++k) _mm256_storeu_ps(row + c + 8 * k, acc[k]);
  }
  for (; c < last; ++c) {
    for (int64_t r = 0; r < rank; ++r) row[c] = std::fma(t[r], b_t[r * out + c], row[c]);
  }
}

// The same for kLoraRowGroup rows on one adapter, 16 columns at a time: each B load serves
// every row. A value's chain is the one ExpandRow gives it, so its bits are too.
void ExpandRowGroup(const float* t, const float* b_t, int64_t rank, int64_t out, int64_t first,
                    int64_t last, float* const* rows) {
  int64_t c = first;
  for (; c + 16 <= last; c += 16) {
    __m256 acc[kLoraRowGroup][2];
    for (int64_t g = 0; g < kLoraRowGroup; ++g) {
      for (int64_t k = 0; k < 2; ++k) acc[g][k] = _mm256_loadu_ps(rows[g] + c + 8 * k);
    }
    for (int64_t r = 0; r < rank; ++r) {
      const float* b = b_t + r * out + c;
      const __m256 b0 = _mm256_loadu_ps(b);
      const __m256 b1 = _mm256_loadu_ps(b + 8);
      for (int64_t g = 0; g < kLoraRowGroup; ++g) {
        const __m256 tr = _mm256_set1_ps(t[g * rank + r]);
        acc[g][0] = _mm256_fmadd_ps(tr, b0, acc[g][0]);
        acc[g][1] = _mm256_fmadd_ps(tr, b1, acc[g][1]);
      }
    }
    for (int64_t g = 0; g < kLoraRowGroup; ++g) {
      for (int64_t k = 0; k < 2; ++k) _mm256_storeu_ps(rows[g] + c + 8 * k, acc[g][k]);
    }
  }
  for (int64_t g = 0; g < kLoraRowGroup; ++g) {
    ExpandRow(t + g * rank, b_t, rank, out, c, last, rows[g]);
  }
}

}  // namespace

// Two passes, each split over groups of rows and over its own outputs, so that one decoding
// row spreads over the pool too: the shrink's dot products (one a row and rank, a group's
// rows one after another so that the A row they share is read from L1), then the expand's
// column blocks (a group whose rows share an adapter in registers, ExpandRowGroup). Every
// value's arithmetic depends on its row alone: the same bits in any batch.
void AddLoraRows(ThreadPool& pool, const Tensor& x, const LoraStack& lora, const int32_t* row_slots,
                 float* scratch, const Tensor& y) {
  const int64_t rank = lora.rank;
  const int64_t out = lora.out;
  for (int64_t i = 0; i < x.rows; ++i) RS_CHECK(row_slots[i] < lora.num_slots);
  const int64_t groups = (x.rows + kLoraRowGroup - 1) / kLoraRowGroup;
  pool.ParallelFor(
      groups * rank,
      [&](int64_t begin, int64_t end) {
        for (int64_t item = begin; item < end; ++item) {
          const int64_t r = item % rank;
          const int64_t first = item / rank * kLoraRowGroup;
          for (int64_t i = first; i < std::min(x.rows, first + kLoraRowGroup); ++i) {
            const int32_t slot = row_slots[i];
            if (slot < 0) continue;
            const auto* a = static_cast<const float*>(lora.a) + (slot * rank + r) * lora.in;
            scratch[i * rank + r] = Dot(RowPtr(x, i), a, lora.in);
          }
        }
      },
      MinRows(lora.in * kLoraRowGroup));
  const int64_t blocks = (out + kLoraBlock - 1) / kLoraBlock;
  pool.ParallelFor(
      groups * blocks,
      [&](int64_t begin, int64_t end) {
        for (int64_t item = begin; item < end; ++item) {
          const int64_t first_row = item / blocks * kLoraRowGroup;
          const int64_t first = item % blocks * kLoraBlock;
          const int64_t last = std::min(out, first + kLoraBlock);
          const int64_t end_row = std::min(x.rows, first_row + kLoraRowGroup);
          const int32_t slot = row_slots[first_row];
          const bool shared = slot >= 0 && end_row - first_row == kLoraRowGroup &&
                              std::all_of(row_slots + first_row, row_slots + end_row,
                                          [&](int32_t s) { return s == slot; });
          if (shared) {
            float* rows[kLoraRowGroup];
            for (int64_t g = 0; g < kLoraRowGroup; ++g) rows[g] = RowPtr(y, first_row + g);
            ExpandRowGroup(scratch + first_row * rank,
                           static_cast<const float*>(lora.b_t) + slot * rank * out, rank, out,
                           first, last, rows);
            continue;
          }
          for (int64_t i = first_row; i < end_row; ++i) {
            if (row_slots[i] < 0) continue;
            ExpandRow(scratch + i * rank,
                      static_cast<const float*>(lora.b_t) + row_slots[i] * rank * out, rank, out,
                      first, last, RowPtr(y, i));
          }
        }
      },
      MinRows(rank * kLoraBlock * kLoraRowGroup));
}

}  // namespace ringserve::kernels::cpu
