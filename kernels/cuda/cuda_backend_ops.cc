// CudaBackend's ops: each checks its arguments, translates the Backend's views into the
// launchers' structs (cuda_ops.h) and enqueues its kernels on the backend's stream. The
// backend's resources (memory, scratch, graphs) are cuda_backend.cc's.
#include <cuda_runtime_api.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/check.h"
#include "kernels/cuda/cublaslt_matmul.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_namespace.h"
#include "kernels/cuda/cuda_ops.h"

namespace ringserve::kernels::RS_CUDA_NS {
namespace {

Mat ToMat(const Tensor& t) { return Mat{t.data, t.dtype, t.rows, t.cols, t.row_stride}; }

BatchArgs ToBatchArgs(const AttentionBatch& b) {
  return BatchArgs{b.num_tokens, b.num_seqs, b.max_blocks_per_seq, b.max_context_len,
                   b.positions,  b.slots,    b.query_start,        b.block_tables};
}

HeadArgs ToHeadArgs(const AttentionShape& s) {
  return HeadArgs{s.num_q_heads, s.num_kv_heads, s.head_dim, s.scale, s.window};
}

// The residual stream, the projections that feed it and qkv may be f32 under f16/bf16
// activations: see Backend::EmbeddingGather.
bool ActivationOrF32(DType dtype, DType activation) {
  return dtype == activation || dtype == DType::kF32;
}

}  // namespace

void CudaBackend::EmbeddingGather(const Weight& table, const int32_t* ids, Tensor out) {
  RS_CHECK(table.dtype == dtype_ && ActivationOrF32(out.dtype, dtype_) && out.cols == table.cols);
  SetDevice();
  LaunchEmbeddingGather(stream_, table.dtype, table.buffer.data(), table.rows, ids, ToMat(out));
  AfterOp("EmbeddingGather");
}

void CudaBackend::RmsNorm(Tensor x, const Weight& weight, float eps, Tensor out) {
  RS_CHECK(weight.dtype == dtype_ && weight.rows == 1 && weight.cols == x.cols);
  RS_CHECK(ActivationOrF32(x.dtype, dtype_) && out.dtype == dtype_);
  SetDevice();
  LaunchRmsNorm(stream_, ToMat(x), weight.buffer.data(), eps, ToMat(out));
  AfterOp("RmsNorm");
}

void CudaBackend::AddRmsNorm(Tensor residual, Tensor delta, const Weight& weight, float eps,
                             Tensor out) {
  RS_CHECK(weight.dtype == dtype_ && weight.rows == 1 && weight.cols == residual.cols);
  RS_CHECK(ActivationOrF32(residual.dtype, dtype_) && delta.dtype == residual.dtype &&
           out.dtype == dtype_);
  SetDevice();
  LaunchAddRmsNorm(stream_, ToMat(residual), ToMat(delta), weight.buffer.data(), eps, ToMat(out));
  AfterOp("AddRmsNorm");
}

void CudaBackend::MatMul(Tensor x, const Weight& w, Tensor y) {
  RS_CHECK(x.dtype == dtype_ && w.dtype == dtype_ && (y.dtype == dtype_ || y.dtype == DType::kF32));
  RS_CHECK(x.cols == w.cols && y.cols == w.rows && y.rows == x.rows);
  SetDevice();
  if (cublas_ != nullptr) {
    cublas_->Run(stream_, ToMat(x), w.buffer.data(), w.rows, ToMat(y));
  } else {
    LaunchSimpleMatMul(stream_, ToMat(x), w.buffer.data(), w.rows, ToMat(y));
  }
  AfterOp("MatMul");
}

void CudaBackend::RopeAndWriteKv(Tensor qkv, const AttentionShape& shape, const RopeParams& rope,
                                 const AttentionBatch& batch, const KvLayerView& kv) {
  RS_CHECK(ActivationOrF32(qkv.dtype, dtype_) && SupportsKvDtype(kv.dtype));
  RS_CHECK(kv.num_kv_heads == shape.num_kv_heads && kv.head_dim == shape.head_dim);
  SetDevice();
  LaunchRopeAndWriteKv(stream_, ToMat(qkv), ToHeadArgs(shape), rope.inv_freq, rope.rotary_dim,
                       rope.layout == RopeLayout::kHalves, ToBatchArgs(batch), kv.dtype,
                       KvArgs{kv.k, kv.v, kv.block_size, kv.num_blocks, kv.dtype});
  AfterOp("RopeAndWriteKv");
}

void CudaBackend::PagedAttention(Tensor qkv, const AttentionShape& shape,
                                 const AttentionBatch& batch, const KvLayerView& kv, Tensor out) {
  RS_CHECK(ActivationOrF32(qkv.dtype, dtype_) && SupportsKvDtype(kv.dtype) && out.dtype == dtype_);
  RS_CHECK(kv.num_kv_heads == shape.num_kv_heads && kv.head_dim == shape.head_dim);
  SetDevice();
  auto* items = static_cast<int32_t*>(attention_items_);
  const AttentionScratch scratch{items,
                                 reinterpret_cast<int*>(items + 2 * attention_item_capacity_),
                                 attention_item_capacity_,
                                 attention_partials_,
                                 attention_partial_floats_,
                                 num_sms_,
                                 max_shared_bytes_};
  // The work items depend on the query rows, the heads' grouping and the kernel only: a
  // pass's later layers keep the first one's (a one-block plan kernel fewer per layer).
  const AttentionPlanKey plan{batch.query_start, batch.num_seqs,     batch.num_tokens,
                              shape.num_q_heads, shape.num_kv_heads, attention_kernel_,
                              shape.window,      kv.dtype,           attention_items_};
  BatchArgs batch_args = ToBatchArgs(batch);
  batch_args.reuse_plan = batch.plan_reused && plan == last_attention_plan_;
  last_attention_plan_ = plan;
  last_attention_split_slots_ = LaunchPagedAttention(
      stream_, ToMat(qkv), ToHeadArgs(shape), batch_args,
      KvArgs{kv.k, kv.v, kv.block_size, kv.num_blocks, kv.dtype}, scratch, split_mode_,
      attention_kernel_ == AttentionKernel::kTensorCore, ToMat(out));
  AfterOp("PagedAttention");
}

absl::Status CudaBackend::SetAttentionKernel(AttentionKernel kernel) {
  if (kernel == AttentionKernel::kTensorCore && dtype_ == DType::kF32) {
    return absl::FailedPreconditionError(
        absl::StrCat(name_,
                     ": tensor-core attention needs f16 or bf16 activations (--dtype); "
                     "f32 runs simt"));
  }
  attention_kernel_ = kernel;
  return absl::OkStatus();
}

void CudaBackend::AddBias(Tensor x, const Weight& bias) {
  RS_CHECK(x.dtype == DType::kF32 && bias.rows == 1 && bias.cols == x.cols);
  SetDevice();
  LaunchAddBias(stream_, ToMat(x), bias.buffer.data(), bias.dtype);
  AfterOp("AddBias");
}

void CudaBackend::HeadRmsNorm(Tensor x, int64_t head_dim, const Weight& weight, float eps) {
  RS_CHECK(x.dtype == DType::kF32 && head_dim > 0 && x.cols % head_dim == 0 && weight.rows == 1 &&
           weight.cols == head_dim);
  SetDevice();
  LaunchHeadRmsNorm(stream_, ToMat(x), head_dim, weight.buffer.data(), weight.dtype, eps);
  AfterOp("HeadRmsNorm");
}

void CudaBackend::SiluMul(Tensor gate_up, Tensor out) {
  RS_CHECK(gate_up.dtype == dtype_);
  SetDevice();
  LaunchSiluMul(stream_, ToMat(gate_up), ToMat(out));
  AfterOp("SiluMul");
}

void CudaBackend::GatherRows(Tensor x, const int32_t* rows, Tensor out) {
  RS_CHECK(x.dtype == out.dtype);
  SetDevice();
  LaunchGatherRows(stream_, ToMat(x), rows, ToMat(out));
  AfterOp("GatherRows");
}

void CudaBackend::AddLora(Tensor x, const LoraStack& lora, const int32_t* row_slots, float* scratch,
                          Tensor y) {
  RS_CHECK(x.dtype == dtype_);
  SetDevice();
  LaunchAddLora(stream_, ToMat(x), lora, row_slots, scratch, ToMat(y));
  AfterOp("AddLora");
}

void CudaBackend::PenalizeRows(Tensor x, const RowSampling* params, PenaltyEntry* entries) {
  RS_CHECK(x.dtype == DType::kF32);
  SetDevice();
  LaunchPenalizeRows(stream_, ToMat(x), params, entries);
  AfterOp("PenalizeRows");
}

void CudaBackend::UnpenalizeRows(Tensor x, const RowSampling* params, const PenaltyEntry* entries) {
  RS_CHECK(x.dtype == DType::kF32);
  SetDevice();
  LaunchUnpenalizeRows(stream_, ToMat(x), params, entries);
  AfterOp("UnpenalizeRows");
}

void CudaBackend::LogprobRows(Tensor x, const int32_t* rows, int32_t num_rows, const int32_t* ids,
                              RowLogprobs* out) {
  RS_CHECK(x.dtype == DType::kF32);
  SetDevice();
  LaunchLogprobRows(stream_, ToMat(x), rows, num_rows, ids, out);
  AfterOp("LogprobRows");
}

void CudaBackend::SampleRows(Tensor x, const RowSampling* params, int32_t* ids) {
  RS_CHECK(x.dtype == DType::kF32);
  SetDevice();
  LaunchSampleRows(stream_, ToMat(x), params, ids);
  AfterOp("SampleRows");
}

int64_t CudaBackend::matmul_algo_rows() const {
  return cublas_ != nullptr ? cublas_->algo_rows() : 0;
}

absl::Status CudaBackend::SetMatMulAlgoRows(int64_t rows) {
  if (cublas_ == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat(name_, " runs the simple MatMul kernel: no cuBLASLt algorithm to choose"));
  }
  return cublas_->SetAlgoRows(rows);
}

int CudaBackend::num_matmul_plans() const { return cublas_ != nullptr ? cublas_->num_plans() : 0; }

int CudaBackend::num_simple_matmul_plans() const {
  return cublas_ != nullptr ? cublas_->num_simple_plans() : 0;
}

}  // namespace ringserve::kernels::RS_CUDA_NS
