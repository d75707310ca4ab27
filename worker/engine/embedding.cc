#include "worker/engine/embedding.h"

#include <cmath>

namespace ringserve::engine {

void FinishEmbedding(std::vector<float>& values, int dimensions, bool normalize) {
  if (dimensions > 0 && static_cast<size_t>(dimensions) < values.size()) {
    values.resize(static_cast<size_t>(dimensions));
  }
  if (!normalize) return;
  double sum = 0;
  for (const float v : values) sum += static_cast<double>(v) * v;
  if (sum == 0) return;
  const double scale = 1.0 / std::sqrt(sum);
  for (float& v : values) v = static_cast<float>(v * scale);
}

}  // namespace ringserve::engine
