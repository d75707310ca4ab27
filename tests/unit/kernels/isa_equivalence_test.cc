// The AVX2 and AVX-512 kernels must agree bit for bit (cpu_isa.h): a model's output may not
// depend on which machine of a fleet ran it, and batch invariance only holds if every
// code path does the same float operations. Each case runs on every ISA this CPU supports,
// on random inputs of awkward shapes (partial panels and vectors, tiles that do not divide
// the row count, k blocks with a remainder), and compares the bits; MatMul is also held to
// the scalar contract of cpu_matmul.h. Without AVX-512 only the AVX2 side runs.
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/cpu_isa.h"
#include "kernels/cpu/cpu_matmul.h"
#include "kernels/cpu/thread_pool.h"
#include "tests/unit/kernels/kernel_test_util.h"

namespace ringserve::kernels::testing {
namespace {

using cpu::Isa;

bool BitEqual(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

std::vector<Isa> SupportedIsas() {
  std::vector<Isa> isas = {Isa::kAvx2};
  if (cpu::IsaSupported(Isa::kAvx512)) isas.push_back(Isa::kAvx512);
  return isas;
}

// y = x W^T through cpu::MatMul on `isa`, W packed in `layout`, x and y with padded strides.
std::vector<float> RunMatMul(cpu::ThreadPool& pool, Isa isa, const cpu::PanelLayout& layout,
                             const std::vector<float>& w, const std::vector<float>& x, int64_t n) {
  const int64_t m = layout.rows, k = layout.cols, ldx = k + 3, ldy = m + 5;
  std::vector<float> packed(static_cast<size_t>(m * k));
  cpu::PackRows(layout, w.data(), 0, m, packed.data());
  std::vector<float> xs(static_cast<size_t>(n * ldx), NAN), ys(static_cast<size_t>(n * ldy), NAN);
  for (int64_t i = 0; i < n; ++i) std::copy_n(&x[i * k], k, &xs[i * ldx]);
  cpu::MatMul(pool, {xs.data(), ldx, n, packed.data(), layout, ys.data(), ldy}, isa);
  std::vector<float> y(static_cast<size_t>(n * m));
  for (int64_t i = 0; i < n; ++i) {
    std::copy_n(&ys[i * ldy], m, &y[i * m]);
    for (int64_t j = m; j < ldy; ++j) EXPECT_TRUE(std::isnan(ys[i * ldy + j])) << "wrote past y";
  }
  return y;
}

TEST(IsaEquivalenceTest, MatMulMatchesScalarContractOnEveryIsa) {
  std::mt19937_64 rng(3);
  cpu::ThreadPool one(1), three(3);
  for (const int64_t n : {1, 2, 5, 6, 7, 13, 14, 15, 29, 64}) {
    for (const auto& [m, k] : std::vector<std::pair<int64_t, int64_t>>{
             {1, 1}, {7, 3}, {16, 17}, {33, 255}, {100, 257}, {250, 600}, {48, 1000}}) {
      const std::vector<float> w = RandomFloats(rng, m * k), x = RandomFloats(rng, n * k);
      // The contract: acc = 0; acc = fma(x, w, acc) for c = 0..k-1 in order.
      std::vector<float> want(static_cast<size_t>(n * m));
      for (int64_t i = 0; i < n; ++i) {
        for (int64_t j = 0; j < m; ++j) {
          float acc = 0;
          for (int64_t c = 0; c < k; ++c) acc = std::fma(x[i * k + c], w[j * k + c], acc);
          want[i * m + j] = acc;
        }
      }
      for (const bool transposed : {false, true}) {
        const cpu::PanelLayout layout{transposed, m, k};
        for (const Isa isa : SupportedIsas()) {
          for (cpu::ThreadPool* pool : {&one, &three}) {
            EXPECT_TRUE(BitEqual(RunMatMul(*pool, isa, layout, w, x, n), want))
                << cpu::IsaName(isa) << " n " << n << " m " << m << " k " << k << " transposed "
                << transposed << " threads " << pool->num_threads();
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace ringserve::kernels::testing
