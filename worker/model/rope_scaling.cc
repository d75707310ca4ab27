#include "worker/model/rope_scaling.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <numbers>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"
#include "worker/model/json_fields.h"

namespace ringserve::model {
namespace {

using json = nlohmann::json;

// A float field, `fallback` when absent or null.
absl::StatusOr<float> FloatField(const json& r, const char* key, const std::string& name,
                                 float fallback) {
  RS_ASSIGN_OR_RETURN(const double value, JsonNumber(r, key, name, fallback));
  return static_cast<float>(value);
}

// The same, 0 also meaning `fallback` (transformers reads yarn's fields as
// `get(key) or default`).
absl::StatusOr<float> FloatOr(const json& r, const char* key, const std::string& name,
                              float fallback) {
  RS_ASSIGN_OR_RETURN(const float value, FloatField(r, key, name, fallback));
  return value == 0 ? fallback : value;
}

// linear and yarn cannot guess their factor.
absl::StatusOr<float> RequiredFactor(const json& r, const std::string& name,
                                     std::string_view type) {
  if (!r.contains("factor") || !r["factor"].is_number()) {
    return JsonFieldError(
        name, absl::StrCat("rope type '", std::string(type), "' needs a numeric 'factor'"));
  }
  return r["factor"].get<float>();
}

absl::Status ReadLlama3(const json& r, const std::string& name, RopeScaling* s) {
  RS_ASSIGN_OR_RETURN(s->factor, FloatField(r, "factor", name, s->factor));
  RS_ASSIGN_OR_RETURN(s->low_freq_factor,
                      FloatField(r, "low_freq_factor", name, s->low_freq_factor));
  RS_ASSIGN_OR_RETURN(s->high_freq_factor,
                      FloatField(r, "high_freq_factor", name, s->high_freq_factor));
  RS_ASSIGN_OR_RETURN(s->original_max_position, JsonDim(r, "original_max_position_embeddings", name,
                                                        s->original_max_position));
  return absl::OkStatus();
}

absl::Status ReadYarn(const json& r, int max_position, const std::string& name, RopeScaling* s) {
  RS_ASSIGN_OR_RETURN(s->factor, RequiredFactor(r, name, "yarn"));
  RS_ASSIGN_OR_RETURN(s->original_max_position,
                      JsonDim(r, "original_max_position_embeddings", name, max_position));
  RS_ASSIGN_OR_RETURN(s->beta_fast, FloatOr(r, "beta_fast", name, s->beta_fast));
  RS_ASSIGN_OR_RETURN(s->beta_slow, FloatOr(r, "beta_slow", name, s->beta_slow));
  RS_ASSIGN_OR_RETURN(s->truncate, JsonBool(r, "truncate", name, s->truncate));
  RS_ASSIGN_OR_RETURN(s->attention_factor, FloatOr(r, "attention_factor", name, 0.0F));
  RS_ASSIGN_OR_RETURN(s->mscale, FloatOr(r, "mscale", name, 0.0F));
  RS_ASSIGN_OR_RETURN(s->mscale_all_dim, FloatOr(r, "mscale_all_dim", name, 0.0F));
  return absl::OkStatus();
}

// transformers' get_mscale: the magnitude YaRN gives attention at `scale` times the context.
double YarnMscale(double scale, double mscale) {
  return scale <= 1 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0;
}

// The frequency index where a pair turns `rotations` times over `original` positions.
double YarnCorrectionDim(double rotations, int rotary_dim, double theta, int original) {
  return rotary_dim * std::log(original / (rotations * 2 * std::numbers::pi)) /
         (2 * std::log(theta));
}

}  // namespace

std::string_view RopeTypeName(RopeType type) {
  switch (type) {
    case RopeType::kDefault:
      return "default";
    case RopeType::kLinear:
      return "linear";
    case RopeType::kLlama3:
      return "llama3";
    case RopeType::kYarn:
      return "yarn";
  }
  return "?";
}

absl::StatusOr<RopeScaling> RopeScalingFromJson(const json& r, int max_position,
                                                const std::string& name) {
  if (!r.is_object()) return JsonFieldError(name, "the rope settings must be an object");
  const char* type_key = r.contains("rope_type") ? "rope_type" : "type";
  if (!r.contains(type_key) || !r[type_key].is_string()) {
    return JsonFieldError(name, "the rope settings have no rope_type");
  }
  const auto& type = r[type_key].get_ref<const std::string&>();
  RopeScaling s;
  if (type == "default" || type == "none") return s;
  if (type == "linear") {
    s.type = RopeType::kLinear;
    RS_ASSIGN_OR_RETURN(s.factor, RequiredFactor(r, name, type));
  } else if (type == "llama3") {
    s.type = RopeType::kLlama3;
    RS_RETURN_IF_ERROR(ReadLlama3(r, name, &s));
  } else if (type == "yarn") {
    s.type = RopeType::kYarn;
    RS_RETURN_IF_ERROR(ReadYarn(r, max_position, name, &s));
  } else if (type == "dynamic") {
    return absl::UnimplementedError(
        absl::StrCat(name,
                     ": rope type 'dynamic' is not supported: its frequencies change with each "
                     "sequence's length, so K/V cached at one length would be wrong at the next "
                     "(yarn extends a context with fixed frequencies)"));
  } else {
    return absl::UnimplementedError(absl::StrCat(
        name, ": rope type '", type, "' is not supported (default, linear, llama3 and yarn are)"));
  }
  return s;
}

absl::StatusOr<RopeScaling> RopeScalingFromJsonText(std::string_view text, int max_position,
                                                    const std::string& name) {
  const json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) return JsonFieldError(name, "not JSON");
  return RopeScalingFromJson(j, max_position, name);
}

absl::Status ValidateRopeScaling(const RopeScaling& s, int rotary_dim, int head_dim) {
  if (s.type == RopeType::kDefault) return absl::OkStatus();
  const std::string type(RopeTypeName(s.type));
  if (!std::isfinite(s.factor) || !(s.factor > 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("model config: rope scaling '", type, "' needs a factor > 0"));
  }
  if (s.type != RopeType::kLinear && s.original_max_position <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("model config: rope scaling '", type,
                                                   "' needs original_max_position_embeddings > 0"));
  }
  if (s.type == RopeType::kLlama3 && !(s.high_freq_factor > s.low_freq_factor)) {
    return absl::InvalidArgumentError(
        "model config: rope scaling 'llama3' needs high_freq_factor > low_freq_factor");
  }
  if (s.type == RopeType::kYarn) {
    if (!(s.beta_fast > 0) || !(s.beta_slow > 0) || !(s.attention_factor >= 0) ||
        !(s.mscale >= 0) || !(s.mscale_all_dim >= 0)) {
      return absl::InvalidArgumentError(
          "model config: rope scaling 'yarn' needs beta_fast and beta_slow > 0 and "
          "attention_factor, mscale and mscale_all_dim >= 0");
    }
    if (rotary_dim != head_dim && RopeAttentionFactor(s) != 1.0) {
      return absl::UnimplementedError(
          absl::StrCat("model config: rope scaling 'yarn' with an attention factor over ",
                       rotary_dim, " of each head's ", head_dim, " dimensions is not supported"));
    }
  }
  return absl::OkStatus();
}

std::vector<double> ScaledInverseFrequencies(const RopeScaling& s, double theta, int rotary_dim) {
  const int pairs = rotary_dim / 2;
  // yarn's ramp over the pair index, from `low` (pairs below keep their frequency) to
  // `high` (pairs above are interpolated).
  double low = 0;
  double high = 0;
  if (s.type == RopeType::kYarn) {
    low = YarnCorrectionDim(s.beta_fast, rotary_dim, theta, s.original_max_position);
    high = YarnCorrectionDim(s.beta_slow, rotary_dim, theta, s.original_max_position);
    if (s.truncate) {
      low = std::floor(low);
      high = std::ceil(high);
    }
    low = std::max(low, 0.0);
    high = std::min(high, static_cast<double>(rotary_dim - 1));
    if (low == high) high += 0.001;  // as transformers does, against a zero-width ramp
  }
  std::vector<double> inv_freq(pairs);
  for (int i = 0; i < pairs; ++i) {
    const double f = std::pow(theta, -2.0 * i / rotary_dim);
    double scaled = f;
    switch (s.type) {
      case RopeType::kDefault:
        break;
      case RopeType::kLinear:
        scaled = f / s.factor;
        break;
      case RopeType::kLlama3: {
        const double wavelen = 2.0 * std::numbers::pi / f;
        const double low_wavelen = s.original_max_position / s.low_freq_factor;
        const double high_wavelen = s.original_max_position / s.high_freq_factor;
        if (wavelen > low_wavelen) {
          scaled = f / s.factor;
        } else if (wavelen >= high_wavelen) {
          const double smooth = (s.original_max_position / wavelen - s.low_freq_factor) /
                                (s.high_freq_factor - s.low_freq_factor);
          scaled = (1.0 - smooth) * f / s.factor + smooth * f;
        }
        break;
      }
      case RopeType::kYarn: {
        const double interpolated = std::clamp((i - low) / (high - low), 0.0, 1.0);
        scaled = f / s.factor * interpolated + f * (1.0 - interpolated);
        break;
      }
    }
    inv_freq[i] = scaled;
  }
  return inv_freq;
}

double RopeAttentionFactor(const RopeScaling& s) {
  if (s.type != RopeType::kYarn) return 1.0;
  if (s.attention_factor > 0) return s.attention_factor;
  if (s.mscale > 0 && s.mscale_all_dim > 0) {
    return YarnMscale(s.factor, s.mscale) / YarnMscale(s.factor, s.mscale_all_dim);
  }
  return YarnMscale(s.factor, 1.0);
}

int ScaledContextLength(const RopeScaling& s, int max_position) {
  if (s.type != RopeType::kYarn) return max_position;
  const double scaled = std::round(static_cast<double>(s.factor) * s.original_max_position);
  if (!(scaled > max_position)) return max_position;  // (a NaN factor included)
  return static_cast<int>(std::min(scaled, static_cast<double>(INT_MAX)));
}

}  // namespace ringserve::model
