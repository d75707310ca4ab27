#include "kernels/cpu/cpu_isa.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace ringserve::kernels::cpu {
namespace {

constexpr Isa kIsas[] = {Isa::kAvx2, Isa::kAvx512, Isa::kAvx512Vnni};

Isa BestSupported() {
  Isa best = Isa::kAvx2;
  for (const Isa isa : kIsas) {
    if (IsaSupported(isa)) best = isa;
  }
  return best;
}

// BestSupported(), capped by RINGSERVE_CPU_ISA where it names a supported ISA.
Isa ChooseIsa() {
  const Isa best = BestSupported();
  const char* wanted = std::getenv("RINGSERVE_CPU_ISA");
  if (wanted == nullptr || *wanted == '\0') return best;
  for (const Isa isa : kIsas) {
    if (std::strcmp(wanted, IsaName(isa)) != 0) continue;
    if (IsaSupported(isa)) return isa;
    std::fprintf(stderr, "RINGSERVE_CPU_ISA=%s: this CPU lacks it; using %s\n", wanted,
                 IsaName(best));
    return best;
  }
  std::fprintf(stderr, "RINGSERVE_CPU_ISA=%s: not one of avx2, avx512, avx512-vnni; using %s\n",
               wanted, IsaName(best));
  return best;
}

}  // namespace

bool IsaSupported(Isa isa) {
  // libgcc's and compiler-rt's CPU probes also check, via XGETBV, that the OS saves the
  // ZMM and mask registers, so a kernel or hypervisor that disabled them reads false.
  static const bool avx512 =
      __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq");
  static const bool vnni = avx512 && __builtin_cpu_supports("avx512vnni");
  switch (isa) {
    case Isa::kAvx2:
      return true;  // the build's baseline: the process would not have started without it
    case Isa::kAvx512:
      return avx512;
    case Isa::kAvx512Vnni:
      return vnni;
  }
  return false;
}

Isa BestIsa() {
  static const Isa best = ChooseIsa();
  return best;
}

const char* IsaName(Isa isa) {
  switch (isa) {
    case Isa::kAvx2:
      return "avx2";
    case Isa::kAvx512:
      return "avx512";
    case Isa::kAvx512Vnni:
      return "avx512-vnni";
  }
  return "unknown";
}

}  // namespace ringserve::kernels::cpu
