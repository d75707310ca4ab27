#include "kernels/cuda/cublaslt_matmul.h"

#include <algorithm>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/check.h"
#include "common/log.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_namespace.h"

namespace ringserve::kernels::RS_CUDA_NS {
namespace {

cudaDataType_t CudaType(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return CUDA_R_32F;
    case DType::kF16:
      return CUDA_R_16F;
    case DType::kBF16:
      return CUDA_R_16BF;
    default:
      break;
  }
  RS_CHECK_MSG(false, "cuBLASLt MatMul: not an activation dtype");
  return CUDA_R_32F;
}

// Largest power of two <= 16 dividing the address of every row: the base and the row pitch.
int AlignmentBytes(const void* base, int64_t row_pitch_bytes) {
  const uintptr_t bits =
      reinterpret_cast<uintptr_t>(base) | static_cast<uintptr_t>(row_pitch_bytes) | 16U;
  return static_cast<int>(bits & (~bits + 1));
}

int64_t ElementBytes(DType dtype) { return static_cast<int64_t>(DTypeBytes(dtype, 1)); }

// Whether `stream` captures a graph that has gone invalid: a product enqueued then fails, and
// CaptureGraph's cudaStreamEndCapture reports the capture (see CaptureScope).
bool CaptureInvalidated(cudaStream_t stream) {
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  return cudaStreamIsCapturing(stream, &capture) == cudaSuccess &&
         capture == cudaStreamCaptureStatusInvalidated;
}

}  // namespace

absl::StatusOr<std::unique_ptr<CublasLtMatMul>> CublasLtMatMul::Create(void* workspace,
                                                                       size_t workspace_bytes) {
  auto api = LoadCublasLt();
  if (!api.ok()) return api.status();
  cublasLtHandle_t handle = nullptr;
  const cublasStatus_t status = (*api)->Create(&handle);
  if (status != CUBLAS_STATUS_SUCCESS) {
    return absl::FailedPreconditionError(
        absl::StrCat("cublasLtCreate: ", (*api)->GetStatusString(status)));
  }
  return std::unique_ptr<CublasLtMatMul>(
      new CublasLtMatMul(*api, handle, workspace, workspace_bytes));
}

CublasLtMatMul::~CublasLtMatMul() {
  DestroyPlans();
  api_->Destroy(handle_);
}

void CublasLtMatMul::DestroyPlans() {
  for (auto& [key, plan] : plans_) {
    if (plan.desc != nullptr) api_->MatmulDescDestroy(plan.desc);
    for (cublasLtMatrixLayout_t layout : {plan.a, plan.b, plan.c}) {
      if (layout != nullptr) api_->MatrixLayoutDestroy(layout);
    }
  }
  plans_.clear();
}

absl::Status CublasLtMatMul::SetAlgoRows(int64_t rows) {
  if (rows < 1 || rows > kMaxRows) {
    return absl::InvalidArgumentError(
        absl::StrCat("cuBLASLt algorithm rows must be in [1, ", kMaxRows, "], got ", rows));
  }
  if (rows != algo_rows_) {
    // Graphs captured before keep the kernels they recorded; only the host-side plans go.
    DestroyPlans();
    algo_rows_ = rows;
  }
  return absl::OkStatus();
}

int CublasLtMatMul::num_simple_plans() const {
  return static_cast<int>(
      std::count_if(plans_.begin(), plans_.end(), [](const auto& kv) { return kv.second.simple; }));
}

void CublasLtMatMul::SetRows(const Plan& plan, int64_t n) const {
  const auto cols = static_cast<uint64_t>(n);
  RS_CUBLAS_CHECK(
      api_->MatrixLayoutSetAttribute(plan.b, CUBLASLT_MATRIX_LAYOUT_COLS, &cols, sizeof(cols)));
  RS_CUBLAS_CHECK(
      api_->MatrixLayoutSetAttribute(plan.c, CUBLASLT_MATRIX_LAYOUT_COLS, &cols, sizeof(cols)));
}

// The algorithm's configuration as "id=.. tile=.. stages=.. swizzle=.. custom=.. cluster=..".
std::string CublasLtMatMul::AlgoConfig(const cublasLtMatmulAlgo_t& algo) const {
  const auto read = [&](cublasLtMatmulAlgoConfigAttributes_t attr, auto zero) -> int64_t {
    decltype(zero) value = 0;
    size_t written = 0;
    const cublasStatus_t status =
        api_->MatmulAlgoConfigGetAttribute(&algo, attr, &value, sizeof(value), &written);
    return status == CUBLAS_STATUS_SUCCESS ? static_cast<int64_t>(value) : -1;
  };
  return absl::StrCat("id=", read(CUBLASLT_ALGO_CONFIG_ID, int32_t{0}),
                      " tile=", read(CUBLASLT_ALGO_CONFIG_TILE_ID, uint32_t{0}),
                      " stages=", read(CUBLASLT_ALGO_CONFIG_STAGES_ID, uint32_t{0}),
                      " swizzle=", read(CUBLASLT_ALGO_CONFIG_CTA_SWIZZLING, uint32_t{0}),
                      " custom=", read(CUBLASLT_ALGO_CONFIG_CUSTOM_OPTION, uint32_t{0}),
                      " cluster=", read(CUBLASLT_ALGO_CONFIG_CLUSTER_SHAPE_ID, uint16_t{0}));
}

// No split-K and a workspace within ours, at the smallest and largest n we will run.
bool CublasLtMatMul::Qualifies(const Plan& plan, const cublasLtMatmulAlgo_t& algo) const {
  int32_t split_k = 1;
  uint32_t scheme = CUBLASLT_REDUCTION_SCHEME_NONE;
  size_t written = 0;
  if (api_->MatmulAlgoConfigGetAttribute(&algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &split_k,
                                         sizeof(split_k), &written) != CUBLAS_STATUS_SUCCESS ||
      api_->MatmulAlgoConfigGetAttribute(&algo, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME, &scheme,
                                         sizeof(scheme), &written) != CUBLAS_STATUS_SUCCESS) {
    return false;
  }
  if (split_k > 1 || scheme != CUBLASLT_REDUCTION_SCHEME_NONE) return false;
  for (const int64_t n : {int64_t{1}, kMaxRows}) {
    SetRows(plan, n);
    cublasLtMatmulHeuristicResult_t check{};
    if (api_->MatmulAlgoCheck(handle_, plan.desc, plan.a, plan.b, plan.c, plan.c, &algo, &check) !=
            CUBLAS_STATUS_SUCCESS ||
        check.workspaceSize > workspace_bytes_) {
      return false;
    }
  }
  return true;
}

// In column-major terms y^T [m, n] = W [k, m]^T x^T [k, n]: A = W (ld k, transposed),
// B = x (ld = x's row stride), C = D = y (ld = y's row stride).
CublasLtMatMul::Plan CublasLtMatMul::MakePlan(const Key& key) {
  const auto [m, k, x_type, y_type, ld_x, ld_y, align_x, align_w, align_y] = key;
  const auto x_dtype = static_cast<DType>(x_type);
  const auto y_dtype = static_cast<DType>(y_type);
  Plan plan;
  RS_CUBLAS_CHECK(api_->MatmulDescCreate(&plan.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t trans_a = CUBLAS_OP_T;
  const cublasOperation_t trans_b = CUBLAS_OP_N;
  RS_CUBLAS_CHECK(api_->MatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_TRANSA, &trans_a,
                                               sizeof(trans_a)));
  RS_CUBLAS_CHECK(api_->MatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_TRANSB, &trans_b,
                                               sizeof(trans_b)));
  const auto uk = static_cast<uint64_t>(k);
  const auto um = static_cast<uint64_t>(m);
  const auto query_rows = static_cast<uint64_t>(algo_rows_);
  RS_CUBLAS_CHECK(api_->MatrixLayoutCreate(&plan.a, CudaType(x_dtype), uk, um, k));
  RS_CUBLAS_CHECK(api_->MatrixLayoutCreate(&plan.b, CudaType(x_dtype), uk, query_rows, ld_x));
  RS_CUBLAS_CHECK(api_->MatrixLayoutCreate(&plan.c, CudaType(y_dtype), um, query_rows, ld_y));

  cublasLtMatmulPreference_t pref = nullptr;
  RS_CUBLAS_CHECK(api_->MatmulPreferenceCreate(&pref));
  const uint64_t workspace = workspace_bytes_;
  const uint32_t scheme_mask = CUBLASLT_REDUCTION_SCHEME_NONE;
  const auto a_align = static_cast<uint32_t>(align_w);
  const auto b_align = static_cast<uint32_t>(align_x);
  const auto c_align = static_cast<uint32_t>(align_y);
  RS_CUBLAS_CHECK(api_->MatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                     &workspace, sizeof(workspace)));
  RS_CUBLAS_CHECK(api_->MatmulPreferenceSetAttribute(
      pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &scheme_mask, sizeof(scheme_mask)));
  RS_CUBLAS_CHECK(api_->MatmulPreferenceSetAttribute(
      pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &a_align, sizeof(a_align)));
  RS_CUBLAS_CHECK(api_->MatmulPreferenceSetAttribute(
      pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &b_align, sizeof(b_align)));
  for (const auto attr :
       {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES}) {
    RS_CUBLAS_CHECK(api_->MatmulPreferenceSetAttribute(pref, attr, &c_align, sizeof(c_align)));
  }
  // Deep enough that some candidate passes Qualifies even when the heuristic's first ones
  // (on sm_90, cluster and TMA configurations) do not; the first that passes is used.
  constexpr int kCandidates = 32;
  cublasLtMatmulHeuristicResult_t results[kCandidates] = {};
  int found = 0;
  // NOT_SUPPORTED means no algorithm at all: handled as found == 0.
  const cublasStatus_t status = api_->MatmulAlgoGetHeuristic(
      handle_, plan.desc, plan.a, plan.b, plan.c, plan.c, pref, kCandidates, results, &found);
  api_->MatmulPreferenceDestroy(pref);
  if (status != CUBLAS_STATUS_SUCCESS) found = 0;
  plan.simple = true;
  for (int i = 0; i < found; ++i) {
    if (results[i].state == CUBLAS_STATUS_SUCCESS && Qualifies(plan, results[i].algo)) {
      plan.algo = results[i].algo;
      plan.simple = false;
      break;
    }
  }
  if (!plan.simple) {
    // Batch invariance rests on this one algorithm per product: name it, so a run that finds
    // rows differing across batch sizes says which configuration did it.
    Log(LogLevel::kInfo, "cuda", "cuBLASLt algorithm chosen",
        {{"m", absl::StrCat(m)},
         {"k", absl::StrCat(k)},
         {"dtype", std::string(DTypeName(x_dtype))},
         {"out_dtype", std::string(DTypeName(y_dtype))},
         {"algo_rows", absl::StrCat(algo_rows_)},
         {"config", AlgoConfig(plan.algo)}});
  } else {
    Log(LogLevel::kWarning, "cuda",
        "no split-K-free cuBLASLt algorithm for this product; using the simple kernel",
        {{"m", absl::StrCat(m)},
         {"k", absl::StrCat(k)},
         {"dtype", std::string(DTypeName(x_dtype))},
         {"out_dtype", std::string(DTypeName(y_dtype))},
         {"heuristic_status", api_->GetStatusString(status)},
         {"candidates", absl::StrCat(found)}});
  }
  return plan;
}

void CublasLtMatMul::Run(cudaStream_t stream, const Mat& x, const void* w, int64_t w_rows,
                         const Mat& y) {
  RS_CHECK(y.rows == x.rows && y.cols == w_rows && x.stride >= x.cols && y.stride >= y.cols);
  RS_CHECK(y.dtype == x.dtype || y.dtype == DType::kF32);
  if (x.rows == 0 || w_rows == 0) return;
  RS_CHECK(x.cols > 0 && w != nullptr);
  const Key key{w_rows,
                x.cols,
                static_cast<int>(x.dtype),
                static_cast<int>(y.dtype),
                x.stride,
                y.stride,
                AlignmentBytes(x.data, x.stride * ElementBytes(x.dtype)),
                AlignmentBytes(w, x.cols * ElementBytes(x.dtype)),
                AlignmentBytes(y.data, y.stride * ElementBytes(y.dtype))};
  auto it = plans_.find(key);
  if (it == plans_.end()) it = plans_.emplace(key, MakePlan(key)).first;
  const Plan& plan = it->second;
  if (plan.simple) {
    LaunchSimpleMatMul(stream, x, w, w_rows, y);
    return;
  }
  const float alpha = 1.0F;
  const float beta = 0.0F;
  // Rows are independent, so more than kMaxRows run in pieces without changing a bit.
  for (int64_t first = 0; first < x.rows; first += kMaxRows) {
    const int64_t n = std::min(kMaxRows, x.rows - first);
    SetRows(plan, n);
    const auto* x_rows =
        static_cast<const char*>(x.data) + first * x.stride * ElementBytes(x.dtype);
    auto* y_rows = static_cast<char*>(y.data) + first * y.stride * ElementBytes(y.dtype);
    const cublasStatus_t status =
        api_->Matmul(handle_, plan.desc, &alpha, w, plan.a, x_rows, plan.b, &beta, y_rows, plan.c,
                     y_rows, plan.c, &plan.algo, workspace_, workspace_bytes_, stream);
    if (status != CUBLAS_STATUS_SUCCESS && !CaptureInvalidated(stream)) {
      CublasCheckFailed(static_cast<int>(status), "cublasLtMatmul", __FILE__, __LINE__);
    }
  }
}

}  // namespace ringserve::kernels::RS_CUDA_NS
