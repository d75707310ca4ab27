// The vector instruction sets the CPU kernels are written for, chosen at run time.
//
// The build targets x86-64-v3 (AVX2 + FMA) so the binaries run on any recent x86 machine;
// kernels that also have an AVX-512 version compile it under a target attribute (see
// RS_BEGIN_AVX512 below) and pick it when the CPU and OS support it. Every kernel computes
// the same sequence of float operations per output on either ISA, so the choice changes
// speed only, never a bit of the result (tests/unit/kernels/isa_equivalence_test.cc checks
// this on machines that have both).
//
// RINGSERVE_CPU_ISA (avx2, avx512 or avx512-vnni) caps BestIsa() for a process, to compare
// the paths end to end or to rule one out; an ISA the CPU lacks, or a name it does not
// know, leaves BestIsa() at the best supported one (with a line on stderr).
#ifndef RINGSERVE_KERNELS_CPU_CPU_ISA_H_
#define RINGSERVE_KERNELS_CPU_CPU_ISA_H_

#include <cstdint>

namespace ringserve::kernels::cpu {

enum class Isa : uint8_t {
  kAvx2,    // AVX2 + FMA: the build's baseline
  kAvx512,  // AVX-512 F, VL, BW and DQ (Skylake-SP and later, Zen 4)
  // kAvx512 plus VNNI's byte dot products (Cascade Lake, Ice Lake and later, Zen 4): the
  // quantized products (quant_matmul.h); every other kernel runs as on kAvx512.
  kAvx512Vnni,
};

// Whether `isa` runs the AVX-512 kernels, or the VNNI ones (each ISA above includes the ones
// before it).
constexpr bool HasAvx512(Isa isa) { return isa >= Isa::kAvx512; }
constexpr bool HasAvx512Vnni(Isa isa) { return isa >= Isa::kAvx512Vnni; }

// Whether this CPU and OS can run `isa`. Cheap after the first call.
bool IsaSupported(Isa isa);

// The fastest ISA IsaSupported accepts; what the kernels use unless a test forces one.
Isa BestIsa();

// "avx2", "avx512" or "avx512-vnni".
const char* IsaName(Isa isa);

}  // namespace ringserve::kernels::cpu

// Brackets the definitions of AVX-512 functions in a source file compiled for the baseline.
// A target attribute, unlike compiling the whole file with -mavx512f, leaves the inline
// functions and templates that file instantiates from headers (std::, absl::, simd.h) at
// the baseline: the linker keeps one copy of each, and an AVX-512 copy would crash callers
// on CPUs without it. Include every header before RS_BEGIN_AVX512.
// _Pragma takes one unbroken string literal, so these lines stay long.
// RS_BEGIN_AVX512_VNNI brackets kAvx512Vnni's the same way; RS_END_AVX512 closes both.
// clang-format off
#if defined(__clang__)
#define RS_BEGIN_AVX512 _Pragma("clang attribute push(__attribute__((target(\"avx512f,avx512vl,avx512bw,avx512dq\"))), apply_to = function)")
#define RS_BEGIN_AVX512_VNNI _Pragma("clang attribute push(__attribute__((target(\"avx512f,avx512vl,avx512bw,avx512dq,avx512vnni\"))), apply_to = function)")
#define RS_END_AVX512 _Pragma("clang attribute pop")
#else
#define RS_BEGIN_AVX512 _Pragma("GCC push_options") _Pragma("GCC target(\"avx512f,avx512vl,avx512bw,avx512dq\")")
#define RS_BEGIN_AVX512_VNNI _Pragma("GCC push_options") _Pragma("GCC target(\"avx512f,avx512vl,avx512bw,avx512dq,avx512vnni\")")
#define RS_END_AVX512 _Pragma("GCC pop_options")
#endif
// clang-format on

#endif  // RINGSERVE_KERNELS_CPU_CPU_ISA_H_
