#include "worker/model/kv_storage.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/check.h"
#include "common/status_macros.h"

namespace ringserve::model {

size_t KvStorage::BytesPerBlock(const ModelConfig& config, int block_size, kernels::DType dtype) {
  const size_t per_layer = kernels::DTypeBytes(
      dtype, static_cast<size_t>(block_size) * config.num_kv_heads * config.head_dim);
  return 2 * per_layer * static_cast<size_t>(config.num_layers);
}

absl::StatusOr<std::unique_ptr<KvStorage>> KvStorage::Create(const ModelConfig& config,
                                                             kernels::Backend* backend,
                                                             kernels::DType dtype, int num_blocks,
                                                             int block_size) {
  if (num_blocks <= 0 || block_size <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("KV storage needs at least one block of at least one token (got ", num_blocks,
                     " blocks of ", block_size, ")"));
  }
  auto storage = std::unique_ptr<KvStorage>(new KvStorage());
  storage->backend_ = backend;
  storage->num_blocks_ = num_blocks;
  storage->block_size_ = block_size;
  if (!backend->SupportsKvDtype(dtype)) {
    return absl::InvalidArgumentError(absl::StrCat("the ", std::string(backend->name()),
                                                   " backend cannot keep a KV cache in ",
                                                   std::string(kernels::DTypeName(dtype))));
  }
  storage->shape_ = kernels::KvLayerView{
      nullptr, nullptr, dtype, num_blocks, block_size, config.num_kv_heads, config.head_dim};
  const size_t layer_bytes =
      kernels::DTypeBytes(storage->shape_.dtype, static_cast<size_t>(num_blocks) * block_size *
                                                     config.num_kv_heads * config.head_dim);
  for (int layer = 0; layer < config.num_layers; ++layer) {
    RS_ASSIGN_OR_RETURN(auto k, backend->Allocate(layer_bytes));
    RS_ASSIGN_OR_RETURN(auto v, backend->Allocate(layer_bytes));
    storage->k_.push_back(std::move(k));
    storage->v_.push_back(std::move(v));
  }
  return storage;
}

kernels::KvLayerView KvStorage::Layer(int layer) const {
  kernels::KvLayerView view = shape_;
  view.k = k_[layer].data();
  view.v = v_[layer].data();
  return view;
}

void KvStorage::CopyBlock(int src, int dst) {
  RS_CHECK(src >= 0 && src < num_blocks_ && dst >= 0 && dst < num_blocks_);
  const size_t block_bytes = kernels::DTypeBytes(
      shape_.dtype, static_cast<size_t>(block_size_) * shape_.num_kv_heads * shape_.head_dim);
  for (size_t layer = 0; layer < k_.size(); ++layer) {
    for (const kernels::DeviceBuffer* tensor : {&k_[layer], &v_[layer]}) {
      auto* base = tensor->as<uint8_t>();
      backend_->CopyOnDevice(base + static_cast<size_t>(dst) * block_bytes,
                             base + static_cast<size_t>(src) * block_bytes, block_bytes);
    }
  }
}

}  // namespace ringserve::model
