#include "kernels/cuda/cublaslt_api.h"

#include <dlfcn.h>

#include <string>
#include <type_traits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "kernels/cuda/cuda_namespace.h"

#ifndef RINGSERVE_CUBLASLT_LIBRARY
#define RINGSERVE_CUBLASLT_LIBRARY "libcublasLt.so"
#endif
#ifndef RINGSERVE_CUBLASLT_SONAME
#define RINGSERVE_CUBLASLT_SONAME "libcublasLt.so"
#endif

namespace ringserve::kernels::RS_CUDA_NS {
namespace {

absl::StatusOr<CublasLtApi> Load() {
  const std::string configured = RINGSERVE_CUBLASLT_LIBRARY;
  void* lib = nullptr;
  std::string errors;
  for (const std::string& name : {configured, std::string(RINGSERVE_CUBLASLT_SONAME)}) {
    lib = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (lib != nullptr) break;
    const char* error = dlerror();
    absl::StrAppend(&errors, errors.empty() ? "" : "; ", error != nullptr ? error : name);
  }
  if (lib == nullptr) return absl::FailedPreconditionError("cannot load cuBLASLt: " + errors);
  CublasLtApi api{};
  std::string missing;
  auto bind = [&](auto& fn, const char* symbol) {
    fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(lib, symbol));
    if (fn == nullptr) absl::StrAppend(&missing, " ", symbol);
  };
  bind(api.Create, "cublasLtCreate");
  bind(api.Destroy, "cublasLtDestroy");
  bind(api.GetStatusString, "cublasLtGetStatusString");
  bind(api.MatmulDescCreate, "cublasLtMatmulDescCreate");
  bind(api.MatmulDescDestroy, "cublasLtMatmulDescDestroy");
  bind(api.MatmulDescSetAttribute, "cublasLtMatmulDescSetAttribute");
  bind(api.MatrixLayoutCreate, "cublasLtMatrixLayoutCreate");
  bind(api.MatrixLayoutDestroy, "cublasLtMatrixLayoutDestroy");
  bind(api.MatrixLayoutSetAttribute, "cublasLtMatrixLayoutSetAttribute");
  bind(api.MatmulPreferenceCreate, "cublasLtMatmulPreferenceCreate");
  bind(api.MatmulPreferenceDestroy, "cublasLtMatmulPreferenceDestroy");
  bind(api.MatmulPreferenceSetAttribute, "cublasLtMatmulPreferenceSetAttribute");
  bind(api.MatmulAlgoGetHeuristic, "cublasLtMatmulAlgoGetHeuristic");
  bind(api.MatmulAlgoCheck, "cublasLtMatmulAlgoCheck");
  bind(api.MatmulAlgoConfigGetAttribute, "cublasLtMatmulAlgoConfigGetAttribute");
  bind(api.Matmul, "cublasLtMatmul");
  if (!missing.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("cuBLASLt (", configured, ") lacks", missing));
  }
  return api;  // the library stays loaded for the process
}

}  // namespace

absl::StatusOr<const CublasLtApi*> LoadCublasLt() {
  static const absl::StatusOr<CublasLtApi>* const api = new absl::StatusOr<CublasLtApi>(Load());
  if (!api->ok()) return api->status();
  return &**api;
}

}  // namespace ringserve::kernels::RS_CUDA_NS
