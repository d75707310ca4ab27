// Error checks for CUDA runtime and cuBLASLt calls. Each carries the expression and file:line.
// RS_CUDA_CHECK aborts (ops return void; a device fault leaves nothing to recover);
// RS_CUDA_RETURN_IF_ERROR turns the error into an absl::Status where the caller can report one.
#ifndef RINGSERVE_KERNELS_CUDA_CUDA_CHECK_H_
#define RINGSERVE_KERNELS_CUDA_CUDA_CHECK_H_

#include <cuda_runtime_api.h>

#include <string>

#include "kernels/cuda/cuda_namespace.h"

namespace ringserve::kernels::RS_CUDA_NS {

// "expr at file:line: cudaErrorX (message)".
std::string CudaErrorMessage(cudaError_t error, const char* expr, const char* file, int line);
[[noreturn]] void CudaCheckFailed(cudaError_t error, const char* expr, const char* file, int line);
[[noreturn]] void CublasCheckFailed(int status, const char* expr, const char* file, int line);

// Set while this thread enqueues the ops of a graph capture (CudaBackend::CaptureGraph). A
// capture that has gone invalid fails every later call on its stream until
// cudaStreamEndCapture, which reports it and which CaptureGraph returns as a status (its
// caller then runs those ops eagerly): until then the checks let capture errors pass.
class CaptureScope {
 public:
  CaptureScope();
  ~CaptureScope();
  CaptureScope(const CaptureScope&) = delete;
  CaptureScope& operator=(const CaptureScope&) = delete;
};
// Whether `error` only says that this thread's capture is invalid (inside a CaptureScope).
bool IsCaptureErrorWhileCapturing(cudaError_t error);

}  // namespace ringserve::kernels::RS_CUDA_NS

#define RS_CUDA_CHECK(expr)                                                              \
  do {                                                                                   \
    const cudaError_t rs_cuda_error_ = (expr);                                           \
    if (rs_cuda_error_ != cudaSuccess &&                                                 \
        !::ringserve::kernels::RS_CUDA_NS::IsCaptureErrorWhileCapturing(rs_cuda_error_)) \
      ::ringserve::kernels::RS_CUDA_NS::CudaCheckFailed(rs_cuda_error_, #expr, __FILE__, \
                                                        __LINE__);                       \
  } while (0)

// A kernel launch: checks the launch itself (configuration errors); faults inside the kernel
// surface at the next synchronising call.
#define RS_CUDA_CHECK_LAUNCH() RS_CUDA_CHECK(cudaGetLastError())

// A failed call also becomes the thread's last error, which the next launch check would
// report as its own: it is taken here, with the status that reports it.
#define RS_CUDA_RETURN_IF_ERROR(expr)                                                  \
  do {                                                                                 \
    const cudaError_t rs_cuda_error_ = (expr);                                         \
    if (rs_cuda_error_ != cudaSuccess) {                                               \
      static_cast<void>(cudaGetLastError());                                           \
      return ::absl::InternalError(::ringserve::kernels::RS_CUDA_NS::CudaErrorMessage( \
          rs_cuda_error_, #expr, __FILE__, __LINE__));                                 \
    }                                                                                  \
  } while (0)

#define RS_CUBLAS_CHECK(expr)                                                                  \
  do {                                                                                         \
    const auto rs_cublas_status_ = (expr);                                                     \
    if (static_cast<int>(rs_cublas_status_) != 0)                                              \
      ::ringserve::kernels::RS_CUDA_NS::CublasCheckFailed(static_cast<int>(rs_cublas_status_), \
                                                          #expr, __FILE__, __LINE__);          \
  } while (0)

#endif  // RINGSERVE_KERNELS_CUDA_CUDA_CHECK_H_
