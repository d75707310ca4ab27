#include "worker/model/weight_upload.h"

#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "worker/model/gguf_blocks.h"

namespace ringserve::model {
namespace {

// The weight, its bytes added to *total_bytes; or its error prefixed with what it is.
absl::StatusOr<kernels::Weight> Counted(absl::StatusOr<kernels::Weight> weight,
                                        const std::string& what, size_t* total_bytes) {
  if (!weight.ok()) {
    return absl::Status(weight.status().code(),
                        absl::StrCat(what, ": ", weight.status().message()));
  }
  *total_bytes += weight->buffer.bytes();
  return weight;
}

// `count` values of dtype `from` at `src` rewritten as `to` (a JoinedDType of `from`).
void AppendAs(kernels::DType from, kernels::DType to, const void* src, size_t count,
              std::vector<uint8_t>* joined) {
  const size_t offset = joined->size();
  joined->resize(offset + kernels::DTypeBytes(to, count));
  uint8_t* dst = joined->data() + offset;
  if (from == to) {
    std::memcpy(dst, src, kernels::DTypeBytes(to, count));
  } else if (to != kernels::DType::kF32) {  // a compact part joined as kQ5Affine or Q8_0
    ConvertCompact(from, to, static_cast<const uint8_t*>(src), static_cast<int64_t>(count), dst);
  } else {
    kernels::ConvertToFloat(from, src, count, reinterpret_cast<float*>(dst));
  }
}

}  // namespace

absl::StatusOr<kernels::Weight> UploadMatrix(WeightSource& source, kernels::Backend* backend,
                                             const std::string& name, std::vector<int64_t> shape,
                                             size_t* total_bytes) {
  const std::string what = absl::StrCat("tensor ", name);
  if (shape.size() == 2) {
    auto made = source.MakeOnBackend(*backend, {&name, 1}, {shape.data(), 1}, shape[1]);
    if (made.has_value()) return Counted(*std::move(made), what, total_bytes);
  }
  RS_ASSIGN_OR_RETURN(const HostMatrix m, source.Get(name, shape));
  return Counted(backend->UploadWeight(m.dtype, m.rows, m.cols, m.data), what, total_bytes);
}

absl::StatusOr<kernels::Weight> UploadJoinedVectors(WeightSource& source, kernels::Backend* backend,
                                                    const std::vector<std::string>& names,
                                                    const std::vector<int64_t>& lengths,
                                                    size_t* total_bytes) {
  std::vector<float> joined;
  for (size_t i = 0; i < names.size(); ++i) {
    RS_ASSIGN_OR_RETURN(const HostMatrix m, source.Get(names[i], {lengths[i]}));
    const size_t offset = joined.size();
    joined.resize(offset + static_cast<size_t>(lengths[i]));
    kernels::ConvertToFloat(m.dtype, m.data, static_cast<size_t>(lengths[i]),
                            joined.data() + offset);
  }
  return Counted(backend->UploadWeight(kernels::DType::kF32, 1, static_cast<int64_t>(joined.size()),
                                       joined.data()),
                 absl::StrCat("tensors ", absl::StrJoin(names, ", ")), total_bytes);
}

absl::StatusOr<kernels::Weight> UploadStackedMatrices(WeightSource& source,
                                                      kernels::Backend* backend,
                                                      const std::vector<std::string>& names,
                                                      const std::vector<int64_t>& rows,
                                                      int64_t cols, size_t* total_bytes) {
  const std::string what = absl::StrCat("tensors ", absl::StrJoin(names, ", "));
  auto made = source.MakeOnBackend(*backend, names, rows, cols);
  if (made.has_value()) return Counted(*std::move(made), what, total_bytes);
  // Each part is appended as it comes (a source may reuse one buffer for every tensor it
  // returns), in the first part's dtype until a part of another dtype turns the whole
  // stack into their JoinedDType.
  std::vector<uint8_t> joined;
  kernels::DType dtype = kernels::DType::kF32;
  int64_t total_rows = 0;
  for (size_t i = 0; i < names.size(); ++i) {
    RS_ASSIGN_OR_RETURN(const HostMatrix m, source.Get(names[i], {rows[i], cols}));
    if (i == 0) {
      dtype = m.dtype;
      int64_t all_rows = 0;
      for (int64_t r : rows) all_rows += r;
      joined.reserve(kernels::DTypeBytes(dtype, static_cast<size_t>(all_rows * cols)));
    } else if (const kernels::DType wider = JoinedDType(dtype, m.dtype); wider != dtype) {
      std::vector<uint8_t> rewritten;
      AppendAs(dtype, wider, joined.data(), static_cast<size_t>(total_rows * cols), &rewritten);
      joined = std::move(rewritten);
      dtype = wider;
    }
    AppendAs(m.dtype, dtype, m.data, static_cast<size_t>(m.rows * m.cols), &joined);
    total_rows += m.rows;
  }
  return Counted(backend->UploadWeight(dtype, total_rows, cols, joined.data()), what, total_bytes);
}

absl::StatusOr<std::vector<kernels::Weight>> UploadStack(WeightSource& source,
                                                         kernels::Backend* backend,
                                                         const std::vector<std::string>& names,
                                                         const std::vector<int64_t>& rows,
                                                         int64_t cols, size_t* total_bytes) {
  std::vector<kernels::DType> dtypes;
  for (const std::string& name : names) {
    const std::optional<kernels::DType> dtype = source.ServedDTypeOf(name);
    if (!dtype.has_value()) break;
    dtypes.push_back(*dtype);
  }
  std::vector<kernels::Weight> parts;
  if (dtypes.size() == names.size() && StackKeptApart(dtypes)) {
    for (size_t i = 0; i < names.size(); ++i) {
      RS_ASSIGN_OR_RETURN(kernels::Weight part,
                          UploadMatrix(source, backend, names[i], {rows[i], cols}, total_bytes));
      parts.push_back(std::move(part));
    }
    return parts;
  }
  RS_ASSIGN_OR_RETURN(kernels::Weight joined,
                      UploadStackedMatrices(source, backend, names, rows, cols, total_bytes));
  parts.push_back(std::move(joined));
  return parts;
}

}  // namespace ringserve::model
