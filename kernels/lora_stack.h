// The LoRA stacks Backend::AddLora reads. Plain C++ (no Abseil), so that the CUDA launchers
// (kernels/cuda/cuda_ops.h) take the same struct the backend interface does.
#ifndef RINGSERVE_KERNELS_LORA_STACK_H_
#define RINGSERVE_KERNELS_LORA_STACK_H_

#include <cstdint>

namespace ringserve::kernels {

// Low-rank adapters (LoRA) of one projection y = x W^T, W [out, in]: one adapter a slot,
// stacked so that every row of a batch may use its own. Slot s adds (x A_s^T) B_s^T with
// A_s [rank, in] at a + s * rank * in and B_s^T [rank, out] (B transposed) at
// b_t + s * rank * out, both device memory in the activation dtype; the adapter's scale
// (alpha / r) is folded into B, and an adapter of lower rank is zero-padded to `rank`.
struct LoraStack {
  const void* a = nullptr;
  const void* b_t = nullptr;
  int num_slots = 0;
  int rank = 0;
  int64_t in = 0;
  int64_t out = 0;
};

}  // namespace ringserve::kernels

#endif  // RINGSERVE_KERNELS_LORA_STACK_H_
