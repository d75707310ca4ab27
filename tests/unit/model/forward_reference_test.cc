// The Llama forward pass against a naive float64 implementation written here from the
// architecture's definition: random small models covering GQA, both RoPE layouts, Llama 3
// rope scaling, partial rotary dims, tied and untied output, sliding-window attention on every
// layer or on some; prefill, decode and mixed
// batches; on every test device (test_devices.h), including the CUDA sources on the CPU
// emulation (about 0.25 s a case there).
#include <algorithm>
#include <cmath>
#include <iostream>
#include <map>
#include <numbers>
#include <random>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/cpu/cpu_sampling.h"
#include "kernels/dtype.h"
#include "tests/unit/model/random_checkpoint.h"
#include "tests/unit/model/test_devices.h"
#include "worker/model/checkpoint.h"
#include "worker/model/llama_model.h"

namespace ringserve::model {
namespace {

using Matrix = std::vector<float>;  // row-major

// ---- float64 reference ----
// With `storage` f16 or bf16 it follows LlamaModel's layout on such a device: weights are held in
// that dtype, and every tensor stored in it (norm outputs, K and V in the cache, attention output,
// gate/up, SiLU-mul) is rounded to it, while the residual stream, the o and down projections added
// to it, q/k/v, the arithmetic in between and the logits stay wide. A bf16 device then differs from
// it only where a value lies on a rounding boundary that f32 and float64 resolve differently (up to
// 8e-3 of the largest logit after such a flip propagates, 1e-7 otherwise); from the plain float64
// reference these large random weights take a bf16 device up to 5.6e-2 away.
class Reference {
 public:
  Reference(const Checkpoint& ck, kernels::DType storage)
      : ck_(ck), c_(ck.config), storage_(storage) {}

  const float* W(const std::string& name) const {
    const HostTensor& t = **ck_.Find(name);
    const auto* data = static_cast<const float*>(t.data);
    if (storage_ == kernels::DType::kF32) return data;
    std::vector<float>& stored = stored_weights_[name];
    if (stored.empty()) {
      stored.assign(data, data + t.bytes / sizeof(float));
      for (float& w : stored) w = static_cast<float>(Stored(w));
    }
    return stored.data();
  }

  double Stored(double x) const {
    const auto f = static_cast<float>(x);
    switch (storage_) {
      case kernels::DType::kBF16:
        return kernels::BFloat16ToFloat(kernels::FloatToBFloat16(f));
      case kernels::DType::kF16:
        return kernels::HalfToFloat(kernels::FloatToHalf(f));
      default:
        return x;
    }
  }
  void Store(std::vector<double>* x) const {
    for (double& v : *x) v = Stored(v);
  }

  std::vector<double> MatVec(const float* w, int64_t rows, int64_t cols,
                             const std::vector<double>& x) const {
    std::vector<double> y(rows, 0.0);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t k = 0; k < cols; ++k) y[r] += static_cast<double>(w[r * cols + k]) * x[k];
    }
    return y;
  }

  std::vector<double> Norm(const std::vector<double>& x, const float* w) const {
    double ss = 0;
    for (double v : x) ss += v * v;
    const double inv = 1.0 / std::sqrt(ss / x.size() + c_.rms_eps);
    std::vector<double> out(x.size());
    for (size_t i = 0; i < x.size(); ++i) out[i] = x[i] * inv * w[i];
    return out;
  }

  double InvFreq(int i) const {
    const int rd = c_.rotary_dim > 0 ? c_.rotary_dim : c_.head_dim;
    const double f = std::pow(static_cast<double>(c_.rope_theta), -2.0 * i / rd);
    const RopeScaling& s = c_.rope_scaling;
    switch (s.type) {
      case RopeType::kDefault:
        return f;
      case RopeType::kLinear:
        return f / s.factor;
      case RopeType::kLlama3: {
        const double wavelen = 2 * std::numbers::pi / f;
        if (wavelen < s.original_max_position / s.high_freq_factor) return f;
        if (wavelen > s.original_max_position / s.low_freq_factor) return f / s.factor;
        const double smooth = (s.original_max_position / wavelen - s.low_freq_factor) /
                              (s.high_freq_factor - s.low_freq_factor);
        return (1 - smooth) * f / s.factor + smooth * f;
      }
      case RopeType::kYarn: {
        // The pair index at which a frequency turns `turns` times over the original context.
        auto dim_of = [&](double turns) {
          return rd * std::log(s.original_max_position / (turns * 2 * std::numbers::pi)) /
                 (2 * std::log(static_cast<double>(c_.rope_theta)));
        };
        const double lo = std::max(std::floor(dim_of(s.beta_fast)), 0.0);
        double hi = std::min(std::ceil(dim_of(s.beta_slow)), rd - 1.0);
        if (hi == lo) hi += 0.001;
        const double ramp = std::clamp((i - lo) / (hi - lo), 0.0, 1.0);
        return (1 - ramp) * f + ramp * f / s.factor;
      }
    }
    return f;
  }

  // transformers multiplies cos and sin by yarn's attention factor, so every rotated value.
  double RopeMagnitude() const {
    const RopeScaling& s = c_.rope_scaling;
    return s.type == RopeType::kYarn ? 0.1 * std::log(s.factor) + 1 : 1.0;
  }

  void Rope(double* head, int pos) const {
    const int rd = c_.rotary_dim > 0 ? c_.rotary_dim : c_.head_dim;
    const double m = RopeMagnitude();
    for (int i = 0; i < rd / 2; ++i) {
      const double a = pos * InvFreq(i);
      const int i0 = c_.rope_layout == kernels::RopeLayout::kAdjacentPairs ? 2 * i : i;
      const int i1 = c_.rope_layout == kernels::RopeLayout::kAdjacentPairs ? 2 * i + 1 : i + rd / 2;
      const double x0 = head[i0];
      const double x1 = head[i1];
      head[i0] = m * (x0 * std::cos(a) - x1 * std::sin(a));
      head[i1] = m * (x0 * std::sin(a) + x1 * std::cos(a));
    }
  }

  // Logits after each position of `tokens`; with `hidden`, also the output norm's output at
  // each position (what an embedding returns).
  std::vector<std::vector<double>> Run(const std::vector<int32_t>& tokens,
                                       std::vector<std::vector<double>>* hidden = nullptr) const {
    const int hd = c_.head_dim;
    const int64_t q_dim = static_cast<int64_t>(c_.num_heads) * hd;
    const int64_t kv_dim = static_cast<int64_t>(c_.num_kv_heads) * hd;
    std::vector<std::vector<double>> keys(c_.num_layers), values(c_.num_layers), out;
    std::vector<std::vector<double>> xs;
    for (size_t t = 0; t < tokens.size(); ++t) {
      std::vector<double> x(c_.dim);
      for (int i = 0; i < c_.dim; ++i) x[i] = W("token_embd.weight")[tokens[t] * c_.dim + i];
      for (int l = 0; l < c_.num_layers; ++l) {
        const std::string p = absl::StrCat("blk.", l, ".");
        auto h = Norm(x, W(p + "attn_norm.weight"));
        Store(&h);
        auto q = MatVec(W(p + "attn_q.weight"), q_dim, c_.dim, h);
        auto k = MatVec(W(p + "attn_k.weight"), kv_dim, c_.dim, h);
        auto v = MatVec(W(p + "attn_v.weight"), kv_dim, c_.dim, h);
        if (c_.attention_bias) {
          for (auto [y, name] : {std::pair{&q, "attn_q.bias"}, std::pair{&k, "attn_k.bias"},
                                 std::pair{&v, "attn_v.bias"}}) {
            const float* bias = W(p + name);
            for (size_t i = 0; i < y->size(); ++i) (*y)[i] += bias[i];
          }
        }
        if (c_.qk_norm) {  // each head on its own (Qwen3)
          for (auto [y, name] :
               {std::pair{&q, "attn_q_norm.weight"}, std::pair{&k, "attn_k_norm.weight"}}) {
            for (size_t h0 = 0; h0 < y->size(); h0 += hd) {
              const std::vector<double> head(y->begin() + h0, y->begin() + h0 + hd);
              const std::vector<double> normed = Norm(head, W(p + name));
              std::copy(normed.begin(), normed.end(), y->begin() + h0);
            }
          }
        }
        for (int hh = 0; hh < c_.num_heads; ++hh) Rope(&q[hh * hd], static_cast<int>(t));
        for (int hh = 0; hh < c_.num_kv_heads; ++hh) Rope(&k[hh * hd], static_cast<int>(t));
        Store(&k);  // the KV cache
        Store(&v);
        keys[l].insert(keys[l].end(), k.begin(), k.end());
        values[l].insert(values[l].end(), v.begin(), v.end());
        std::vector<double> attn(q_dim, 0.0);
        const int group = c_.num_heads / c_.num_kv_heads;
        for (int hh = 0; hh < c_.num_heads; ++hh) {
          const int kvh = hh / group;
          // A sliding window keeps the last sliding_window keys (transformers' mask: key j
          // with t - window < j <= t).
          const int window = c_.LayerWindow(l);
          const size_t first = window > 0 && t >= static_cast<size_t>(window) ? t - window + 1 : 0;
          std::vector<double> s(t + 1, -INFINITY);
          double mx = -1e300;
          for (size_t j = first; j <= t; ++j) {
            double dot = 0;
            for (int d = 0; d < hd; ++d) dot += q[hh * hd + d] * keys[l][j * kv_dim + kvh * hd + d];
            s[j] = dot / std::sqrt(static_cast<double>(hd));
            mx = std::max(mx, s[j]);
          }
          double sum = 0;
          for (double& e : s) sum += (e = std::exp(e - mx));
          for (size_t j = first; j <= t; ++j) {
            for (int d = 0; d < hd; ++d) {
              attn[hh * hd + d] += s[j] / sum * values[l][j * kv_dim + kvh * hd + d];
            }
          }
        }
        Store(&attn);
        auto o = MatVec(W(p + "attn_output.weight"), c_.dim, q_dim, attn);
        for (int i = 0; i < c_.dim; ++i) x[i] += o[i];
        h = Norm(x, W(p + "ffn_norm.weight"));
        Store(&h);
        auto g = MatVec(W(p + "ffn_gate.weight"), c_.hidden_dim, c_.dim, h);
        auto u = MatVec(W(p + "ffn_up.weight"), c_.hidden_dim, c_.dim, h);
        Store(&g);
        Store(&u);
        for (int i = 0; i < c_.hidden_dim; ++i) g[i] = g[i] / (1 + std::exp(-g[i])) * u[i];
        Store(&g);
        auto d = MatVec(W(p + "ffn_down.weight"), c_.dim, c_.hidden_dim, g);
        for (int i = 0; i < c_.dim; ++i) x[i] += d[i];
      }
      auto h = Norm(x, W("output_norm.weight"));
      Store(&h);
      if (hidden != nullptr) hidden->push_back(h);
      const char* head = c_.tied_embeddings ? "token_embd.weight" : "output.weight";
      out.push_back(MatVec(W(head), c_.vocab_size, c_.dim, h));
    }
    return out;
  }

 private:
  const Checkpoint& ck_;
  const ModelConfig& c_;
  const kernels::DType storage_;
  mutable std::map<std::string, std::vector<float>> stored_weights_;  // filled on first use
};

struct Variant {
  std::string name;
  int heads, kv_heads, head_dim, rotary_dim;
  kernels::RopeLayout layout;
  RopeType rope;
  bool tied;
  bool attention_bias = false;
  bool qk_norm = false;
  int dim = 0;  // 0: heads * head_dim
  int sliding_window = 0;
  bool window_on_last_layer_only = false;  // Qwen2's max_window_layers
};
void PrintTo(const Variant& v, std::ostream* os) { *os << v.name; }

ModelConfig ConfigFor(const Variant& v) {
  ModelConfig c;
  c.num_heads = v.heads;
  c.num_kv_heads = v.kv_heads;
  c.head_dim = v.head_dim;
  c.dim = v.dim > 0 ? v.dim : v.heads * v.head_dim;
  c.hidden_dim = 3 * c.dim - 5;
  c.num_layers = 2;
  c.vocab_size = 97;
  c.max_seq_len = 256;
  c.rope_theta = 500.0F;  // small theta: every frequency rotates noticeably in 40 tokens
  c.rotary_dim = v.rotary_dim;
  c.rope_layout = v.layout;
  c.tied_embeddings = v.tied;
  c.attention_bias = v.attention_bias;
  c.qk_norm = v.qk_norm;
  c.rope_scaling.type = v.rope;
  c.rope_scaling.factor = 4.0F;
  c.rope_scaling.original_max_position = 64;  // llama3: low 1, high 4; yarn: beta 32 and 1
  c.sliding_window = v.sliding_window;
  if (v.window_on_last_layer_only) c.sliding_layers = {false, true};
  return c;
}

using ringserve::testing::TestDevice;

class ForwardReferenceTest : public ::testing::TestWithParam<std::tuple<Variant, TestDevice>> {
 protected:
  // The logits of one sampled chunk against the reference; remembers the worst error.
  void ExpectClose(std::span<const float> got, const std::vector<double>& want,
                   const std::string& where) {
    const TestDevice& device = std::get<1>(GetParam());
    const double error = ringserve::testing::LogitsError(got, want);
    worst_error_ = std::max(worst_error_, error);
    checked_ = true;
    EXPECT_LE(error, device.logits_tolerance) << where << " on " << device.name;
  }
  void TearDown() override {
    if (checked_)
      std::cout << std::get<1>(GetParam()).name << ": worst logits error " << worst_error_ << "\n";
  }
  double worst_error_ = 0;
  bool checked_ = false;
};

TEST_P(ForwardReferenceTest, PrefillDecodeAndMixedBatchesMatchReference) {
  const auto& [variant, device] = GetParam();
  auto backend = device.create();
  if (!backend.ok()) GTEST_SKIP() << device.name << ": " << backend.status();
  const ModelConfig config = ConfigFor(variant);
  auto checkpoint = MakeCheckpoint(config);
  ModelOptions options;
  options.num_kv_blocks = 32;
  options.max_seqs = 4;
  options.kv_dtype = device.kv_dtype;
  auto model = LlamaModel::Create(*checkpoint, backend->get(), options);
  ASSERT_TRUE(model.ok()) << model.status();

  std::mt19937 rng(7);
  std::vector<int32_t> a(41), b(23);
  for (auto& t : a) t = static_cast<int32_t>(rng() % config.vocab_size);
  for (auto& t : b) t = static_cast<int32_t>(rng() % config.vocab_size);
  const Reference ref(*checkpoint, device.activation_dtype);
  std::vector<std::vector<double>> hidden_a, hidden_b;
  const auto ref_a = ref.Run(a, &hidden_a);
  const auto ref_b = ref.Run(b, &hidden_b);

  // Sequence a: blocks scattered (not contiguous, not in order); b: others.
  const std::vector<int32_t> table_a = {9, 2, 30};
  const std::vector<int32_t> table_b = {5, 17};
  std::vector<float> logits;
  const int vocab = config.vocab_size;
  const auto row = [&](int i) { return std::span(logits).subspan(i * vocab, vocab); };
  // Pass 1: a prefills 30 tokens while b prefills 16.
  std::vector<SequenceChunk> pass1 = {{std::span(a).first(30), 0, table_a, true},
                                      {std::span(b).first(16), 0, table_b, true}};
  ASSERT_TRUE((*model)->Forward(pass1, &logits).ok());
  ExpectClose(row(0), ref_a[29], "a@29");
  ExpectClose(row(1), ref_b[15], "b@15");
  // Then a decodes one token per pass while b prefills the rest in chunks of 3.
  int pos_b = 16;
  for (int pos_a = 30; pos_a < 41; ++pos_a) {
    std::vector<SequenceChunk> pass = {{std::span(a).subspan(pos_a, 1), pos_a, table_a, true}};
    const int take_b = std::min(3, 23 - pos_b);
    if (take_b > 0) pass.push_back({std::span(b).subspan(pos_b, take_b), pos_b, table_b, true});
    ASSERT_TRUE((*model)->Forward(pass, &logits).ok());
    ExpectClose(row(0), ref_a[pos_a], absl::StrCat("a@", pos_a));
    // The same pass again with the tokens picked on the device (the pass rewrites the same
    // K/V, so the logits are the same): a greedy row, and a sampled one with penalties
    // whose raw logits come back too; the picks are the host's from the same logits, and
    // both rows' logprobs those of their raw logits (the penalties undone).
    std::vector<kernels::RowSampling> chains = {{.temperature = 0}};
    std::vector<kernels::PenaltyEntry> penalties;
    std::vector<int32_t> logits_rows;
    if (take_b > 0) {
      penalties = {{.token = 3, .count = 0}, {.token = 7, .count = 2}, {.token = 1, .count = 1}};
      chains.push_back({.temperature = 0.8F,
                        .top_k = 50,
                        .top_p = 0.9F,
                        .repetition_penalty = 1.3F,
                        .presence_penalty = 0.5F,
                        .frequency_penalty = 0.5F,
                        .penalty_begin = 0,
                        .penalty_end = 3,
                        .uniform = 0.37});
      logits_rows.push_back(1);
    }
    const std::vector<int32_t> logprob_rows =
        take_b > 0 ? std::vector<int32_t>{1, 0} : std::vector<int32_t>{0};
    // The final hidden states too (embeddings), in the order asked.
    const std::vector<int32_t>& hidden_rows = logprob_rows;
    const absl::StatusOr<SampledPass> sampled =
        (*model)->ForwardSampled(pass, {.chains = chains,
                                        .penalties = penalties,
                                        .logits_rows = logits_rows,
                                        .logprob_rows = logprob_rows,
                                        .hidden_rows = hidden_rows});
    ASSERT_TRUE(sampled.ok()) << sampled.status();
    ASSERT_EQ(sampled->ids.size(), pass.size());
    ASSERT_EQ(sampled->logits.size(), logits_rows.size() * vocab);
    ASSERT_EQ(sampled->logprobs.size(), logprob_rows.size());
    const auto dim = static_cast<size_t>(config.dim);
    ASSERT_EQ(sampled->hidden.size(), hidden_rows.size() * dim);
    for (size_t i = 0; i < hidden_rows.size(); ++i) {
      const std::vector<double>& want =
          hidden_rows[i] == 0 ? hidden_a[pos_a] : hidden_b[pos_b + take_b - 1];
      ExpectClose(sampled->hidden.subspan(i * dim, dim), want,
                  absl::StrCat("hidden of row ", hidden_rows[i], " at a@", pos_a));
    }
    for (size_t i = 0; i < logprob_rows.size(); ++i) {
      const int r = logprob_rows[i];
      const kernels::RowLogprobs want = kernels::cpu::LogprobRow(row(r), sampled->ids[r]);
      const kernels::RowLogprobs& got = sampled->logprobs[i];
      EXPECT_NEAR(got.chosen, want.chosen, 1e-4) << "row " << r;
      EXPECT_NEAR(got.log_total, want.log_total, 1e-4) << "row " << r;
      for (int k = 0; k < std::min(vocab, kernels::kMaxTopLogprobs); ++k) {
        EXPECT_EQ(got.top_ids[k], want.top_ids[k]) << "row " << r << " top " << k;
        EXPECT_NEAR(got.top_logprobs[k], want.top_logprobs[k], 1e-4) << "row " << r;
      }
    }
    for (size_t r = 0; r < pass.size(); ++r) {
      std::vector<float> l(row(static_cast<int>(r)).begin(), row(static_cast<int>(r)).end());
      kernels::cpu::PenalizeRow(
          l, chains[r],
          std::span(penalties).subspan(chains[r].penalty_begin,
                                       chains[r].penalty_end - chains[r].penalty_begin));
      EXPECT_EQ(sampled->ids[r], kernels::cpu::SampleRow(l, chains[r])) << "row " << r;
    }
    if (take_b > 0) {  // raw: before the penalties
      const std::span<const float> l = row(1);
      EXPECT_TRUE(std::equal(l.begin(), l.end(), sampled->logits.begin())) << "logits of row 1";
    }
    if (take_b > 0) {
      pos_b += take_b;
      ExpectClose(row(1), ref_b[pos_b - 1], absl::StrCat("b@", pos_b - 1));
    }
  }
}

const Variant kVariants[] = {
    {"mha_adjacent_tied", 4, 4, 8, 0, kernels::RopeLayout::kAdjacentPairs, RopeType::kDefault,
     true},
    {"gqa2_halves_untied", 4, 2, 16, 0, kernels::RopeLayout::kHalves, RopeType::kDefault, false},
    {"gqa4_llama3_halves", 8, 2, 8, 0, kernels::RopeLayout::kHalves, RopeType::kLlama3, false},
    {"mqa_partial_rotary", 4, 1, 16, 8, kernels::RopeLayout::kAdjacentPairs, RopeType::kDefault,
     true},
    {"qwen2_biases_gqa2", 4, 2, 16, 0, kernels::RopeLayout::kHalves, RopeType::kDefault, true,
     true},
    // Qwen3: per-head Q/K norms, heads wider than dim / num_heads.
    {"qwen3_qknorm_wide_heads", 4, 2, 16, 0, kernels::RopeLayout::kHalves, RopeType::kDefault, true,
     false, true, 40},
    // YaRN (Qwen2.5 / Qwen3 past 32k): the reference scales rotated q and k, ringserve the
    // softmax.
    {"qwen3_yarn_gqa2", 4, 2, 16, 0, kernels::RopeLayout::kHalves, RopeType::kYarn, true, false,
     true},
    {"mha_linear_adjacent", 4, 4, 8, 0, kernels::RopeLayout::kAdjacentPairs, RopeType::kLinear,
     false},
    // Mistral 7B v0.1's sliding window (here 7 keys) on every layer; Qwen2's on the layers from
    // max_window_layers on (here 13 keys on the second).
    {"mistral_window7_gqa2", 4, 2, 16, 0, kernels::RopeLayout::kHalves, RopeType::kDefault, false,
     false, false, 0, 7},
    {"qwen2_window13_last_layer", 4, 2, 16, 0, kernels::RopeLayout::kHalves, RopeType::kDefault,
     true, true, false, 0, 13, true},
};

INSTANTIATE_TEST_SUITE_P(Variants, ForwardReferenceTest,
                         ::testing::Combine(::testing::ValuesIn(kVariants),
                                            ::testing::ValuesIn(ringserve::testing::TestDevices())),
                         [](const auto& info) {
                           return std::get<0>(info.param).name + "_" + std::get<1>(info.param).name;
                         });

INSTANTIATE_TEST_SUITE_P(
    SixteenBitKvCaches, ForwardReferenceTest,
    ::testing::Combine(::testing::ValuesIn(kVariants),
                       ::testing::ValuesIn(ringserve::testing::NarrowKvCacheDevices())),
    [](const auto& info) {
      return std::get<0>(info.param).name + "_" + std::get<1>(info.param).name;
    });

// A block table can be wrong two ways, and the message says which (one over the limit used
// to read "has 4 blocks, needs 2", as if it were short).
TEST(ForwardValidationTest, BadBatchesAreRefusedWithoutRunning) {
  auto backend = kernels::CreateBackend("cpu");
  ASSERT_TRUE(backend.ok());
  const ModelConfig config = ConfigFor(kVariants[0]);
  auto checkpoint = MakeCheckpoint(config);
  ModelOptions options;
  options.num_kv_blocks = 4;
  options.max_seqs = 2;
  options.max_batch_tokens = 32;
  options.max_blocks_per_seq = 3;
  auto model = LlamaModel::Create(*checkpoint, backend->get(), options);
  ASSERT_TRUE(model.ok()) << model.status();
  std::vector<float> logits;
  const std::vector<int32_t> tokens(40, 1), bad_token = {500}, table = {0, 1, 2, 3};
  const std::vector<int32_t> bad_table = {0, 99};
  EXPECT_FALSE((*model)->Forward({}, &logits).ok());
  const SequenceChunk too_many{tokens, 0, std::span(table).first(3), true};
  EXPECT_FALSE((*model)->Forward(std::span(&too_many, 1), &logits).ok());
  const SequenceChunk vocab{bad_token, 0, std::span(table).first(1), true};
  EXPECT_FALSE((*model)->Forward(std::span(&vocab, 1), &logits).ok());
  const SequenceChunk block{std::span(tokens).first(20), 0, bad_table, true};
  EXPECT_FALSE((*model)->Forward(std::span(&block, 1), &logits).ok());
  const SequenceChunk short_table{std::span(tokens).first(20), 0, std::span(table).first(1), true};
  EXPECT_THAT((*model)->Forward(std::span(&short_table, 1), &logits).message(),
              ::testing::HasSubstr("has 1 blocks, needs at least 2 for positions up to 20"));
  const SequenceChunk long_table{std::span(tokens).first(20), 0, table, true};
  EXPECT_THAT((*model)->Forward(std::span(&long_table, 1), &logits).message(),
              ::testing::HasSubstr("has 4 blocks, more than max_blocks_per_seq 3"));
  // Device sampling needs one chain per sampled row, and logits rows among them.
  const SequenceChunk good{std::span(tokens).first(4), 0, std::span(table).first(1), true};
  const kernels::RowSampling greedy;
  EXPECT_THAT((*model)->ForwardSampled(std::span(&good, 1), {}).status().message(),
              ::testing::HasSubstr("0 sampling chains for 1 sampled rows"));
  const std::vector<int32_t> row_one = {1};
  EXPECT_THAT((*model)
                  ->ForwardSampled(std::span(&good, 1),
                                   {.chains = std::span(&greedy, 1), .logits_rows = row_one})
                  .status()
                  .message(),
              ::testing::HasSubstr("logits row 1 of 1 sampled rows"));
  EXPECT_THAT((*model)
                  ->ForwardSampled(std::span(&good, 1),
                                   {.chains = std::span(&greedy, 1), .logprob_rows = row_one})
                  .status()
                  .message(),
              ::testing::HasSubstr("logprob row 1 of 1 sampled rows"));
  const kernels::RowSampling past_end{.penalty_begin = 0, .penalty_end = 2};
  const std::vector<kernels::PenaltyEntry> one = {{.token = 1, .count = 1}};
  EXPECT_THAT((*model)
                  ->ForwardSampled(std::span(&good, 1),
                                   {.chains = std::span(&past_end, 1), .penalties = one})
                  .status()
                  .message(),
              ::testing::HasSubstr("penalty range [0, 2) of 1 entries"));
  EXPECT_TRUE(
      (*model)->ForwardSampled(std::span(&good, 1), {.chains = std::span(&greedy, 1)}).ok());
}

}  // namespace
}  // namespace ringserve::model
