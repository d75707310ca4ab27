#include "tests/support/peft_adapter.h"

#include <fstream>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "kernels/dtype.h"
#include "tests/support/safetensors_image.h"
#include "worker/model/gguf_writer.h"
#include "worker/model/lora_adapter.h"

namespace ringserve::testing {

void WritePeftAdapter(const std::string& dir, const model::ModelConfig& config,
                      const PeftAdapterSpec& spec) {
  std::mt19937 rng(spec.seed);
  std::uniform_real_distribution<float> dist(-spec.scale, spec.scale);
  auto random = [&](int64_t count) {
    std::vector<float> v(count);
    for (float& x : v) x = dist(rng);
    return model::EncodeTensorData(kernels::DType::kF32, v);
  };
  std::vector<StTensor> tensors;
  for (int layer = 0; layer < config.num_layers; ++layer) {
    for (int i = 0; i < model::kNumLoraTargets; ++i) {
      const auto target = static_cast<model::LoraTarget>(i);
      const std::string proj(model::LoraTargetName(target));
      if (std::find(spec.targets.begin(), spec.targets.end(), proj) == spec.targets.end()) continue;
      const auto [out, in] = model::LoraTargetShape(config, target);
      const std::string prefix = absl::StrCat(
          "base_model.model.model.layers.", layer,
          i <= static_cast<int>(model::LoraTarget::kO) ? ".self_attn." : ".mlp.", proj);
      tensors.push_back(
          {prefix + ".lora_A.weight", "F32", {spec.rank, in}, random(spec.rank * in)});
      tensors.push_back(
          {prefix + ".lora_B.weight", "F32", {out, spec.rank}, random(out * spec.rank)});
    }
  }
  const std::vector<uint8_t> image = SafetensorsImage(tensors);
  std::ofstream(dir + "/adapter_model.safetensors", std::ios::binary)
      .write(reinterpret_cast<const char*>(image.data()),
             static_cast<std::streamsize>(image.size()));
  std::vector<std::string> quoted;
  for (const std::string& t : spec.targets) quoted.push_back(absl::StrCat("\"", t, "\""));
  std::ofstream(dir + "/adapter_config.json")
      << absl::StrCat(R"({"peft_type": "LORA", "r": )", spec.rank, R"(, "lora_alpha": )",
                      spec.alpha, R"(, "target_modules": [)", absl::StrJoin(quoted, ", "),
                      R"(], "bias": "none", "lora_dropout": 0.0, "task_type": "CAUSAL_LM")",
                      spec.extra_config, "}");
}

}  // namespace ringserve::testing
