// The namespace of the CUDA backend's code. tests/unit/kernels/cuda_emu compiles the same
// sources with g++ into a CPU emulation of the device under another namespace, so the real
// kernels and launchers run in the tests of machines without a GPU.
#ifndef RINGSERVE_KERNELS_CUDA_CUDA_NAMESPACE_H_
#define RINGSERVE_KERNELS_CUDA_CUDA_NAMESPACE_H_

#ifndef RS_CUDA_NS
#define RS_CUDA_NS cuda
#endif

#endif  // RINGSERVE_KERNELS_CUDA_CUDA_NAMESPACE_H_
