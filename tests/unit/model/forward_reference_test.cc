// The Llama forward pass against a naive float64 implementation written here from the
// architecture's definition: random small models covering GQA, both RoPE layouts, Llama 3
// rope scaling, partial rotary dims, tied and untied output; prefill, decode and mixed
// batches.
#include <cmath>
#include <numbers>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "absl/strings/str_cat.h"
#include "tests/unit/model/test_backends.h"
#include "worker/model/checkpoint.h"
#include "worker/model/llama_model.h"

namespace ringserve::model {
namespace {

using Matrix = std::vector<float>;  // row-major

struct RandomCheckpoint {
  std::unique_ptr<Checkpoint> checkpoint = std::make_unique<Checkpoint>();
  std::mt19937 rng{1234};

  const float* Add(const std::string& name, std::vector<int64_t> shape, float scale,
                   float offset = 0) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    auto* data = static_cast<float*>(checkpoint->AllocateOwned(n * sizeof(float)));
    std::uniform_real_distribution<float> dist(-scale, scale);
    for (int64_t i = 0; i < n; ++i) data[i] = offset + dist(rng);
    HostTensor t;
    t.name = name;
    t.dtype = kernels::DType::kF32;
    t.shape = shape;
    t.data = data;
    t.bytes = n * sizeof(float);
    checkpoint->AddTensor(t);
    return data;
  }
};

std::unique_ptr<Checkpoint> MakeCheckpoint(const ModelConfig& config) {
  RandomCheckpoint r;
  r.checkpoint->config = config;
  r.checkpoint->format = "test";
  const ModelConfig& c = config;
  const int64_t q = static_cast<int64_t>(c.num_heads) * c.head_dim;
  const int64_t kv = static_cast<int64_t>(c.num_kv_heads) * c.head_dim;
  r.Add("token_embd.weight", {c.vocab_size, c.dim}, 1.0F);
  r.Add("output_norm.weight", {c.dim}, 0.2F, 1.0F);
  if (!c.tied_embeddings) r.Add("output.weight", {c.vocab_size, c.dim}, 0.3F);
  for (int l = 0; l < c.num_layers; ++l) {
    const std::string p = absl::StrCat("blk.", l, ".");
    r.Add(p + "attn_norm.weight", {c.dim}, 0.2F, 1.0F);
    r.Add(p + "attn_q.weight", {q, c.dim}, 0.4F);
    r.Add(p + "attn_k.weight", {kv, c.dim}, 0.4F);
    r.Add(p + "attn_v.weight", {kv, c.dim}, 0.3F);
    r.Add(p + "attn_output.weight", {c.dim, q}, 0.3F);
    r.Add(p + "ffn_norm.weight", {c.dim}, 0.2F, 1.0F);
    r.Add(p + "ffn_gate.weight", {c.hidden_dim, c.dim}, 0.3F);
    r.Add(p + "ffn_up.weight", {c.hidden_dim, c.dim}, 0.3F);
    r.Add(p + "ffn_down.weight", {c.dim, c.hidden_dim}, 0.3F);
  }
  return std::move(r.checkpoint);
}

// ---- float64 reference ----
class Reference {
 public:
  explicit Reference(const Checkpoint& ck) : ck_(ck), c_(ck.config) {}

  const float* W(const std::string& name) const { return static_cast<const float*>((*ck_.Find(name))->data); }

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
    double f = std::pow(static_cast<double>(c_.rope_theta), -2.0 * i / rd);
    const RopeScaling& s = c_.rope_scaling;
    if (!s.enabled) return f;
    const double wavelen = 2 * std::numbers::pi / f;
    if (wavelen < s.original_max_position / s.high_freq_factor) return f;
    if (wavelen > s.original_max_position / s.low_freq_factor) return f / s.factor;
    const double smooth = (s.original_max_position / wavelen - s.low_freq_factor) /
                          (s.high_freq_factor - s.low_freq_factor);
    return (1 - smooth) * f / s.factor + smooth * f;
  }

  void Rope(double* head, int pos) const {
    const int rd = c_.rotary_dim > 0 ? c_.rotary_dim : c_.head_dim;
    for (int i = 0; i < rd / 2; ++i) {
      const double a = pos * InvFreq(i);
      const int i0 = c_.rope_layout == kernels::RopeLayout::kAdjacentPairs ? 2 * i : i;
      const int i1 = c_.rope_layout == kernels::RopeLayout::kAdjacentPairs ? 2 * i + 1 : i + rd / 2;
      const double x0 = head[i0];
      const double x1 = head[i1];
      head[i0] = x0 * std::cos(a) - x1 * std::sin(a);
      head[i1] = x0 * std::sin(a) + x1 * std::cos(a);
    }
  }

  // Logits after each position of `tokens`.
  std::vector<std::vector<double>> Run(const std::vector<int32_t>& tokens) const {
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
        auto q = MatVec(W(p + "attn_q.weight"), q_dim, c_.dim, h);
        auto k = MatVec(W(p + "attn_k.weight"), kv_dim, c_.dim, h);
        auto v = MatVec(W(p + "attn_v.weight"), kv_dim, c_.dim, h);
        for (int hh = 0; hh < c_.num_heads; ++hh) Rope(&q[hh * hd], static_cast<int>(t));
        for (int hh = 0; hh < c_.num_kv_heads; ++hh) Rope(&k[hh * hd], static_cast<int>(t));
        keys[l].insert(keys[l].end(), k.begin(), k.end());
        values[l].insert(values[l].end(), v.begin(), v.end());
        std::vector<double> attn(q_dim, 0.0);
        const int group = c_.num_heads / c_.num_kv_heads;
        for (int hh = 0; hh < c_.num_heads; ++hh) {
          const int kvh = hh / group;
          std::vector<double> s(t + 1);
          double mx = -1e300;
          for (size_t j = 0; j <= t; ++j) {
            double dot = 0;
            for (int d = 0; d < hd; ++d) dot += q[hh * hd + d] * keys[l][j * kv_dim + kvh * hd + d];
            s[j] = dot / std::sqrt(static_cast<double>(hd));
            mx = std::max(mx, s[j]);
          }
          double sum = 0;
          for (double& e : s) sum += (e = std::exp(e - mx));
          for (size_t j = 0; j <= t; ++j) {
            for (int d = 0; d < hd; ++d) {
              attn[hh * hd + d] += s[j] / sum * values[l][j * kv_dim + kvh * hd + d];
            }
          }
        }
        auto o = MatVec(W(p + "attn_output.weight"), c_.dim, q_dim, attn);
        for (int i = 0; i < c_.dim; ++i) x[i] += o[i];
        h = Norm(x, W(p + "ffn_norm.weight"));
        auto g = MatVec(W(p + "ffn_gate.weight"), c_.hidden_dim, c_.dim, h);
        auto u = MatVec(W(p + "ffn_up.weight"), c_.hidden_dim, c_.dim, h);
        for (int i = 0; i < c_.hidden_dim; ++i) g[i] = g[i] / (1 + std::exp(-g[i])) * u[i];
        auto d = MatVec(W(p + "ffn_down.weight"), c_.dim, c_.hidden_dim, g);
        for (int i = 0; i < c_.dim; ++i) x[i] += d[i];
      }
      auto h = Norm(x, W("output_norm.weight"));
      const char* head = c_.tied_embeddings ? "token_embd.weight" : "output.weight";
      out.push_back(MatVec(W(head), c_.vocab_size, c_.dim, h));
    }
    return out;
  }

 private:
  const Checkpoint& ck_;
  const ModelConfig& c_;
};

struct Variant {
  std::string name;
  int heads, kv_heads, head_dim, rotary_dim;
  kernels::RopeLayout layout;
  bool llama3_scaling, tied;
};

ModelConfig ConfigFor(const Variant& v) {
  ModelConfig c;
  c.num_heads = v.heads;
  c.num_kv_heads = v.kv_heads;
  c.head_dim = v.head_dim;
  c.dim = v.heads * v.head_dim;
  c.hidden_dim = 3 * c.dim - 5;
  c.num_layers = 2;
  c.vocab_size = 97;
  c.max_seq_len = 256;
  c.rope_theta = 500.0F;  // small theta: every frequency rotates noticeably in 40 tokens
  c.rotary_dim = v.rotary_dim;
  c.rope_layout = v.layout;
  c.tied_embeddings = v.tied;
  if (v.llama3_scaling) {
    c.rope_scaling = {true, 4.0F, 1.0F, 4.0F, 64};
  }
  return c;
}

void ExpectClose(const std::vector<float>& got, const std::vector<double>& want,
                 const std::string& where) {
  ASSERT_EQ(got.size(), want.size()) << where;
  double max_abs = 0;
  for (double w : want) max_abs = std::max(max_abs, std::fabs(w));
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_NEAR(got[i], want[i], 2e-4 * (1 + max_abs)) << where << " logit " << i;
  }
}

class ForwardReferenceTest : public ::testing::TestWithParam<std::tuple<Variant, std::string>> {};

TEST_P(ForwardReferenceTest, PrefillDecodeAndMixedBatchesMatchReference) {
  const auto& [variant, device] = GetParam();
  auto backend = kernels::CreateBackend(device);
  if (!backend.ok()) GTEST_SKIP() << device << ": " << backend.status();
  const ModelConfig config = ConfigFor(variant);
  auto checkpoint = MakeCheckpoint(config);
  ModelOptions options;
  options.num_kv_blocks = 32;
  options.max_seqs = 4;
  auto model = LlamaModel::Create(*checkpoint, backend->get(), options);
  ASSERT_TRUE(model.ok()) << model.status();

  std::mt19937 rng(7);
  std::vector<int32_t> a(41), b(23);
  for (auto& t : a) t = static_cast<int32_t>(rng() % config.vocab_size);
  for (auto& t : b) t = static_cast<int32_t>(rng() % config.vocab_size);
  const Reference ref(*checkpoint);
  const auto ref_a = ref.Run(a);
  const auto ref_b = ref.Run(b);

  // Sequence a: blocks scattered (not contiguous, not in order); b: others.
  const std::vector<int32_t> table_a = {9, 2, 30};
  const std::vector<int32_t> table_b = {5, 17};
  std::vector<float> logits;
  // Pass 1: a prefills 30 tokens while b prefills 16.
  std::vector<SequenceChunk> pass1 = {{std::span(a).first(30), 0, table_a, true},
                                      {std::span(b).first(16), 0, table_b, true}};
  ASSERT_TRUE((*model)->Forward(pass1, &logits).ok());
  const int vocab = config.vocab_size;
  ExpectClose({logits.begin(), logits.begin() + vocab}, ref_a[29], "a@29");
  ExpectClose({logits.begin() + vocab, logits.end()}, ref_b[15], "b@15");
  // Then a decodes one token per pass while b prefills the rest in chunks of 3.
  int pos_b = 16;
  for (int pos_a = 30; pos_a < 41; ++pos_a) {
    std::vector<SequenceChunk> pass = {{std::span(a).subspan(pos_a, 1), pos_a, table_a, true}};
    const int take_b = std::min(3, 23 - pos_b);
    if (take_b > 0) pass.push_back({std::span(b).subspan(pos_b, take_b), pos_b, table_b, true});
    ASSERT_TRUE((*model)->Forward(pass, &logits).ok());
    ExpectClose({logits.begin(), logits.begin() + vocab}, ref_a[pos_a], absl::StrCat("a@", pos_a));
    if (take_b > 0) {
      pos_b += take_b;
      ExpectClose({logits.begin() + vocab, logits.end()}, ref_b[pos_b - 1],
                  absl::StrCat("b@", pos_b - 1));
    }
  }
}

const Variant kVariants[] = {
    {"mha_adjacent_tied", 4, 4, 8, 0, kernels::RopeLayout::kAdjacentPairs, false, true},
    {"gqa2_halves_untied", 4, 2, 16, 0, kernels::RopeLayout::kHalves, false, false},
    {"gqa4_llama3_halves", 8, 2, 8, 0, kernels::RopeLayout::kHalves, true, false},
    {"mqa_partial_rotary", 4, 1, 16, 8, kernels::RopeLayout::kAdjacentPairs, false, true},
};

INSTANTIATE_TEST_SUITE_P(
    Variants, ForwardReferenceTest,
    ::testing::Combine(::testing::ValuesIn(kVariants), ::testing::ValuesIn(TestBackendNames())),
    [](const auto& info) {
      std::string name = std::get<0>(info.param).name + "_" + std::get<1>(info.param);
      std::replace(name.begin(), name.end(), ':', '_');
      return name;
    });

TEST(ForwardValidationTest, BadBatchesAreRefusedWithoutRunning) {
  auto backend = kernels::CreateBackend("cpu");
  ASSERT_TRUE(backend.ok());
  const ModelConfig config = ConfigFor(kVariants[0]);
  auto checkpoint = MakeCheckpoint(config);
  ModelOptions options;
  options.num_kv_blocks = 4;
  options.max_seqs = 2;
  options.max_batch_tokens = 32;
  auto model = LlamaModel::Create(*checkpoint, backend->get(), options);
  ASSERT_TRUE(model.ok()) << model.status();
  std::vector<float> logits;
  const std::vector<int32_t> tokens(40, 1), bad_token = {500}, table = {0, 1, 2};
  const std::vector<int32_t> bad_table = {0, 99};
  EXPECT_FALSE((*model)->Forward({}, &logits).ok());
  const SequenceChunk too_many{tokens, 0, table, true};
  EXPECT_FALSE((*model)->Forward(std::span(&too_many, 1), &logits).ok());
  const SequenceChunk vocab{bad_token, 0, table, true};
  EXPECT_FALSE((*model)->Forward(std::span(&vocab, 1), &logits).ok());
  const SequenceChunk block{std::span(tokens).first(20), 0, bad_table, true};
  EXPECT_FALSE((*model)->Forward(std::span(&block, 1), &logits).ok());
  const SequenceChunk short_table{std::span(tokens).first(20), 0, std::span(table).first(1), true};
  EXPECT_FALSE((*model)->Forward(std::span(&short_table, 1), &logits).ok());
}

}  // namespace
}  // namespace ringserve::model
