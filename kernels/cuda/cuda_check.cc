#include "kernels/cuda/cuda_check.h"

#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "kernels/cuda/cublaslt_api.h"
#include "kernels/cuda/cuda_namespace.h"

namespace ringserve::kernels::RS_CUDA_NS {
namespace {

thread_local bool t_capturing = false;

}  // namespace

CaptureScope::CaptureScope() { t_capturing = true; }
CaptureScope::~CaptureScope() { t_capturing = false; }

bool IsCaptureErrorWhileCapturing(cudaError_t error) {
  if (!t_capturing) return false;
  switch (error) {
    case cudaErrorStreamCaptureUnsupported:
    case cudaErrorStreamCaptureInvalidated:
    case cudaErrorStreamCaptureMerge:
    case cudaErrorStreamCaptureUnmatched:
    case cudaErrorStreamCaptureUnjoined:
    case cudaErrorStreamCaptureIsolation:
    case cudaErrorStreamCaptureImplicit:
    case cudaErrorStreamCaptureWrongThread:
      return true;
    default:
      return false;
  }
}

std::string CudaErrorMessage(cudaError_t error, const char* expr, const char* file, int line) {
  return absl::StrCat(expr, " at ", file, ":", line, ": ", cudaGetErrorName(error), " (",
                      cudaGetErrorString(error), ")");
}

void CudaCheckFailed(cudaError_t error, const char* expr, const char* file, int line) {
  std::fprintf(stderr, "CUDA error: %s\n", CudaErrorMessage(error, expr, file, line).c_str());
  std::fflush(stderr);
  std::abort();
}

void CublasCheckFailed(int status, const char* expr, const char* file, int line) {
  auto api = LoadCublasLt();
  const char* name =
      api.ok() ? (*api)->GetStatusString(static_cast<cublasStatus_t>(status)) : "unknown";
  std::fprintf(stderr, "cuBLASLt error: %s at %s:%d: status %d (%s)\n", expr, file, line, status,
               name);
  std::fflush(stderr);
  std::abort();
}

}  // namespace ringserve::kernels::RS_CUDA_NS
