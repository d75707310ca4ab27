#include "tests/unit/model/random_checkpoint.h"

#include <cstring>
#include <random>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace ringserve::model {
namespace {

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

}  // namespace

std::unique_ptr<Checkpoint> MakeCheckpoint(const ModelConfig& config, uint32_t seed) {
  RandomCheckpoint r;
  r.rng.seed(seed);
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
    if (c.attention_bias) {  // Qwen2's are large (its K biases reach tens)
      r.Add(p + "attn_q.bias", {q}, 1.0F);
      r.Add(p + "attn_k.bias", {kv}, 2.0F);
      r.Add(p + "attn_v.bias", {kv}, 0.5F);
    }
    if (c.qk_norm) {
      r.Add(p + "attn_q_norm.weight", {c.head_dim}, 0.3F, 1.0F);
      r.Add(p + "attn_k_norm.weight", {c.head_dim}, 0.3F, 1.0F);
    }
    r.Add(p + "attn_output.weight", {c.dim, q}, 0.3F);
    r.Add(p + "ffn_norm.weight", {c.dim}, 0.2F, 1.0F);
    r.Add(p + "ffn_gate.weight", {c.hidden_dim, c.dim}, 0.3F);
    r.Add(p + "ffn_up.weight", {c.hidden_dim, c.dim}, 0.3F);
    r.Add(p + "ffn_down.weight", {c.dim, c.hidden_dim}, 0.3F);
  }
  return std::move(r.checkpoint);
}

float* CopyTensor(const Checkpoint& from, const std::string& name, Checkpoint* to) {
  const HostTensor& t = **from.Find(name);
  EXPECT_EQ(t.dtype, kernels::DType::kF32) << name;
  auto* data = static_cast<float*>(to->AllocateOwned(t.bytes));
  std::memcpy(data, t.data, t.bytes);
  HostTensor copy = t;
  copy.data = data;
  to->AddTensor(copy);
  return data;
}

}  // namespace ringserve::model
