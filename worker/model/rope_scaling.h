// Rotary position scaling: how a checkpoint (or --rope-scaling) stretches RoPE past the
// context a model was pre-trained on, and what that does to its frequencies, its attention
// scale and the context it can serve.
#ifndef RINGSERVE_WORKER_MODEL_ROPE_SCALING_H_
#define RINGSERVE_WORKER_MODEL_ROPE_SCALING_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json_fwd.hpp"

namespace ringserve::model {

// Hugging Face's rope_type names (also llama.cpp's rope.scaling.type, "none" being kDefault).
enum class RopeType : uint8_t {
  kDefault,  // no scaling
  // Positions divided by `factor` (every frequency divided by it): Llama 2 long-context
  // fine-tunes, DeepSeek Coder.
  kLinear,
  // Llama 3.1: long wavelengths divided by `factor`, short ones kept, a smooth blend between
  // (transformers' _compute_llama3_parameters).
  kLlama3,
  // YaRN (Peng et al. 2023): frequencies that turn fewer than beta_slow times over the
  // original context are interpolated (divided by `factor`), those turning more than
  // beta_fast times kept, a linear ramp between; and the attention logits are multiplied
  // by the square of the attention factor (0.1 ln(factor) + 1 by default). Qwen2.5 and
  // Qwen3 past 32k tokens.
  kYarn,
};

// "default", "linear", "llama3" or "yarn".
std::string_view RopeTypeName(RopeType type);

struct RopeScaling {
  RopeType type = RopeType::kDefault;
  float factor = 8.0F;
  // The context the model was pre-trained on (llama3, yarn).
  int original_max_position = 8192;
  // llama3.
  float low_freq_factor = 1.0F;
  float high_freq_factor = 4.0F;
  // yarn: the ramp's ends in rotations over the original context, whether they are rounded
  // out to whole dimensions (transformers' `truncate`), and the attention factor (0: derived
  // from factor, and from mscale / mscale_all_dim when both are set).
  float beta_fast = 32.0F;
  float beta_slow = 1.0F;
  bool truncate = true;
  float attention_factor = 0.0F;
  float mscale = 0.0F;
  float mscale_all_dim = 0.0F;
};

// The rope settings object of a Hugging Face config.json ("rope_scaling", or transformers
// 5's "rope_parameters"), also what --rope-scaling takes. `max_position` is the config's
// max_position_embeddings, yarn's original context when the object names none. Errors are
// INVALID_ARGUMENT, or UNIMPLEMENTED for a rope_type ringserve does not run (dynamic,
// longrope), each starting with `name`.
absl::StatusOr<RopeScaling> RopeScalingFromJson(const nlohmann::json& rope, int max_position,
                                                const std::string& name);
// The same from JSON text (the --rope-scaling flag).
absl::StatusOr<RopeScaling> RopeScalingFromJsonText(std::string_view text, int max_position,
                                                    const std::string& name);

// INVALID_ARGUMENT when the numbers cannot describe a scaling (a factor below 1, ...), and
// UNIMPLEMENTED for yarn over part of each head only (`rotary_dim` < `head_dim`): its
// attention factor scales the rotated dimensions alone, which ringserve folds into the
// softmax scale, exact only when every dimension rotates.
absl::Status ValidateRopeScaling(const RopeScaling& s, int rotary_dim, int head_dim);

// The inverse frequency of each rotated pair, theta^(-2i / rotary_dim) scaled as `s` says,
// computed in float64.
std::vector<double> ScaledInverseFrequencies(const RopeScaling& s, double theta, int rotary_dim);

// What the rotated q and k are multiplied by (yarn's mscale; 1 for the other types). Their
// product, the attention logit, is multiplied by its square.
double RopeAttentionFactor(const RopeScaling& s);

// The context a model of `max_position` positions serves with this scaling: yarn's
// factor times its original context when that is more (Qwen2.5's config keeps
// max_position_embeddings at 32768 with factor 4: 131072), else `max_position`.
int ScaledContextLength(const RopeScaling& s, int max_position);

}  // namespace ringserve::model

#endif  // RINGSERVE_WORKER_MODEL_ROPE_SCALING_H_
