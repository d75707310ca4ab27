// Moves a model's matrices from a WeightSource onto a backend, or has the backend make them
// where the source can (WeightSource::MakeOnBackend: random weights). Errors name the
// tensors.
#ifndef RINGSERVE_WORKER_MODEL_WEIGHT_UPLOAD_H_
#define RINGSERVE_WORKER_MODEL_WEIGHT_UPLOAD_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/backend.h"
#include "worker/model/weight_source.h"

namespace ringserve::model {

// Uploads one tensor of `shape` ({rows, cols} or {cols}); adds its device bytes to
// *total_bytes.
absl::StatusOr<kernels::Weight> UploadMatrix(WeightSource& source, kernels::Backend* backend,
                                             const std::string& name, std::vector<int64_t> shape,
                                             size_t* total_bytes);

// Uploads the named [rows[i], cols] matrices as one [sum of rows, cols] weight, rows in the
// order given (the fused QKV and gate/up products). Parts of one dtype are joined as
// stored (q8_0 rows are whole blocks, so byte order is row order); mixed dtypes are joined
// as f32 and converted by the backend.
// Vectors `names` (of `lengths` values) joined end to end into one [1, sum] f32 weight.
absl::StatusOr<kernels::Weight> UploadJoinedVectors(WeightSource& source, kernels::Backend* backend,
                                                    const std::vector<std::string>& names,
                                                    const std::vector<int64_t>& lengths,
                                                    size_t* total_bytes);

// The named [rows[i], cols] matrices as the model multiplies them: one stacked weight
// (UploadStackedMatrices), or one weight a matrix where the source's dtypes keep the stack
// apart (StackKeptApart).
absl::StatusOr<std::vector<kernels::Weight>> UploadStack(WeightSource& source,
                                                         kernels::Backend* backend,
                                                         const std::vector<std::string>& names,
                                                         const std::vector<int64_t>& rows,
                                                         int64_t cols, size_t* total_bytes);

absl::StatusOr<kernels::Weight> UploadStackedMatrices(WeightSource& source,
                                                      kernels::Backend* backend,
                                                      const std::vector<std::string>& names,
                                                      const std::vector<int64_t>& rows,
                                                      int64_t cols, size_t* total_bytes);

}  // namespace ringserve::model

#endif  // RINGSERVE_WORKER_MODEL_WEIGHT_UPLOAD_H_
