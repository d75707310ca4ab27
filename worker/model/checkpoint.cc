#include "worker/model/checkpoint.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "worker/model/gguf_loader.h"
#include "worker/model/llama2c_loader.h"
#include "worker/model/safetensors_loader.h"

namespace ringserve::model {
namespace {

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

}  // namespace

int64_t HostTensor::NumElements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

absl::StatusOr<const HostTensor*> Checkpoint::Find(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) {
    return absl::NotFoundError(absl::StrCat(source_path, ": missing tensor '", name, "'"));
  }
  return &tensors_[it->second];
}

absl::StatusOr<const HostTensor*> Checkpoint::FindWithShape(
    const std::string& name, const std::vector<int64_t>& shape) const {
  RS_ASSIGN_OR_RETURN(const HostTensor* t, Find(name));
  if (t->shape != shape) {
    return absl::InvalidArgumentError(absl::StrCat(source_path, ": tensor '", name, "' has shape ",
                                                   ShapeString(t->shape), ", expected ",
                                                   ShapeString(shape)));
  }
  return t;
}

void Checkpoint::AddTensor(HostTensor tensor) {
  auto [it, inserted] = index_.emplace(tensor.name, tensors_.size());
  if (inserted) {
    tensors_.push_back(std::move(tensor));
  } else {
    tensors_[it->second] = std::move(tensor);  // a later shard wins; loaders reject duplicates
  }
}

void* Checkpoint::AllocateOwned(size_t bytes) {
  owned_.push_back(std::make_unique<uint8_t[]>(bytes));
  return owned_.back().get();
}

absl::Status Checkpoint::ValidateTensors() const {
  const ModelConfig& c = config;
  const int64_t hd = c.head_dim != 0 ? c.head_dim : c.dim / std::max(c.num_heads, 1);
  const int64_t q = c.num_heads * hd;
  const int64_t kv = c.num_kv_heads * hd;
  // Checked one by one (not listed first): a damaged header may claim 2^30 layers.
  auto check = [&](const std::string& name, std::vector<int64_t> shape) -> absl::Status {
    RS_ASSIGN_OR_RETURN(const HostTensor* t, FindWithShape(name, shape));
    if (t->dtype == kernels::DType::kI32 ||
        (t->dtype == kernels::DType::kQ8_0 && shape.back() % kernels::kQ8_0BlockValues != 0)) {
      return absl::InvalidArgumentError(absl::StrCat(source_path, ": tensor '", name,
                                                     "' has unsupported dtype ",
                                                     std::string(kernels::DTypeName(t->dtype))));
    }
    return absl::OkStatus();
  };
  RS_RETURN_IF_ERROR(check("token_embd.weight", {c.vocab_size, c.dim}));
  RS_RETURN_IF_ERROR(check("output_norm.weight", {c.dim}));
  if (!c.tied_embeddings) RS_RETURN_IF_ERROR(check("output.weight", {c.vocab_size, c.dim}));
  for (int l = 0; l < c.num_layers; ++l) {
    const std::string p = absl::StrCat("blk.", l, ".");
    RS_RETURN_IF_ERROR(check(p + "attn_norm.weight", {c.dim}));
    RS_RETURN_IF_ERROR(check(p + "attn_q.weight", {q, c.dim}));
    RS_RETURN_IF_ERROR(check(p + "attn_k.weight", {kv, c.dim}));
    RS_RETURN_IF_ERROR(check(p + "attn_v.weight", {kv, c.dim}));
    if (c.attention_bias) {
      RS_RETURN_IF_ERROR(check(p + "attn_q.bias", {q}));
      RS_RETURN_IF_ERROR(check(p + "attn_k.bias", {kv}));
      RS_RETURN_IF_ERROR(check(p + "attn_v.bias", {kv}));
    }
    if (c.qk_norm) {
      RS_RETURN_IF_ERROR(check(p + "attn_q_norm.weight", {c.head_dim}));
      RS_RETURN_IF_ERROR(check(p + "attn_k_norm.weight", {c.head_dim}));
    }
    RS_RETURN_IF_ERROR(check(p + "attn_output.weight", {c.dim, q}));
    RS_RETURN_IF_ERROR(check(p + "ffn_norm.weight", {c.dim}));
    RS_RETURN_IF_ERROR(check(p + "ffn_gate.weight", {c.hidden_dim, c.dim}));
    RS_RETURN_IF_ERROR(check(p + "ffn_up.weight", {c.hidden_dim, c.dim}));
    RS_RETURN_IF_ERROR(check(p + "ffn_down.weight", {c.dim, c.hidden_dim}));
  }
  return absl::OkStatus();
}

absl::Status CheckBiasIsServed(const std::string& file, const std::string& tensor) {
  if (!tensor.ends_with(".bias")) return absl::OkStatus();
  for (const char* served :
       {"attn_q.bias", "attn_k.bias", "attn_v.bias", "q_proj.bias", "k_proj.bias", "v_proj.bias"}) {
    if (tensor.ends_with(served)) return absl::OkStatus();
  }
  return absl::UnimplementedError(absl::StrCat(
      file, ": tensor '", tensor, "': biases other than the Q/K/V projections' are not supported"));
}

absl::StatusOr<std::unique_ptr<Checkpoint>> OpenCheckpoint(const std::string& path,
                                                           const std::string& tokenizer_path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return absl::NotFoundError(absl::StrCat(path, ": no such file or directory"));
  }
  if (S_ISDIR(st.st_mode)) return LoadSafetensorsCheckpoint(path);
  char magic[4] = {};
  std::ifstream f(path, std::ios::binary);
  f.read(magic, sizeof(magic));
  if (f.gcount() == sizeof(magic) && std::memcmp(magic, "GGUF", 4) == 0) {
    return LoadGgufCheckpoint(path);
  }
  return LoadLlama2cCheckpoint(path, tokenizer_path);
}

}  // namespace ringserve::model
