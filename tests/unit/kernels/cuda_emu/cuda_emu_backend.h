// The CUDA backend (kernels/cuda/, the real sources) running on the CPU emulation of
// emu_runtime.h, with the simple MatMul (cuBLASLt has no emulation). Lets the op, batch
// invariance and bit-exactness suites run the CUDA kernels on machines without a GPU.
#ifndef RINGSERVE_TESTS_UNIT_KERNELS_CUDA_EMU_CUDA_EMU_BACKEND_H_
#define RINGSERVE_TESTS_UNIT_KERNELS_CUDA_EMU_CUDA_EMU_BACKEND_H_

#include <cstdint>
#include <memory>

#include "kernels/backend.h"

namespace ringserve::kernels::testing {

// nullptr where the emulation does not run (see emu::Available).
std::unique_ptr<Backend> MakeEmulatedCudaBackend(
    DType activation_dtype, AttentionKernel attention_kernel = AttentionKernel::kSimt);
// CudaBackend::set_attention_split_mode on an emulated backend: 0 auto, 1 never, 2 always.
void SetEmulatedSplitMode(Backend& backend, int mode);
// An emulated backend's attention scratch (CudaBackend's test accessors).
struct EmulatedAttentionScratch {
  int64_t item_capacity = 0;
  int64_t partial_floats = 0;
  int last_split_slots = 0;  // of the last PagedAttention launch; 1: none split-parallel
};
EmulatedAttentionScratch EmulatedAttention(const Backend& backend);

}  // namespace ringserve::kernels::testing

#endif  // RINGSERVE_TESTS_UNIT_KERNELS_CUDA_EMU_CUDA_EMU_BACKEND_H_
