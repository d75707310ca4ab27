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

// Two passes, each split over rows and over its own outputs, so that one decoding row spreads
// over the pool too: the shrink's dot products (one a row and rank), then the expand's
// column blocks. Every value's arithmetic depends on its row alone.
void AddLoraRows(ThreadPool& pool, const Tensor& x, const LoraStack& lora, const int32_t* row_slots,
                 float* scratch, const Tensor& y) {
  const int64_t rank = lora.rank;
  const int64_t out = lora.out;
  for (int64_t i = 0; i < x.rows; ++i) RS_CHECK(row_slots[i] < lora.num_slots);
  pool.ParallelFor(
      x.rows * rank,
      [&](int64_t begin, int64_t end) {
        for (int64_t item = begin; item < end; ++item) {
          const int64_t i = item / rank;
          const int32_t slot = row_slots[i];
          if (slot < 0) continue;
          const auto* a = static_cast<const float*>(lora.a) + (slot * rank + item % rank) * lora.in;
          scratch[item] = Dot(RowPtr(x, i), a, lora.in);
        }
      },
      MinRows(lora.in));
  constexpr int64_t kBlock = 256;  // columns an expand item writes
  const int64_t blocks = (out + kBlock - 1) / kBlock;
  pool.ParallelFor(
      x.rows * blocks,
      [&](int64_t begin, int64_t end) {
        for (int64_t item = begin; item < end; ++item) {
          const int64_t i = item / blocks;
          const int32_t slot = row_slots[i];
          if (slot < 0) continue;
          const float* t = scratch + i * rank;
          const auto* b_t = static_cast<const float*>(lora.b_t) + slot * rank * out;
          float* row = RowPtr(y, i);
          const int64_t first = item % blocks * kBlock;
          const int64_t last = std::min(out, first + kBlock);
          int64_t c = first;
          for (; c + 32 <= last; c += 32) {  // four independent FMA chains
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
      },
      MinRows(rank * kBlock));
}

}  // namespace ringserve::kernels::cpu
