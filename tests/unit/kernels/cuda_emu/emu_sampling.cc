// kernels/cuda/sampling.cu compiled for the CPU emulation (see cuda_emu_prelude.h).
// The prelude must come first.
// clang-format off
#include "tests/unit/kernels/cuda_emu/cuda_emu_prelude.h"
#include "kernels/cuda/sampling.cu"
// clang-format on
