#include "worker/model/model_config.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/status_macros.h"

namespace ringserve::model {
namespace {

absl::Status Invalid(absl::string_view field, int64_t value, absl::string_view rule) {
  return absl::InvalidArgumentError(absl::StrCat("model config: ", field, " = ", value, " ", rule));
}

}  // namespace

absl::Status ModelConfig::Validate() {
  struct Positive {
    const char* name;
    int value;
  };
  for (const Positive& p :
       {Positive{"dim", dim}, Positive{"hidden_dim", hidden_dim},
        Positive{"num_layers", num_layers}, Positive{"num_heads", num_heads},
        Positive{"num_kv_heads", num_kv_heads}, Positive{"vocab_size", vocab_size},
        Positive{"max_seq_len", max_seq_len}}) {
    if (p.value <= 0) return Invalid(p.name, p.value, "must be positive");
  }
  if (head_dim == 0) {
    if (dim % num_heads != 0) return Invalid("dim", dim, "is not a multiple of num_heads");
    head_dim = dim / num_heads;
  }
  if (head_dim < 0) return Invalid("head_dim", head_dim, "must be positive");
  if (num_heads % num_kv_heads != 0) {
    return Invalid("num_heads", num_heads,
                   absl::StrCat("is not a multiple of num_kv_heads (", num_kv_heads, ")"));
  }
  if (rotary_dim == 0) rotary_dim = head_dim;
  if (rotary_dim < 0 || rotary_dim % 2 != 0 || rotary_dim > head_dim) {
    return Invalid("rotary_dim", rotary_dim,
                   absl::StrCat("must be even and at most head_dim (", head_dim, ")"));
  }
  if (!(rms_eps > 0)) return absl::InvalidArgumentError("model config: rms_eps must be positive");
  if (!(rope_theta > 0)) {
    return absl::InvalidArgumentError("model config: rope_theta must be positive");
  }
  RS_RETURN_IF_ERROR(ValidateRopeScaling(rope_scaling, rotary_dim, head_dim));
  if (sliding_window < 0) return Invalid("sliding_window", sliding_window, "must be >= 0");
  if (!sliding_layers.empty() && sliding_layers.size() != static_cast<size_t>(num_layers)) {
    return Invalid("sliding_layers size", static_cast<int64_t>(sliding_layers.size()),
                   absl::StrCat("must be num_layers (", num_layers, ")"));
  }
  if (!rope_freq_divisors.empty() &&
      rope_freq_divisors.size() != static_cast<size_t>(rotary_dim / 2)) {
    return Invalid("rope_freq_divisors size", static_cast<int64_t>(rope_freq_divisors.size()),
                   absl::StrCat("must be rotary_dim / 2 (", rotary_dim / 2, ")"));
  }
  return absl::OkStatus();
}

int64_t ModelConfig::NumParameters() const {
  const int64_t hd = head_dim != 0 ? head_dim : (num_heads > 0 ? dim / num_heads : 0);
  const int64_t q = int64_t{num_heads} * hd;
  const int64_t kv = int64_t{num_kv_heads} * hd;
  const int64_t per_layer = 2 * int64_t{dim}                    // two norms
                            + dim * q + 2 * kv * dim + q * dim  // attention
                            + 3 * int64_t{dim} * hidden_dim;    // SwiGLU FFN
  const int64_t embedding = int64_t{vocab_size} * dim;
  const int64_t biases = (attention_bias ? q + 2 * kv : 0) + (qk_norm ? 2 * hd : 0);
  return embedding + num_layers * (per_layer + biases) + dim + (tied_embeddings ? 0 : embedding);
}

}  // namespace ringserve::model
