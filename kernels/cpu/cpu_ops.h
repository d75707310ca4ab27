// The CPU backend's ops other than MatMul, as free functions over raw f32 arrays so tests
// and benchmarks can call them without a Backend. Each is row-parallel on the pool, and a
// row's arithmetic depends only on that row (batch invariance); see kernels/backend.h for
// the semantics.
#ifndef RINGSERVE_KERNELS_CPU_CPU_OPS_H_
#define RINGSERVE_KERNELS_CPU_CPU_OPS_H_

#include <cstdint>
#include <span>

#include "kernels/backend.h"
#include "kernels/cpu/thread_pool.h"

namespace ringserve::kernels::cpu {

void RmsNormRows(ThreadPool& pool, const Tensor& x, const float* weight, float eps,
                 const Tensor& out);
void AddRmsNormRows(ThreadPool& pool, const Tensor& residual, const Tensor& delta,
                    const float* weight, float eps, const Tensor& out);
void AddBiasRows(ThreadPool& pool, const Tensor& x, const float* bias);
void HeadRmsNormRows(ThreadPool& pool, const Tensor& x, int64_t head_dim, const float* weight,
                     float eps);
void SiluMulRows(ThreadPool& pool, const Tensor& gate_up, const Tensor& out);
void GatherRowsOp(ThreadPool& pool, const Tensor& x, const int32_t* rows, const Tensor& out);
void AddLoraRows(ThreadPool& pool, const Tensor& x, const LoraStack& lora, const int32_t* row_slots,
                 float* scratch, const Tensor& y);
// cpu_sampling.cc
void SampleRowsOp(ThreadPool& pool, const Tensor& x, const RowSampling* params, int32_t* ids);
void PenalizeRowsOp(ThreadPool& pool, const Tensor& x, const RowSampling* params,
                    PenaltyEntry* entries);
void UnpenalizeRowsOp(ThreadPool& pool, const Tensor& x, const RowSampling* params,
                      const PenaltyEntry* entries);
void LogprobRowsOp(ThreadPool& pool, const Tensor& x, std::span<const int32_t> rows,
                   const int32_t* ids, RowLogprobs* out);

// f32, f16 and bf16 caches (KvLayerView::dtype); K and V are rounded to nearest even once,
// as they are written.
bool CpuKvDtypeSupported(DType dtype);
void RopeAndWriteKvOp(ThreadPool& pool, const Tensor& qkv, const AttentionShape& shape,
                      const RopeParams& rope, const AttentionBatch& batch, const KvLayerView& kv);
void PagedAttentionOp(ThreadPool& pool, const Tensor& qkv, const AttentionShape& shape,
                      const AttentionBatch& batch, const KvLayerView& kv, const Tensor& out);

}  // namespace ringserve::kernels::cpu

#endif  // RINGSERVE_KERNELS_CPU_CPU_OPS_H_
