// The shape and hyper-parameters of a Llama-family model, independent of file format.
#ifndef RINGSERVE_WORKER_MODEL_MODEL_CONFIG_H_
#define RINGSERVE_WORKER_MODEL_MODEL_CONFIG_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "kernels/backend.h"
#include "worker/model/rope_scaling.h"

namespace ringserve::model {

struct ModelConfig {
  std::string architecture = "llama";
  int dim = 0;         // embedding width
  int hidden_dim = 0;  // FFN width
  int num_layers = 0;
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;  // usually dim / num_heads
  int vocab_size = 0;
  int max_seq_len = 0;
  float rms_eps = 1e-5F;
  float rope_theta = 10000.0F;
  int rotary_dim = 0;  // 0 = head_dim
  kernels::RopeLayout rope_layout = kernels::RopeLayout::kAdjacentPairs;
  RopeScaling rope_scaling;
  // Per-frequency divisors some GGUF files carry instead of Llama 3 scaling parameters
  // (llama.cpp's rope_freqs.weight); applied after rope_scaling. Empty = none.
  std::vector<float> rope_freq_divisors;
  bool tied_embeddings = false;
  // The Q, K and V projections add a bias (blk.N.attn_{q,k,v}.bias): Qwen2, and Llama
  // checkpoints with "attention_bias": true.
  bool attention_bias = false;
  // Each Q and K head is RMS-normalised (blk.N.attn_{q,k}_norm, head_dim wide) after the
  // projection and before RoPE: Qwen3.
  bool qk_norm = false;
  // Sliding-window attention: > 0, the layers marked in sliding_layers (every layer while it
  // is empty: Mistral 7B v0.1) attend to each query's last sliding_window keys only; the
  // others, and every layer at 0, to the whole context.
  int sliding_window = 0;
  std::vector<bool> sliding_layers;  // empty, or one per layer

  // AttentionShape::window of `layer`.
  int LayerWindow(int layer) const {
    return sliding_layers.empty() || sliding_layers[static_cast<size_t>(layer)] ? sliding_window
                                                                                : 0;
  }

  // Fills derived fields (head_dim, rotary_dim) and checks the shape is a Llama we can
  // run. Errors are INVALID_ARGUMENT naming the offending field.
  absl::Status Validate();
  // Parameters, counting the output matrix once when tied.
  int64_t NumParameters() const;
};

}  // namespace ringserve::model

#endif  // RINGSERVE_WORKER_MODEL_MODEL_CONFIG_H_
