#include "kernels/cpu/roofline.h"

#include <cblas.h>
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <vector>

#include "kernels/cpu/simd.h"
#include "kernels/cpu/thread_pool.h"

namespace ringserve::kernels::cpu {
namespace {

constexpr int kRepetitions = 5;

double Seconds(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Four independent accumulators so the reduction never limits the load rate.
float SumRange(const float* p, size_t n) {
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    a0 = _mm256_add_ps(a0, _mm256_load_ps(p + i));
    a1 = _mm256_add_ps(a1, _mm256_load_ps(p + i + 8));
    a2 = _mm256_add_ps(a2, _mm256_load_ps(p + i + 16));
    a3 = _mm256_add_ps(a3, _mm256_load_ps(p + i + 24));
  }
  float sum = HorizontalSum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
  for (; i < n; ++i) sum += p[i];
  return sum;
}

struct AlignedFree {
  void operator()(float* p) const { std::free(p); }
};

}  // namespace

double MeasureReadBandwidth(size_t bytes, int num_threads) {
  const size_t count = std::max<size_t>(bytes / sizeof(float) / 32 * 32, 32);
  std::unique_ptr<float, AlignedFree> buffer(
      static_cast<float*>(std::aligned_alloc(64, count * sizeof(float))));
  ThreadPool pool(num_threads);
  const int64_t chunks = static_cast<int64_t>(count / 32);
  // Touch every page with the same split the reads use, so first-touch placement matches.
  pool.ParallelFor(chunks, [&](int64_t b, int64_t e) {
    std::fill(buffer.get() + b * 32, buffer.get() + e * 32, 1.0F);
  });
  std::atomic<float> sink{0};
  double best = 0;
  for (int rep = 0; rep < kRepetitions; ++rep) {
    const auto start = std::chrono::steady_clock::now();
    pool.ParallelFor(chunks, [&](int64_t b, int64_t e) {
      const float s = SumRange(buffer.get() + b * 32, static_cast<size_t>(e - b) * 32);
      sink.store(s, std::memory_order_relaxed);
    });
    best = std::max(best, static_cast<double>(count * sizeof(float)) / Seconds(start));
  }
  return best;
}

double MeasureBlasSgemmFlops(int n, int m, int k) {
  std::vector<float> x(static_cast<size_t>(n) * k, 0.5F);
  std::vector<float> w(static_cast<size_t>(m) * k, 0.25F);
  std::vector<float> y(static_cast<size_t>(n) * m);
  double best = 0;
  for (int rep = 0; rep < kRepetitions; ++rep) {
    const auto start = std::chrono::steady_clock::now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, m, k, 1.0F, x.data(), k, w.data(), k,
                0.0F, y.data(), m);
    best = std::max(best, 2.0 * n * m * k / Seconds(start));
  }
  return best;
}

}  // namespace ringserve::kernels::cpu
