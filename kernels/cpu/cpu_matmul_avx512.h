// The AVX-512 body of cpu::MatMul (cpu_matmul.h), compiled for AVX-512 under a target
// attribute and called only when IsaSupported(Isa::kAvx512). Same layout, same per-output
// arithmetic as the AVX2 body, so the two give bit-identical results.
#ifndef RINGSERVE_KERNELS_CPU_CPU_MATMUL_AVX512_H_
#define RINGSERVE_KERNELS_CPU_CPU_MATMUL_AVX512_H_

#include <cstdint>

#include "kernels/cpu/cpu_matmul.h"

namespace ringserve::kernels::cpu {

// One thread's share of the product: output panels [p0, p1), every row of x.
void MatMulPanelsAvx512(const MatMulArgs& args, int64_t p0, int64_t p1);

}  // namespace ringserve::kernels::cpu

#endif  // RINGSERVE_KERNELS_CPU_CPU_MATMUL_AVX512_H_
