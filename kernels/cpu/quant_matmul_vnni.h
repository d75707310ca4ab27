// The AVX-512 VNNI body of the quantized products (quant_matmul.h), compiled under a target
// attribute and called only when IsaSupported(Isa::kAvx512Vnni).
#ifndef RINGSERVE_KERNELS_CPU_QUANT_MATMUL_VNNI_H_
#define RINGSERVE_KERNELS_CPU_QUANT_MATMUL_VNNI_H_

#include <cstdint>

#include "kernels/cpu/cpu_matmul.h"
#include "kernels/cpu/quant_matmul.h"

namespace ringserve::kernels::cpu {

// One thread's share of the product: output panels [p0, p1), every row of x (quantized).
void MatMulQuantizedPanelsVnni(const MatMulArgs& args, const QuantizedRows& x, int64_t p0,
                               int64_t p1);

}  // namespace ringserve::kernels::cpu

#endif  // RINGSERVE_KERNELS_CPU_QUANT_MATMUL_VNNI_H_
