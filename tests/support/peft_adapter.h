// Random LoRA adapters in PEFT's format (adapter_config.json, adapter_model.safetensors in
// F32) for the model tests, and the same matrices merged into a checkpoint's weights: the
// model the adapter's requests must compute.
#ifndef RINGSERVE_TESTS_SUPPORT_PEFT_ADAPTER_H_
#define RINGSERVE_TESTS_SUPPORT_PEFT_ADAPTER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "worker/model/model_config.h"

namespace ringserve::testing {

struct PeftAdapterSpec {
  int rank = 4;
  double alpha = 8;
  std::vector<std::string> targets = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                      "gate_proj", "up_proj", "down_proj"};
  uint32_t seed = 1;
  float scale = 0.2F;        // A and B uniform in [-scale, scale]
  std::string extra_config;  // more adapter_config.json fields, each with a leading comma
};

// Writes the adapter into `dir` (which must exist), its matrices in Hugging Face's layout.
void WritePeftAdapter(const std::string& dir, const model::ModelConfig& config,
                      const PeftAdapterSpec& spec);

}  // namespace ringserve::testing

#endif  // RINGSERVE_TESTS_SUPPORT_PEFT_ADAPTER_H_
