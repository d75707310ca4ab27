// The AVX2 and AVX-512 kernels must agree bit for bit (cpu_isa.h): a model's output may not
// depend on which machine of a fleet ran it, and batch invariance only holds if every
// code path does the same float operations. Each case runs on every ISA this CPU supports,
// on random inputs of awkward shapes (partial panels and vectors, tiles that do not divide
// the row count, k blocks with a remainder), and compares the bits; MatMul is also held to
// the scalar contract of cpu_matmul.h, and the attention's tile path to its row path.
// Without AVX-512 only the AVX2 side runs.
#include <climits>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/cpu_attention.h"
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
  for (const int64_t n : {1, 2, 5, 6, 7, 11, 13, 14, 15, 29, 47, 48, 64}) {
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

struct AttentionCase {
  int hq, hkv, hd, block_size;
  std::vector<SeqSpec> seqs;
  int window = 0;
};

// PagedAttention over KV that is NaN everywhere but the slots of each sequence's keys (from
// the first query's window on), so reading a key past a query's position, or one before
// every window of its sequence, would show; in f32, f16 and bf16 caches.
TEST(IsaEquivalenceTest, AttentionTilesMatchRowsOnEveryIsaAndCacheType) {
  const std::vector<AttentionCase> cases = {
      {12, 12, 64, 16, {{512, 512}, {37, 1}}},
      {8, 2, 64, 16, {{150, 150}, {40, 1}, {7, 7}, {300, 3}}},
      {6, 2, 12, 8, {{70, 9}, {29, 29}, {1, 1}}},
      {4, 1, 8, 16, {{33, 33}, {100, 23}}},
      {3, 3, 72, 8, {{61, 61}, {17, 2}}},
      {2, 1, 5, 4, {{45, 45}, {9, 4}}},
      {32, 1, 16, 16, {{20, 20}}},
      // Sliding windows: shorter than a block and than 8 keys, windows of a chunk's tokens
      // that start in different blocks, a decode row's window.
      {8, 2, 64, 16, {{150, 150}, {40, 1}, {300, 3}}, 33},
      {6, 2, 12, 8, {{70, 9}, {29, 29}, {1, 1}}, 5},
      {2, 1, 5, 4, {{45, 45}, {9, 4}}, 1},
      {12, 12, 64, 16, {{512, 512}, {37, 1}}, 200},
      {4, 1, 8, 16, {{100, 23}}, 8},
  };
  std::mt19937_64 rng(5);
  cpu::ThreadPool pool(3);
  for (const AttentionCase& c : cases) {
    int num_blocks = 0;
    for (const SeqSpec& s : c.seqs) num_blocks += (s.context_len + c.block_size - 1) / c.block_size;
    const PagedBatchHost host = BuildBatch(c.seqs, c.block_size, num_blocks, rng);
    const int64_t kv_width = static_cast<int64_t>(c.hkv) * c.hd;
    std::vector<float> k(num_blocks * c.block_size * kv_width, NAN), v(k);
    for (int s = 0; s < host.num_seqs; ++s) {
      const int first_query = host.context_lens[s] - c.seqs[s].query_len;
      for (int p = FirstAttendedKey(first_query, c.window); p < host.context_lens[s]; ++p) {
        const int64_t slot =
            static_cast<int64_t>(
                host.block_tables[s * host.max_blocks_per_seq + p / c.block_size]) *
                c.block_size +
            p % c.block_size;
        for (int64_t e = 0; e < kv_width; ++e) {
          k[slot * kv_width + e] = RandomFloats(rng, 1, -2, 2)[0];
          v[slot * kv_width + e] = RandomFloats(rng, 1)[0];
        }
      }
    }
    const int width = (c.hq + 2 * c.hkv) * c.hd, out_width = c.hq * c.hd;
    std::vector<float> qkv = RandomFloats(rng, host.num_tokens * width, -2, 2);
    const AttentionBatch batch{host.num_tokens,          host.num_seqs,
                               host.max_blocks_per_seq,  host.max_context_len,
                               host.positions.data(),    host.slots.data(),
                               host.token_seq.data(),    host.query_start.data(),
                               host.context_lens.data(), host.block_tables.data()};
    const AttentionShape shape{c.hq, c.hkv, c.hd, 1.0F / std::sqrt(static_cast<float>(c.hd)),
                               c.window};
    auto run = [&](const KvLayerView& kv, Isa isa, int min_tile_vectors) {
      std::vector<float> out(host.num_tokens * out_width, NAN);
      cpu::PagedAttentionOp(
          pool, Tensor::Of(qkv.data(), DType::kF32, host.num_tokens, width), shape, batch, kv,
          Tensor::Of(out.data(), DType::kF32, host.num_tokens, out_width), {isa, min_tile_vectors});
      return out;
    };
    // A 16-bit cache is widened exactly as it is read: every path over it must give the
    // bits of the f32 rows over the widened values.
    for (const DType kv_dtype : {DType::kF32, DType::kF16, DType::kBF16, DType::kF8E4M3}) {
      std::vector<uint8_t> k_stored = Encode(kv_dtype, k), v_stored = Encode(kv_dtype, v);
      std::vector<float> k_wide = Decode(kv_dtype, k_stored, k.size()),
                         v_wide = Decode(kv_dtype, v_stored, v.size());
      const KvLayerView wide{k_wide.data(), v_wide.data(), DType::kF32, num_blocks,
                             c.block_size,  c.hkv,         c.hd};
      const KvLayerView kv{k_stored.data(), v_stored.data(), kv_dtype, num_blocks,
                           c.block_size,    c.hkv,           c.hd};
      // The row path on AVX2 over f32 is the reference every other combination must reproduce.
      const std::vector<float> want = run(wide, Isa::kAvx2, INT_MAX);
      for (const float f : want) ASSERT_TRUE(std::isfinite(f)) << "hd " << c.hd;
      for (const Isa isa : SupportedIsas()) {
        for (const int min_tile_vectors : {1, 4, INT_MAX}) {
          EXPECT_TRUE(BitEqual(run(kv, isa, min_tile_vectors), want))
              << DTypeName(kv_dtype) << " cache, " << cpu::IsaName(isa) << " hq " << c.hq << " hkv "
              << c.hkv << " hd " << c.hd << " window " << c.window << " min_tile_vectors "
              << min_tile_vectors;
        }
      }
    }
  }
}

}  // namespace
}  // namespace ringserve::kernels::testing
