// RS_HD marks a function that runs on the host and, under nvcc, on the device too, so the
// CUDA kernels and host code (and the CPU emulation of tests/unit/kernels/cuda_emu) share
// one definition of the arithmetic they must agree on bit for bit.
#ifndef RINGSERVE_KERNELS_HOST_DEVICE_H_
#define RINGSERVE_KERNELS_HOST_DEVICE_H_

#ifdef __CUDACC__
#define RS_HD __host__ __device__ __forceinline__
#else
#define RS_HD inline
#endif

#endif  // RINGSERVE_KERNELS_HOST_DEVICE_H_
