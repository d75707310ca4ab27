#include "kernels/cpu/cpu_isa.h"

namespace ringserve::kernels::cpu {

bool IsaSupported(Isa isa) {
  switch (isa) {
    case Isa::kAvx2:
      return true;  // the build's baseline: the process would not have started without it
    case Isa::kAvx512: {
      // libgcc's and compiler-rt's CPU probes also check, via XGETBV, that the OS saves the
      // ZMM and mask registers, so a kernel or hypervisor that disabled them reads false.
      static const bool supported =
          __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
          __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq");
      return supported;
    }
  }
  return false;
}

Isa BestIsa() {
  static const Isa best = IsaSupported(Isa::kAvx512) ? Isa::kAvx512 : Isa::kAvx2;
  return best;
}

const char* IsaName(Isa isa) { return isa == Isa::kAvx512 ? "avx512" : "avx2"; }

}  // namespace ringserve::kernels::cpu
