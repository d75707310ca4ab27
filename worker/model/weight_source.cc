#include "worker/model/weight_source.h"

#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/hash.h"
#include "common/status_macros.h"

namespace ringserve::model {

absl::StatusOr<HostMatrix> CheckpointWeightSource::Get(const std::string& name,
                                                       const std::vector<int64_t>& shape) {
  RS_ASSIGN_OR_RETURN(const HostTensor* t, checkpoint_.FindWithShape(name, shape));
  HostMatrix m;
  m.dtype = t->dtype;
  m.rows = shape.size() == 2 ? shape[0] : 1;
  m.cols = shape.back();
  m.data = t->data;
  return m;
}

bool CheckpointWeightSource::Has(const std::string& name) const {
  return checkpoint_.Find(name).ok();
}

absl::StatusOr<HostMatrix> RandomWeightSource::Get(const std::string& name,
                                                   const std::vector<int64_t>& shape) {
  const int64_t rows = shape.size() == 2 ? shape[0] : 1;
  const int64_t cols = shape.back();
  buffer_.resize(static_cast<size_t>(rows * cols));
  if (shape.size() == 1) {  // norm weights
    std::fill(buffer_.begin(), buffer_.end(), 1.0F);
  } else {
    // splitmix64 stream seeded per tensor name: the same config and seed always give the
    // same model, whatever order tensors are requested in.
    uint64_t state = seed_ ^ Hash64(name);
    const float scale = 1.0F / std::sqrt(static_cast<float>(cols));
    for (float& v : buffer_) {
      state += 0x9E3779B97F4A7C15ULL;
      uint64_t z = state;
      z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
      z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
      z ^= z >> 31;
      const float unit = static_cast<float>(z >> 40) * (1.0F / 16777216.0F);  // [0, 1)
      v = (2.0F * unit - 1.0F) * scale;
    }
  }
  return HostMatrix{kernels::DType::kF32, rows, cols, buffer_.data()};
}

bool RandomWeightSource::Has(const std::string& name) const {
  return !(name == "output.weight" && config_.tied_embeddings);
}

}  // namespace ringserve::model
