// Where a model's weights come from: a checkpoint on disk, or deterministic random values
// for benchmarks at real shapes. The model asks for each tensor by canonical name and
// expected shape; a source answers with host memory valid until the next Get.
#ifndef RINGSERVE_WORKER_MODEL_WEIGHT_SOURCE_H_
#define RINGSERVE_WORKER_MODEL_WEIGHT_SOURCE_H_

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/backend.h"
#include "kernels/dtype.h"
#include "worker/model/checkpoint.h"
#include "worker/model/model_config.h"

namespace ringserve::model {

struct HostMatrix {
  kernels::DType dtype = kernels::DType::kF32;
  int64_t rows = 0;
  int64_t cols = 0;
  const void* data = nullptr;
};

// The dtype parts of dtypes `a` and `b` are held in when stacked into one matrix: theirs
// where they agree, kQ5Affine for 4-bit affine parts beside 5-bit ones (exact), Q8_0 for
// other quantized pairs (a K-quant mix's Q4_K attn_q beside its Q6_K attn_v), else f32.
kernels::DType JoinedDType(kernels::DType a, kernels::DType b);

// Whether a stack of matrices served in `dtypes` is held one matrix a part (its products
// filling adjacent columns) rather than joined: where joining would re-round compact parts
// (kQ4Affine, kQ5Affine, kIQ4) to Q8_0, as a Q4_K_M file's Q4_K attn_q and attn_k beside a
// Q6_K attn_v would be. Apart, each keeps the file's values and its own bytes.
bool StackKeptApart(std::span<const kernels::DType> dtypes);

// The matrices a model stacks with `name` into one (Q, K and V; gate and up), `name` among
// them; just `name` for any other.
std::vector<std::string> StackedWith(const std::string& name);

class WeightSource {
 public:
  virtual ~WeightSource() = default;
  // `shape` is {rows, cols} for matrices or {cols} for vectors (returned as one row).
  virtual absl::StatusOr<HostMatrix> Get(const std::string& name,
                                         const std::vector<int64_t>& shape) = 0;
  virtual bool Has(const std::string& name) const = 0;
  // The dtype Get would give `name` in, where the source knows it without fetching it.
  virtual std::optional<kernels::DType> ServedDTypeOf(const std::string& /*name*/) const {
    return std::nullopt;
  }
  // The bytes `backend` will hold for these weights (Backend::WeightBytes of each tensor),
  // checked against its free memory before anything is uploaded; nullopt: unknown here.
  virtual std::optional<size_t> BytesOn(const kernels::Backend& /*backend*/) const {
    return std::nullopt;
  }
  // A source that computes its values (random weights) may have `backend` make the
  // [sum of rows, cols] stack of the named matrices itself, without host copies. nullopt:
  // fetch them with Get and upload them instead.
  virtual std::optional<absl::StatusOr<kernels::Weight>> MakeOnBackend(
      kernels::Backend& /*backend*/, std::span<const std::string> /*names*/,
      std::span<const int64_t> /*rows*/, int64_t /*cols*/) {
    return std::nullopt;
  }
};

// Serves tensors straight out of the checkpoint's memory map: no copy, except that packed
// GGUF tensors (Q4_0, Q4_K, ...) are rewritten into one buffer, a tensor at a time: as
// their CompactDTypeOf where they have one and `compact` says the backend takes those
// (Backend::TakesCompactWeights), as Q8_0 otherwise.
class CheckpointWeightSource final : public WeightSource {
 public:
  explicit CheckpointWeightSource(const Checkpoint& checkpoint, bool compact = false)
      : checkpoint_(checkpoint), compact_(compact) {}
  absl::StatusOr<HostMatrix> Get(const std::string& name,
                                 const std::vector<int64_t>& shape) override;
  bool Has(const std::string& name) const override;
  std::optional<kernels::DType> ServedDTypeOf(const std::string& name) const override;
  std::optional<size_t> BytesOn(const kernels::Backend& backend) const override;
  // The dtype Get gives `t` in.
  kernels::DType ServedDType(const HostTensor& t) const;

 private:
  const Checkpoint& checkpoint_;
  const bool compact_;
  std::vector<uint8_t> buffer_;  // the last rewritten tensor
};

// Deterministic random weights: matrices ~ U(-a, a) with a = 1/sqrt(cols), norm weights 1.
// The output matrix is absent (tied) when the config says so. Matrices are made by the
// backend (Backend::RandomWeight: on the device for CUDA); Get gives the same values on
// the host.
class RandomWeightSource final : public WeightSource {
 public:
  RandomWeightSource(const ModelConfig& config, uint64_t seed) : config_(config), seed_(seed) {}
  absl::StatusOr<HostMatrix> Get(const std::string& name,
                                 const std::vector<int64_t>& shape) override;
  bool Has(const std::string& name) const override;
  std::optional<size_t> BytesOn(const kernels::Backend& backend) const override;
  std::optional<absl::StatusOr<kernels::Weight>> MakeOnBackend(kernels::Backend& backend,
                                                               std::span<const std::string> names,
                                                               std::span<const int64_t> rows,
                                                               int64_t cols) override;

 private:
  // One stream per tensor name: the same config and seed always give the same model,
  // whatever order tensors are requested in.
  uint64_t StreamState(const std::string& name) const;

  const ModelConfig& config_;
  uint64_t seed_;
  std::vector<float> buffer_;
};

}  // namespace ringserve::model

#endif  // RINGSERVE_WORKER_MODEL_WEIGHT_SOURCE_H_
