// kernels/cuda/cuda_backend.cc compiled for the CPU emulation (see cuda_emu_prelude.h).
// The prelude must come first.
// clang-format off
#include "tests/unit/kernels/cuda_emu/cuda_emu_prelude.h"
#include "kernels/cuda/cuda_backend.cc"
// clang-format on

#include "tests/unit/kernels/cuda_emu/cuda_emu_backend.h"

namespace ringserve::kernels::testing {

std::unique_ptr<Backend> MakeEmulatedCudaBackend(DType activation_dtype,
                                                 AttentionKernel attention_kernel) {
  if (!emu::Available()) return nullptr;
  BackendOptions options;
  options.cuda_activation_dtype = activation_dtype;
  options.cuda_simple_matmul = true;
  options.cuda_attention_kernel = attention_kernel;
  auto backend = cuda_emu::CudaBackend::Create(0, options);
  return backend.ok() ? *std::move(backend) : nullptr;
}

void SetEmulatedSplitMode(Backend& backend, int mode) {
  static_cast<cuda_emu::CudaBackend&>(backend).set_attention_split_mode(
      static_cast<cuda_emu::SplitMode>(mode));
}

EmulatedAttentionScratch EmulatedAttention(const Backend& backend) {
  const auto& cuda = static_cast<const cuda_emu::CudaBackend&>(backend);
  return {cuda.attention_item_capacity(), cuda.attention_partial_floats(),
          cuda.last_attention_split_slots()};
}

}  // namespace ringserve::kernels::testing
