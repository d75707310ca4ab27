#include "worker/model/weight_source.h"

#include <algorithm>
#include <cmath>
#include <system_error>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/hash.h"
#include "common/status_macros.h"
#include "kernels/random_weights.h"

namespace ringserve::model {

namespace {

// A packed tensor rewritten as `served` (Q8_0 or a compact dtype) by `rewrite` (WidenToQ8_0
// or ToCompact), split over the machine's cores by whole blocks: an 8B model's K-quants take
// about 13 s to re-round on one core.
void RewriteInParallel(Packing packing, kernels::DType served, const uint8_t* src, int64_t count,
                       uint8_t* dst, void (*rewrite)(Packing, const uint8_t*, int64_t, uint8_t*)) {
  const int64_t block = BlockValues(packing);
  const int64_t blocks = count / block;
  constexpr int64_t kMinValuesPerThread = int64_t{1} << 17;  // ~0.2 ms: a thread start is less
  const auto threads = static_cast<int64_t>(std::clamp<unsigned>(
      std::thread::hardware_concurrency(), 1U,
      static_cast<unsigned>(std::max<int64_t>(1, count / kMinValuesPerThread))));
  std::vector<std::jthread> workers;
  for (int64_t t = 0; t < threads; ++t) {
    const int64_t first = blocks * t / threads;
    const int64_t last = blocks * (t + 1) / threads;
    auto work = [=] {
      rewrite(packing, src + first * BlockBytes(packing), (last - first) * block,
              dst + kernels::DTypeBytes(served, static_cast<size_t>(first * block)));
    };
    if (t + 1 == threads) {
      work();  // this thread takes the last share
      continue;
    }
    try {
      workers.emplace_back(work);
    } catch (const std::system_error&) {  // no thread to be had: do the share here
      work();
    }
  }
}

}  // namespace

kernels::DType JoinedDType(kernels::DType a, kernels::DType b) {
  using kernels::DType;
  if (a == b) return a;
  const auto is = [&](DType x, DType y) { return (a == x && b == y) || (a == y && b == x); };
  if (is(DType::kQ4Affine, DType::kQ5Affine)) return DType::kQ5Affine;
  return IsBlockDType(a) && IsBlockDType(b) ? DType::kQ8_0 : DType::kF32;
}

bool StackKeptApart(std::span<const kernels::DType> dtypes) {
  if (dtypes.empty()) return false;
  kernels::DType joined = dtypes.front();
  bool compact = false;
  for (const kernels::DType dtype : dtypes) {
    joined = JoinedDType(joined, dtype);
    compact = compact || (kernels::IsBlockDType(dtype) && dtype != kernels::DType::kQ8_0);
  }
  return compact && joined == kernels::DType::kQ8_0;
}

std::vector<std::string> StackedWith(const std::string& name) {
  static const std::vector<std::vector<std::string>> kStacks = {{"attn_q", "attn_k", "attn_v"},
                                                                {"ffn_gate", "ffn_up"}};
  for (const std::vector<std::string>& stack : kStacks) {
    for (const std::string& part : stack) {
      const std::string suffix = absl::StrCat(".", part, ".weight");
      if (!name.ends_with(suffix)) continue;
      const std::string prefix = name.substr(0, name.size() - suffix.size());
      std::vector<std::string> names;
      names.reserve(stack.size());
      for (const std::string& other : stack) {
        names.push_back(absl::StrCat(prefix, ".", other, ".weight"));
      }
      return names;
    }
  }
  return {name};
}

absl::StatusOr<HostMatrix> CheckpointWeightSource::Get(const std::string& name,
                                                       const std::vector<int64_t>& shape) {
  RS_ASSIGN_OR_RETURN(const HostTensor* t, checkpoint_.FindWithShape(name, shape));
  HostMatrix m;
  m.dtype = t->dtype;
  m.rows = shape.size() == 2 ? shape[0] : 1;
  m.cols = shape.back();
  m.data = t->data;
  if (t->packing != Packing::kAsStored) {
    m.dtype = ServedDType(*t);
    buffer_.resize(kernels::DTypeBytes(m.dtype, static_cast<size_t>(t->NumElements())));
    RewriteInParallel(t->packing, m.dtype, static_cast<const uint8_t*>(t->data), t->NumElements(),
                      buffer_.data(), m.dtype != kernels::DType::kQ8_0 ? &ToCompact : &WidenToQ8_0);
    m.data = buffer_.data();
  }
  return m;
}

kernels::DType CheckpointWeightSource::ServedDType(const HostTensor& t) const {
  if (compact_ && t.packing != Packing::kAsStored) {
    return CompactDTypeOf(t.packing).value_or(t.dtype);
  }
  return t.dtype;
}

bool CheckpointWeightSource::Has(const std::string& name) const {
  return checkpoint_.Find(name).ok();
}

std::optional<kernels::DType> CheckpointWeightSource::ServedDTypeOf(const std::string& name) const {
  const absl::StatusOr<const HostTensor*> t = checkpoint_.Find(name);
  if (!t.ok()) return std::nullopt;
  return ServedDType(**t);
}

std::optional<size_t> CheckpointWeightSource::BytesOn(const kernels::Backend& backend) const {
  size_t bytes = 0;
  for (const HostTensor& t : checkpoint_.tensors()) {
    if (t.shape.empty()) continue;
    const int64_t rows = t.shape.size() == 2 ? t.shape[0] : 1;
    // As the model holds it: in the dtype of its whole stack, or its own where the stack is
    // kept apart.
    std::vector<kernels::DType> stack;
    for (const std::string& name : StackedWith(t.name)) {
      if (const auto part = checkpoint_.Find(name); part.ok()) stack.push_back(ServedDType(**part));
    }
    kernels::DType dtype = ServedDType(t);
    if (!StackKeptApart(stack)) {
      for (const kernels::DType part : stack) dtype = JoinedDType(dtype, part);
    }
    bytes += backend.WeightBytes(dtype, rows, t.NumElements() / rows);
  }
  return bytes;
}

namespace {

float MatrixScale(int64_t cols) { return 1.0F / std::sqrt(static_cast<float>(cols)); }

}  // namespace

uint64_t RandomWeightSource::StreamState(const std::string& name) const {
  return seed_ ^ Hash64(name);
}

absl::StatusOr<HostMatrix> RandomWeightSource::Get(const std::string& name,
                                                   const std::vector<int64_t>& shape) {
  const int64_t rows = shape.size() == 2 ? shape[0] : 1;
  const int64_t cols = shape.back();
  buffer_.resize(static_cast<size_t>(rows * cols));
  if (shape.size() == 1 && name.ends_with(".bias")) {  // attention biases
    kernels::FillRandomUniform(StreamState(name), 0.1F, buffer_.data(), rows * cols);
  } else if (shape.size() == 1) {  // norm weights
    std::fill(buffer_.begin(), buffer_.end(), 1.0F);
  } else {
    kernels::FillRandomUniform(StreamState(name), MatrixScale(cols), buffer_.data(), rows * cols);
  }
  return HostMatrix{kernels::DType::kF32, rows, cols, buffer_.data()};
}

std::optional<absl::StatusOr<kernels::Weight>> RandomWeightSource::MakeOnBackend(
    kernels::Backend& backend, std::span<const std::string> names, std::span<const int64_t> rows,
    int64_t cols) {
  std::vector<kernels::RandomPart> parts;
  for (size_t i = 0; i < names.size(); ++i) parts.push_back({StreamState(names[i]), rows[i]});
  return backend.RandomWeight(parts, cols, MatrixScale(cols));
}

bool RandomWeightSource::Has(const std::string& name) const {
  return !(name == "output.weight" && config_.tied_embeddings);
}

std::optional<size_t> RandomWeightSource::BytesOn(const kernels::Backend& backend) const {
  // Made as f32 values, stored as the backend stores f32 matrices.
  return backend.WeightBytes(kernels::DType::kF32, config_.NumParameters(), 1);
}

}  // namespace ringserve::model
