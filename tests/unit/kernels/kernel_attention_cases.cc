// RopeAndWriteKv and PagedAttention cases of the table-driven op suite (kernel_ops_test.cc):
// odd head dims, GQA ratios 1/2/4, several sequences with different context lengths and
// shuffled block tables.
#include <cmath>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/unit/kernels/kernel_test_util.h"

namespace ringserve::kernels::testing {

using Check = std::function<void(Backend&, std::mt19937_64&)>;

namespace {

struct AttnShape {
  int hq, hkv, hd;
};

int RowWidth(const AttnShape& s) { return (s.hq + 2 * s.hkv) * s.hd; }

// |got - want| <= tol (1 + |want|) + store |want| + extra[i]: `store` covers rounding the
// result to an f16/bf16 activation dtype, `extra` (when given) a per-element bound.
void ExpectNear(const std::vector<float>& got, const std::vector<double>& want, double tol,
                const std::string& what, double store = 0, const std::vector<double>& extra = {}) {
  ASSERT_EQ(got.size(), want.size());
  size_t failures = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (!(std::fabs(got[i] - want[i]) <= tol * (1 + std::fabs(want[i])) +
                                             store * std::fabs(want[i]) +
                                             (extra.empty() ? 0 : extra[i]))) {
      if (failures++ < 5)
        ADD_FAILURE() << what << "[" << i << "] got " << got[i] << " want " << want[i];
    }
  }
  EXPECT_EQ(failures, 0U) << what;
}

// Skips the test where the backend cannot keep a KV cache in `dtype`.
void SkipUnlessKept(Backend& b, DType dtype) {
  if (!b.SupportsKvDtype(dtype)) {
    GTEST_SKIP() << b.name() << " keeps no " << DTypeName(dtype) << " KV cache";
  }
}

// With `wide_q`, qkv is f32 whatever the activation dtype (LlamaModel's layout): q and k rotate
// in f32, and only the K and V written to the cache are rounded to the cache's dtype.
void CheckRope(Backend& b, std::mt19937_64& rng, AttnShape s, int rotary_dim, RopeLayout layout,
               bool wide_q = false, std::optional<DType> kv_dtype = std::nullopt) {
  const int block_size = 8;
  const DType act = b.activation_dtype();
  const DType kv_type = kv_dtype.value_or(act);
  SkipUnlessKept(b, kv_type);
  if (::testing::Test::IsSkipped()) return;
  const DType qkv_dtype = wide_q ? DType::kF32 : act;
  const double store = 2 * StoreRoundingError(kv_type);
  const PagedBatchHost batch = BuildBatch({{3000, 3}, {9, 9}, {1, 1}}, block_size, 400, rng);
  const int width = RowWidth(s);
  std::vector<float> inv_freq(rotary_dim / 2);
  for (int i = 0; i < rotary_dim / 2; ++i)
    inv_freq[i] = static_cast<float>(std::pow(10000.0, -2.0 * i / rotary_dim));
  const size_t kv_count = static_cast<size_t>(400) * block_size * s.hkv * s.hd;
  ActivationArray qkv_d(b, RandomFloats(rng, batch.num_tokens * width), qkv_dtype),
      k_d(b, std::vector<float>(kv_count), kv_type), v_d(b, std::vector<float>(kv_count), kv_type);
  const std::vector<float>& qkv = qkv_d.host();
  DeviceArray<float> freq_d(b, inv_freq);
  DeviceBatch batch_d(b, batch);
  const AttentionShape shape{s.hq, s.hkv, s.hd, 1.0F / std::sqrt(static_cast<float>(s.hd))};
  const KvLayerView kv{k_d.data(), v_d.data(), kv_type, 400, block_size, s.hkv, s.hd};
  b.RopeAndWriteKv(qkv_d.AsTensor(batch.num_tokens, width), shape,
                   RopeParams{freq_d.data(), rotary_dim, layout}, batch_d.view(), kv);
  // Reference: rotate every q and k head in float64.
  std::vector<double> want(qkv.begin(), qkv.end());
  for (int t = 0; t < batch.num_tokens; ++t) {
    for (int h = 0; h < s.hq + s.hkv; ++h) {
      double* x = &want[t * width + h * s.hd];
      for (int i = 0; i < rotary_dim / 2; ++i) {
        const double angle = batch.positions[t] * static_cast<double>(inv_freq[i]);
        const int a = layout == RopeLayout::kAdjacentPairs ? 2 * i : i;
        const int c = layout == RopeLayout::kAdjacentPairs ? 2 * i + 1 : i + rotary_dim / 2;
        const double x0 = x[a], x1 = x[c];
        x[a] = x0 * std::cos(angle) - x1 * std::sin(angle);
        x[c] = x0 * std::sin(angle) + x1 * std::cos(angle);
      }
    }
  }
  ExpectNear(qkv_d.Download(), want, 1e-5, "rotated qkv", 2 * StoreRoundingError(qkv_dtype));
  const std::vector<float> k = k_d.Download(), v = v_d.Download();
  const std::vector<float> stored_qkv = RoundTo(kv_type, qkv);  // V as the cache holds it
  const int kv_width = s.hkv * s.hd;
  for (int t = 0; t < batch.num_tokens; ++t) {
    std::vector<float> got_k(k.begin() + batch.slots[t] * kv_width,
                             k.begin() + (batch.slots[t] + 1) * kv_width);
    std::vector<double> want_k(want.begin() + t * width + s.hq * s.hd,
                               want.begin() + t * width + s.hq * s.hd + kv_width);
    // E4M3's subnormals are 2^-9 apart: below 2^-6 its error is absolute.
    ExpectNear(got_k, want_k, kv_type == DType::kF8E4M3 ? 1.0 / 1024 : 1e-5,
               absl::StrCat("K of token ", t), store);
    for (int i = 0; i < kv_width; ++i) {
      ASSERT_EQ(v[batch.slots[t] * kv_width + i], stored_qkv[t * width + (s.hq + s.hkv) * s.hd + i])
          << "V of token " << t;
    }
  }
}

// softmax(q k^T * scale) v over positions 0..pos of the token's sequence (the last `window`
// of them with a sliding window), float64. With
// `weight_bound`, also how far rounding each weight p_j (before V and the sum) can move an
// output: out~ - out = sum_j (p~_j - p_j)(v_j - out) / sum_j p~_j, and sum_j p_j >= 1 (the
// largest is 1), so |out~ - out| <= (relative sum_j w_j |v_j - out| + absolute
// sum_j |v_j - out|) (1 + 2 relative).
std::vector<double> ReferenceAttention(const PagedBatchHost& batch, AttnShape s, int block_size,
                                       const std::vector<float>& qkv, const std::vector<float>& k,
                                       const std::vector<float>& v,
                                       const SoftmaxWeightRounding& rounding = {},
                                       std::vector<double>* weight_bound = nullptr,
                                       int window = 0) {
  const int width = RowWidth(s), kv_width = s.hkv * s.hd;
  const double scale = 1.0 / std::sqrt(static_cast<double>(s.hd));
  std::vector<double> out(static_cast<size_t>(batch.num_tokens) * s.hq * s.hd);
  for (int t = 0; t < batch.num_tokens; ++t) {
    const int32_t* table = &batch.block_tables[batch.token_seq[t] * batch.max_blocks_per_seq];
    const int first = FirstAttendedKey(batch.positions[t], window);
    const int n = batch.positions[t] + 1 - first;  // keys first..position, j counts from first
    for (int h = 0; h < s.hq; ++h) {
      const int g = h / (s.hq / s.hkv);
      std::vector<double> score(n);
      double max = -INFINITY;
      for (int jj = 0; jj < n; ++jj) {
        const int j = first + jj;
        const size_t base =
            static_cast<size_t>(table[j / block_size] * block_size + j % block_size) * kv_width +
            g * s.hd;
        double dot = 0;
        for (int d = 0; d < s.hd; ++d)
          dot += static_cast<double>(qkv[t * width + h * s.hd + d]) * k[base + d];
        score[jj] = dot * scale;
        max = std::max(max, score[jj]);
      }
      double sum = 0;
      for (double& x : score) sum += (x = std::exp(x - max));
      std::vector<const float*> value(n);
      for (int jj = 0; jj < n; ++jj) {
        const int j = first + jj;
        value[jj] =
            &v[static_cast<size_t>(table[j / block_size] * block_size + j % block_size) * kv_width +
               g * s.hd];
      }
      double* row = &out[(t * s.hq + h) * s.hd];
      for (int j = 0; j < n; ++j) {
        for (int d = 0; d < s.hd; ++d) row[d] += score[j] / sum * value[j][d];
      }
      if (weight_bound == nullptr) continue;
      weight_bound->resize(out.size());
      std::vector<double> relative(s.hd), absolute(s.hd);
      for (int j = 0; j < n; ++j) {
        for (int d = 0; d < s.hd; ++d) {
          const double deviation = std::fabs(value[j][d] - row[d]);
          relative[d] += score[j] / sum * deviation;
          absolute[d] += deviation / sum;
        }
      }
      for (int d = 0; d < s.hd; ++d) {
        (*weight_bound)[(t * s.hq + h) * s.hd + d] =
            (rounding.relative * relative[d] + rounding.absolute * absolute[d]) *
            (1 + 2 * rounding.relative);
      }
    }
  }
  return out;
}

// With `wide_q`, q comes from an f32 qkv (LlamaModel's layout); the tensor-core kernel rounds
// it to the activation dtype for its products, the SIMT one reads it as it is.
void CheckAttention(Backend& b, std::mt19937_64& rng, AttnShape s, int block_size,
                    const std::vector<SeqSpec>& seqs, bool wide_q = false,
                    std::optional<DType> kv_dtype = std::nullopt, int window = 0) {
  const DType kv_type = kv_dtype.value_or(b.activation_dtype());
  SkipUnlessKept(b, kv_type);
  if (::testing::Test::IsSkipped()) return;
  int num_blocks = 0;
  for (const SeqSpec& q : seqs) num_blocks += (q.context_len + block_size - 1) / block_size;
  num_blocks += 3;  // spare blocks nobody reads
  const DType act = b.activation_dtype();
  const PagedBatchHost batch = BuildBatch(seqs, block_size, num_blocks, rng);
  const size_t kv_count = static_cast<size_t>(num_blocks) * block_size * s.hkv * s.hd;
  ActivationArray k_d(b, RandomFloats(rng, kv_count), kv_type),
      v_d(b, RandomFloats(rng, kv_count), kv_type),
      qkv_d(b, RandomFloats(rng, batch.num_tokens * RowWidth(s), -3, 3),
            wide_q ? DType::kF32 : act),
      out_d(b, std::vector<float>(batch.num_tokens * s.hq * s.hd));
  DeviceBatch batch_d(b, batch);
  const AttentionShape shape{
      s.hq, s.hkv, s.hd, static_cast<float>(1.0 / std::sqrt(static_cast<double>(s.hd))), window};
  const KvLayerView kv{k_d.data(), v_d.data(), kv_type, num_blocks, block_size, s.hkv, s.hd};
  b.PagedAttention(qkv_d.AsTensor(batch.num_tokens, RowWidth(s)), shape, batch_d.view(), kv,
                   out_d.AsTensor(batch.num_tokens, s.hq * s.hd));
  const SoftmaxWeightRounding rounding = AttentionWeightRounding(b);
  std::vector<double> weight_bound;
  const std::vector<float> q = b.attention_kernel() == AttentionKernel::kTensorCore
                                   ? RoundTo(act, qkv_d.host())
                                   : qkv_d.host();
  const std::vector<double> want = ReferenceAttention(
      batch, s, block_size, q, k_d.host(), v_d.host(), rounding,
      rounding.relative > 0 || rounding.absolute > 0 ? &weight_bound : nullptr, window);
  ExpectNear(out_d.Download(), want, 2e-5, "attention", 2 * StoreRoundingError(act), weight_bound);
}

}  // namespace

std::vector<std::pair<std::string, Check>> AttentionCases() {
  std::vector<std::pair<std::string, Check>> cases;
  struct RopeCase {
    AttnShape s;
    int rotary;
    RopeLayout layout;
  };
  for (const RopeCase& c : std::vector<RopeCase>{{{4, 4, 8}, 8, RopeLayout::kAdjacentPairs},
                                                 {{8, 2, 64}, 64, RopeLayout::kHalves},
                                                 {{4, 1, 128}, 64, RopeLayout::kAdjacentPairs},
                                                 {{6, 3, 64}, 32, RopeLayout::kHalves}}) {
    cases.emplace_back(
        absl::StrCat("Rope_hq", c.s.hq, "_hkv", c.s.hkv, "_hd", c.s.hd, "_rot", c.rotary,
                     c.layout == RopeLayout::kHalves ? "_halves" : "_adjacent"),
        [c](Backend& b, std::mt19937_64& rng) { CheckRope(b, rng, c.s, c.rotary, c.layout); });
  }
  cases.emplace_back("Rope_F32Qkv_hq8_hkv2_hd64_rot64_halves",
                     [](Backend& b, std::mt19937_64& rng) {
                       CheckRope(b, rng, {8, 2, 64}, 64, RopeLayout::kHalves, /*wide_q=*/true);
                     });
  struct AttnCase {
    AttnShape s;
    int block_size;
    std::vector<SeqSpec> seqs;
  };
  const std::vector<AttnCase> attn = {
      {{2, 2, 8}, 4, {{1, 1}, {9, 3}, {17, 17}}},
      {{4, 2, 64}, 16, {{37, 1}, {100, 1}, {5, 5}, {64, 20}}},
      {{8, 2, 128}, 16, {{300, 1}, {33, 11}}},
      {{2, 2, 64}, 16, {{1500, 1}, {2, 1}}},
      {{4, 2, 12}, 8, {{29, 4}, {3, 1}}},
      {{4, 1, 8}, 16, {{70, 2}}},
      // Past one attention split (256 keys on the GPU): chunks across split boundaries,
      // contexts at the boundary, head_dim 96 and 256, 8 and 16 query heads per kv head.
      {{8, 1, 128}, 16, {{700, 300}, {513, 1}}},
      {{4, 2, 96}, 16, {{257, 2}, {256, 1}, {255, 255}}},
      {{2, 1, 256}, 32, {{600, 1}, {40, 40}}},
      {{16, 1, 64}, 16, {{300, 5}, {2, 1}}},
  };
  for (const AttnCase& c : attn) {
    std::string name = absl::StrCat("Attention_hq", c.s.hq, "_hkv", c.s.hkv, "_hd", c.s.hd, "_bs",
                                    c.block_size, "_ctx");
    for (const SeqSpec& q : c.seqs) absl::StrAppend(&name, "_", q.context_len, "q", q.query_len);
    cases.emplace_back(name, [c](Backend& b, std::mt19937_64& rng) {
      CheckAttention(b, rng, c.s, c.block_size, c.seqs);
    });
  }
  // q from an f32 qkv: decode and prefill rows, one across an attention split boundary.
  cases.emplace_back("Attention_F32Q_hq4_hkv2_hd64_bs16_ctx_37q1_64q20",
                     [](Backend& b, std::mt19937_64& rng) {
                       CheckAttention(b, rng, {4, 2, 64}, 16, {{37, 1}, {64, 20}}, true);
                     });
  cases.emplace_back("Attention_F32Q_hq8_hkv1_hd128_bs16_ctx_700q300_513q1",
                     [](Backend& b, std::mt19937_64& rng) {
                       CheckAttention(b, rng, {8, 1, 128}, 16, {{700, 300}, {513, 1}}, true);
                     });
  // Sliding windows (Mistral 7B v0.1): shorter than a block, than a tile of 8 or 32 keys,
  // than a GPU split and longer, over decode rows (one long enough to run split-parallel) and
  // prefill chunks whose rows' windows start in different blocks, tiles and splits; a window
  // longer than every context changes nothing.
  struct WindowCase {
    AttnShape s;
    int block_size, window;
    std::vector<SeqSpec> seqs;
  };
  for (const WindowCase& c : std::vector<WindowCase>{
           {{4, 2, 64}, 16, 1, {{37, 1}, {20, 20}}},
           {{4, 2, 64}, 16, 5, {{37, 1}, {64, 20}, {3, 3}}},
           {{8, 2, 64}, 16, 40, {{300, 1}, {100, 100}, {41, 1}}},
           {{4, 1, 128}, 16, 300, {{1500, 1}, {700, 300}, {257, 1}}},
           {{2, 2, 12}, 8, 256, {{900, 1}, {600, 600}}},
           {{4, 2, 64}, 16, 4096, {{300, 1}, {64, 20}}},
       }) {
    std::string name = absl::StrCat("Attention_Window", c.window, "_hq", c.s.hq, "_hkv", c.s.hkv,
                                    "_hd", c.s.hd, "_ctx");
    for (const SeqSpec& q : c.seqs) absl::StrAppend(&name, "_", q.context_len, "q", q.query_len);
    cases.emplace_back(name, [c](Backend& b, std::mt19937_64& rng) {
      CheckAttention(b, rng, c.s, c.block_size, c.seqs, true, std::nullopt, c.window);
    });
  }
  // 16-bit caches under f32 activations (the CPU): K and V rounded once as they are written,
  // and read back widened; odd head dims take the partial loads.
  for (const DType kv : {DType::kF16, DType::kBF16, DType::kF8E4M3}) {
    const std::string dt(DTypeName(kv));
    cases.emplace_back(absl::StrCat("Rope_Kv", dt, "_hq8_hkv2_hd64_rot64_halves"),
                       [kv](Backend& b, std::mt19937_64& rng) {
                         CheckRope(b, rng, {8, 2, 64}, 64, RopeLayout::kHalves, true, kv);
                       });
    cases.emplace_back(absl::StrCat("Rope_Kv", dt, "_hq6_hkv3_hd12_rot12_adjacent"),
                       [kv](Backend& b, std::mt19937_64& rng) {
                         CheckRope(b, rng, {6, 3, 12}, 12, RopeLayout::kAdjacentPairs, true, kv);
                       });
    for (const AttnCase& c : std::vector<AttnCase>{{{4, 2, 64}, 16, {{37, 1}, {100, 1}, {64, 20}}},
                                                   {{4, 2, 12}, 8, {{29, 4}, {3, 1}}},
                                                   {{8, 1, 128}, 16, {{700, 300}, {513, 1}}},
                                                   {{2, 2, 68}, 16, {{1500, 1}, {40, 40}}}}) {
      std::string name =
          absl::StrCat("Attention_Kv", dt, "_hq", c.s.hq, "_hkv", c.s.hkv, "_hd", c.s.hd, "_ctx");
      for (const SeqSpec& q : c.seqs) absl::StrAppend(&name, "_", q.context_len, "q", q.query_len);
      cases.emplace_back(name, [c, kv](Backend& b, std::mt19937_64& rng) {
        CheckAttention(b, rng, c.s, c.block_size, c.seqs, true, kv);
      });
    }
    cases.emplace_back(absl::StrCat("Attention_Kv", dt, "_Window40_hq6_hkv2_hd68_ctx_300q1_90q90"),
                       [kv](Backend& b, std::mt19937_64& rng) {
                         CheckAttention(b, rng, {6, 2, 68}, 16, {{300, 1}, {90, 90}}, true, kv, 40);
                       });
  }
  return cases;
}

}  // namespace ringserve::kernels::testing
