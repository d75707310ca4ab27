// The CPU backend: f32 activations, weights converted to f32 and packed for MatMul (see
// cpu_matmul.h), ops run synchronously on the calling thread plus a persistent pool.
//
// Owned by whoever created it (the model runner); every method is called from one thread
// at a time, which plays the role of the device stream. Buffers are 64-byte aligned host
// memory; CopyToDevice/CopyToHost are memcpy.
#ifndef RINGSERVE_KERNELS_CPU_CPU_BACKEND_H_
#define RINGSERVE_KERNELS_CPU_CPU_BACKEND_H_

#include <cstdint>
#include <memory>
#include <span>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "kernels/backend.h"
#include "kernels/cpu/cpu_matmul.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/thread_pool.h"

namespace ringserve::kernels::cpu {

class CpuBackend final : public Backend {
 public:
  static absl::StatusOr<std::unique_ptr<Backend>> Create(const BackendOptions& options);

  std::string_view name() const override { return "cpu"; }
  DType activation_dtype() const override { return DType::kF32; }
  bool SupportsKvDtype(DType dtype) const override { return CpuKvDtypeSupported(dtype); }
  size_t FreeMemoryBytes() const override;
  size_t WeightBytes(DType dtype, int64_t rows, int64_t cols) const override;
  size_t LazyMemoryLimitBytes() const override;

  absl::StatusOr<DeviceBuffer> Allocate(size_t bytes) override;
  void CopyToDevice(void* dst, const void* src, size_t bytes) override;
  void CopyToHost(void* dst, const void* src, size_t bytes) override;
  void CopyOnDevice(void* dst, const void* src, size_t bytes) override;
  void Synchronize() override {}
  void Fill(void* dst, size_t bytes, uint8_t value) override;
  absl::StatusOr<Weight> UploadWeight(DType dtype, int64_t rows, int64_t cols,
                                      const void* host_data) override;
  absl::StatusOr<Weight> RandomWeight(std::span<const RandomPart> parts, int64_t cols,
                                      float scale) override;

  void EmbeddingGather(const Weight& table, const int32_t* ids, Tensor out) override;
  void RmsNorm(Tensor x, const Weight& weight, float eps, Tensor out) override;
  void AddRmsNorm(Tensor residual, Tensor delta, const Weight& weight, float eps,
                  Tensor out) override;
  void MatMul(Tensor x, const Weight& w, Tensor y) override;
  void RopeAndWriteKv(Tensor qkv, const AttentionShape& shape, const RopeParams& rope,
                      const AttentionBatch& batch, const KvLayerView& kv) override;
  void PagedAttention(Tensor qkv, const AttentionShape& shape, const AttentionBatch& batch,
                      const KvLayerView& kv, Tensor out) override;
  void AddBias(Tensor x, const Weight& bias) override;
  void HeadRmsNorm(Tensor x, int64_t head_dim, const Weight& weight, float eps) override;
  void SiluMul(Tensor gate_up, Tensor out) override;
  void GatherRows(Tensor x, const int32_t* rows, Tensor out) override;
  void AddLora(Tensor x, const LoraStack& lora, const int32_t* row_slots, float* scratch,
               Tensor y) override;
  void SampleRows(Tensor x, const RowSampling* params, int32_t* ids) override;
  void PenalizeRows(Tensor x, const RowSampling* params, PenaltyEntry* entries) override;
  void UnpenalizeRows(Tensor x, const RowSampling* params, const PenaltyEntry* entries) override;
  void LogprobRows(Tensor x, const int32_t* rows, int32_t num_rows, const int32_t* ids,
                   RowLogprobs* out) override;

  ThreadPool& pool() { return pool_; }

  // Only Create can make the key: construction goes through Create's validation.
  class Key {
    friend class CpuBackend;
    Key() = default;
  };
  CpuBackend(Key key, const BackendOptions& options);

 protected:
  void Free(void* data, size_t bytes) override;

 private:
  PanelLayout LayoutOf(const Weight& w) const { return {use_blas_, w.rows, w.cols}; }
  static PanelType PanelTypeOf(const Weight& w) { return cpu::PanelTypeOf(w.dtype); }
  // A quantized weight's block parameters (after its quants); null for any other.
  static float* BlockParamsOf(const Weight& w);
  // A [rows, cols] matrix of quantized blocks (kBlockDTypes), in its packed panel layout.
  absl::StatusOr<Weight> PackBlockWeight(DType dtype, int64_t rows, int64_t cols,
                                         const uint8_t* blocks);
  // A [rows, cols] weight in MatMul's layout, packed panel by panel across the pool:
  // fill_rows(r0, width, out) writes rows [r0, r0 + width) as f32, row-major, into out
  // (kPanelWidth rows of scratch per thread), from any thread. `stored` is the weight's
  // element type: f32, or a checkpoint's bf16/f16 for a packed matrix (what StoredDType
  // allows), each value rounded to it (exact for values that came from it).
  absl::StatusOr<Weight> PackWeight(int64_t rows, int64_t cols, DType stored,
                                    absl::FunctionRef<void(int64_t, int64_t, float*)> fill_rows);
  // The element type a weight of `file_dtype` is kept in: bf16, f16 and quantized matrices as they
  // are (less memory and bandwidth, the same products), everything else as f32 (norm gains,
  // the BLAS layout, which cblas_sgemm reads).
  DType StoredDType(DType file_dtype, int64_t rows) const;

  // Products with at least this many rows go to cblas_sgemm when use_blas_.
  static constexpr int64_t kBlasMinRows = 16;

  const bool use_blas_;  // weights stored W^T for sgemm; see cpu_matmul.h
  ThreadPool pool_;
};

}  // namespace ringserve::kernels::cpu

#endif  // RINGSERVE_KERNELS_CPU_CPU_BACKEND_H_
