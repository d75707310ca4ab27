// Included first by the translation units that compile kernels/cuda/ sources with g++ for
// the emulation: the CUDA host headers, then CUDA's device vocabulary mapped onto
// emu_runtime.h, and the runtime API renamed to the emulation's. The backend's namespace
// becomes ringserve::kernels::cuda_emu, so the real backend can live in the same binary.
#ifndef RINGSERVE_TESTS_UNIT_KERNELS_CUDA_EMU_CUDA_EMU_PRELUDE_H_
#define RINGSERVE_TESTS_UNIT_KERNELS_CUDA_EMU_CUDA_EMU_PRELUDE_H_

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <tuple>

#include "tests/unit/kernels/cuda_emu/emu_runtime.h"

#define RINGSERVE_CUDA_EMULATION 1
#define RS_CUDA_NS cuda_emu

#undef __host__
#undef __device__
#undef __global__
#undef __shared__
#undef __forceinline__
#undef __launch_bounds__
#define __host__
#define __device__
#define __global__
#define __shared__ static  // blocks run one at a time, so one copy serves each in turn
#define __forceinline__ inline
#define __launch_bounds__(...)

#define threadIdx (::emu::ThreadIdx())
#define blockIdx (::emu::BlockIdx())
#define blockDim (::emu::BlockDim())
#define gridDim (::emu::GridDim())
#define __syncthreads() ::emu::SyncThreads()
#define __syncwarp(...) ::emu::SyncWarp()
#define __shfl_sync(mask, value, lane) ::emu::Shfl(value, lane)
#define __shfl_xor_sync(mask, value, lane) ::emu::Shfl(value, lane, true)
#define __trap() ::emu::Trap()

// The arguments are evaluated and copied at the launch, as CUDA does, so a launch recorded
// by a stream capture replays with the values it had then. The kernel's address lets the
// launch be checked against its cudaFuncSetAttribute limits.
#define RS_LAUNCH(kernel, grid, block, shared_bytes, stream, ...)              \
  ::emu::Launch(                                                               \
      stream, dim3(grid), dim3(block), shared_bytes,                           \
      [rs_emu_kernel_ = kernel, rs_emu_args_ = std::make_tuple(__VA_ARGS__)] { \
        std::apply(rs_emu_kernel_, rs_emu_args_);                              \
      },                                                                       \
      ::emu::KernelAddress(kernel))
#define RS_DYNAMIC_SHARED(type, name) type* name = static_cast<type*>(::emu::DynamicShared())

#define cudaGetDeviceCount ::emu::cudaGetDeviceCount
#define cudaDeviceGetAttribute ::emu::cudaDeviceGetAttribute
#define cudaSetDevice ::emu::cudaSetDevice
#define cudaStreamCreateWithFlags ::emu::cudaStreamCreateWithFlags
#define cudaStreamSynchronize ::emu::cudaStreamSynchronize
#define cudaStreamDestroy ::emu::cudaStreamDestroy
#define cudaStreamIsCapturing ::emu::cudaStreamIsCapturing
#define cudaMalloc ::emu::cudaMalloc
#define cudaFree ::emu::cudaFree
#define cudaHostAlloc ::emu::cudaHostAlloc
#define cudaFreeHost ::emu::cudaFreeHost
#define cudaMemcpyAsync ::emu::cudaMemcpyAsync
#define cudaMemcpy2DAsync ::emu::cudaMemcpy2DAsync
#define cudaMemsetAsync ::emu::cudaMemsetAsync
#define cudaMemGetInfo ::emu::cudaMemGetInfo
#define cudaGetLastError ::emu::cudaGetLastError
#define cudaGetErrorName ::emu::cudaGetErrorName
#define cudaGetErrorString ::emu::cudaGetErrorString
#define cudaFuncSetAttribute ::emu::cudaFuncSetAttribute
#define cudaFuncGetAttributes ::emu::cudaFuncGetAttributes
#define cudaStreamBeginCapture ::emu::cudaStreamBeginCapture
#define cudaStreamEndCapture ::emu::cudaStreamEndCapture
#define cudaGraphInstantiate ::emu::cudaGraphInstantiate
#define cudaGraphLaunch ::emu::cudaGraphLaunch
#define cudaGraphDestroy ::emu::cudaGraphDestroy
#define cudaGraphExecDestroy ::emu::cudaGraphExecDestroy

// Device code calls these unqualified.
using std::max;
using std::min;

// Integer atomics (shared or global). Fibers switch only at barriers, so a plain
// read-modify-write is atomic; the kernels use them only where the result does not depend on
// the order of the additions.
inline int atomicAdd(int* address, int value) {
  const int old = *address;
  *address = old + value;
  return old;
}
inline unsigned atomicAdd(unsigned* address, unsigned value) {
  const unsigned old = *address;
  *address = old + value;
  return old;
}
inline unsigned long long atomicAdd(unsigned long long* address,  // NOLINT(google-runtime-int)
                                    unsigned long long value) {   // NOLINT(google-runtime-int)
  const unsigned long long old = *address;                        // NOLINT(google-runtime-int)
  *address = old + value;
  return old;
}

// mma.sync, which the kernels write as inline PTX (kernels/cuda/mma.cuh).
#include "tests/unit/kernels/cuda_emu/emu_mma.h"

#endif  // RINGSERVE_TESTS_UNIT_KERNELS_CUDA_EMU_CUDA_EMU_PRELUDE_H_
