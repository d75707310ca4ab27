// The fast MatMul: cuBLASLt with one fixed algorithm per product shape, so it is batch
// invariant.
//
// cuBLAS's heuristic picks a kernel (tile shape, split-K factor, stream-K) from the whole
// problem, including the number of rows n, so by default a row's bits change with the batch
// size. Here the heuristic is asked once per (weight shape, dtypes, leading dimensions,
// alignments) for a fixed n (algo_rows(): 128 unless SetAlgoRows says otherwise), restricted
// to algorithms without split-K
// reduction (CUBLASLT_REDUCTION_SCHEME_NONE, SPLITK_NUM 1), and checked to run at n = 1 and
// n = kMaxRows. That one algorithm then serves every n: the same kernel with the same tile
// walks each output element's k loop in the same order whatever n is, so each row's result
// depends only on that row. tests/unit/kernels/batch_invariance_test.cc checks it bit for bit
// on the device. A shape for which no such algorithm exists falls back to the simple kernel.
#ifndef RINGSERVE_KERNELS_CUDA_CUBLASLT_MATMUL_H_
#define RINGSERVE_KERNELS_CUDA_CUBLASLT_MATMUL_H_

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <tuple>

#include "absl/status/statusor.h"
#include "kernels/cuda/cublaslt_api.h"
#include "kernels/cuda/cuda_namespace.h"
#include "kernels/cuda/cuda_ops.h"

namespace ringserve::kernels::RS_CUDA_NS {

// Owned by CudaBackend; used from its one calling thread. `workspace` (device memory,
// allocated once by the backend) must outlive it.
class CublasLtMatMul {
 public:
  // The heuristic is queried for this many rows by default; the chosen algorithm serves all.
  static constexpr int64_t kDefaultAlgoRows = 128;
  // Algorithms must accept every n up to this many rows.
  static constexpr int64_t kMaxRows = 1 << 16;

  static absl::StatusOr<std::unique_ptr<CublasLtMatMul>> Create(void* workspace,
                                                                size_t workspace_bytes);
  ~CublasLtMatMul();
  CublasLtMatMul(const CublasLtMatMul&) = delete;
  CublasLtMatMul& operator=(const CublasLtMatMul&) = delete;

  // y[n, w_rows] = x[n, k] w^T, w contiguous [w_rows, k] in x.dtype; y in x.dtype or f32.
  void Run(cudaStream_t stream, const Mat& x, const void* w, int64_t w_rows, const Mat& y);

  // The row count each product's algorithm is chosen for. A heuristic asked for many rows
  // picks wide tiles, good for prefill but few thread blocks at decode sizes; asked for few,
  // the reverse. SetAlgoRows drops every plan, so the next product of each shape is planned
  // anew (and its rows change bits); INVALID_ARGUMENT outside [1, kMaxRows].
  int64_t algo_rows() const { return algo_rows_; }
  absl::Status SetAlgoRows(int64_t rows);

  // Product shapes planned so far, and how many of them use the simple kernel.
  int num_plans() const { return static_cast<int>(plans_.size()); }
  int num_simple_plans() const;

 private:
  // (w_rows, k, x dtype, y dtype, ld x, ld y, alignment of x, w, y in bytes)
  using Key = std::tuple<int64_t, int64_t, int, int, int64_t, int64_t, int, int, int>;
  struct Plan {
    bool simple = false;  // no algorithm qualified: LaunchSimpleMatMul
    cublasLtMatmulAlgo_t algo{};
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  };

  CublasLtMatMul(const CublasLtApi* api, cublasLtHandle_t handle, void* workspace,
                 size_t workspace_bytes)
      : api_(api), handle_(handle), workspace_(workspace), workspace_bytes_(workspace_bytes) {}
  Plan MakePlan(const Key& key);
  void DestroyPlans();
  bool Qualifies(const Plan& plan, const cublasLtMatmulAlgo_t& algo) const;
  std::string AlgoConfig(const cublasLtMatmulAlgo_t& algo) const;
  void SetRows(const Plan& plan, int64_t n) const;

  const CublasLtApi* api_;
  cublasLtHandle_t handle_;
  void* workspace_;
  size_t workspace_bytes_;
  int64_t algo_rows_ = kDefaultAlgoRows;
  std::map<Key, Plan> plans_;
};

}  // namespace ringserve::kernels::RS_CUDA_NS

#endif  // RINGSERVE_KERNELS_CUDA_CUBLASLT_MATMUL_H_
