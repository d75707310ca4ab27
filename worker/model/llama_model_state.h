// LlamaModel's device-side state, shared by the two files that implement it: creation
// (llama_model.cc uploads the weights and allocates the workspace) and the forward pass
// (llama_forward.cc reads them every step). Internal to those files.
#ifndef RINGSERVE_WORKER_MODEL_LLAMA_MODEL_STATE_H_
#define RINGSERVE_WORKER_MODEL_LLAMA_MODEL_STATE_H_

#include <array>
#include <cstdint>
#include <vector>

#include "kernels/backend.h"
#include "worker/model/llama_model.h"

namespace ringserve::model {

// Q, K and V are one matrix (rows stacked), and so are gate and up: one product each
// instead of three and two, which halves the launches and lets small K/V products ride on
// the large Q one (decode at batch 1 is all weight reads; a product per matrix costs a
// launch and a partly idle device each). A stack whose join would re-round a file's compact
// parts is kept one weight a part instead (StackKeptApart), their products filling adjacent
// columns.
struct LlamaModel::LayerWeights {
  kernels::Weight attn_norm, wo, ffn_norm, w_down;
  std::vector<kernels::Weight> wqkv, w_gate_up;
  kernels::Weight qkv_bias;        // [1, q + 2 kv] when the model has attention biases
  kernels::Weight q_norm, k_norm;  // [1, head_dim] when the model norms Q and K heads
  // The LoRA adapters' matrices of each projection (lora_adapter.h's order), slot i holding
  // lora_slots()[i]'s rows (zeros past its rank there, and where it leaves the projection
  // alone); rank 0 where no adapter changes it.
  struct Lora {
    kernels::LoraStack stack;
    kernels::DeviceBuffer a, b_t;
  };
  std::array<Lora, kNumLoraTargets> lora;
};

// Activation buffers for the largest batch the options allow, allocated once.
//
// The residual stream, the projections added to it (delta) and qkv are f32 whatever the
// activation dtype: they are written by GEMMs that accumulate in f32 and read only by the
// norms, RoPE and attention's q load, so keeping them wide costs no GEMM speed, and it drops
// five of the bf16 roundings per layer that weigh most in the logits' error (bench/RESULTS.md,
// "bf16 error budget"). gate_up, the largest, stays narrow: f32 would double the extra
// traffic for a fifth of the gain. What a GEMM reads (normed, attn, act, sampled), gate_up
// and the KV cache are in the activation dtype.
struct LlamaModel::Workspace {
  kernels::DeviceBuffer residual, normed, qkv, attn, delta, gate_up, act, sampled, logits, ids,
      sampling, penalties, logprob_rows, logprobs, meta;
  kernels::DeviceBuffer lora_scratch;  // [max_batch_tokens, largest adapter rank] f32
  kernels::Tensor Residual(int n) const { return Wide(residual, n, dim); }
  kernels::Tensor Normed(int n) const { return Make(normed, n, dim); }
  kernels::Tensor Qkv(int n) const { return Wide(qkv, n, qkv_cols); }
  kernels::Tensor Attn(int n) const { return Make(attn, n, q_cols); }
  kernels::Tensor Delta(int n) const { return Wide(delta, n, dim); }
  kernels::Tensor GateUp(int n) const { return Make(gate_up, n, 2 * hidden); }
  kernels::Tensor Act(int n) const { return Make(act, n, hidden); }
  kernels::Tensor Sampled(int n) const { return Make(sampled, n, dim); }
  // Logits stay f32 whatever the activation dtype: sampling and the host copy read floats.
  kernels::Tensor Logits(int n) const {
    return kernels::Tensor::Of(logits.data(), kernels::DType::kF32, n, vocab);
  }
  kernels::Tensor Make(const kernels::DeviceBuffer& b, int n, int64_t cols) const {
    return kernels::Tensor::Of(b.data(), dtype, n, cols);
  }
  static kernels::Tensor Wide(const kernels::DeviceBuffer& b, int n, int64_t cols) {
    return kernels::Tensor::Of(b.data(), kernels::DType::kF32, n, cols);
  }
  kernels::DType dtype;
  int64_t dim, qkv_cols, q_cols, hidden, vocab;
};

}  // namespace ringserve::model

#endif  // RINGSERVE_WORKER_MODEL_LLAMA_MODEL_STATE_H_
