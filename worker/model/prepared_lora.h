// A LoRA adapter encoded for one model's slots (LlamaModel::PrepareLoraAdapter): each
// projection's A and B^T rows in the model's activation dtype, so that writing it into a
// slot is a copy. Adapters are prepared once, off the engine thread, and a worker that
// swaps adapters from host memory into its slots while serving keeps them in this form.
#ifndef RINGSERVE_WORKER_MODEL_PREPARED_LORA_H_
#define RINGSERVE_WORKER_MODEL_PREPARED_LORA_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/dtype.h"
#include "worker/model/lora_adapter.h"

namespace ringserve::model {

struct PreparedLoraMatrices {
  int rank = 0;              // 0: the adapter leaves the projection alone
  std::vector<uint8_t> a;    // [rank, in]
  std::vector<uint8_t> b_t;  // [rank, out], the scale folded in
};

struct PreparedLora {
  std::string name;
  kernels::DType dtype = kernels::DType::kF32;
  std::vector<std::array<PreparedLoraMatrices, kNumLoraTargets>> layers;  // [layer][target]

  size_t bytes() const {
    size_t total = 0;
    for (const auto& layer : layers) {
      for (const PreparedLoraMatrices& m : layer) total += m.a.size() + m.b_t.size();
    }
    return total;
  }
};

}  // namespace ringserve::model

#endif  // RINGSERVE_WORKER_MODEL_PREPARED_LORA_H_
