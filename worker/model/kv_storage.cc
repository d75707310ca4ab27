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
  storage->layer_block_bytes_ = kernels::DTypeBytes(
      dtype, static_cast<size_t>(block_size) * config.num_kv_heads * config.head_dim);
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

template <typename CopyOne>
void KvStorage::ForEachTensor(CopyOne copy_one) {
  size_t index = 0;
  for (size_t layer = 0; layer < k_.size(); ++layer) {
    for (const kernels::DeviceBuffer* tensor : {&k_[layer], &v_[layer]}) {
      copy_one(tensor->as<uint8_t>(), index++);
    }
  }
}

uint8_t* KvStorage::BlockIn(uint8_t* tensor, int block) const {
  RS_CHECK(block >= 0 && block < num_blocks_);
  return tensor + static_cast<size_t>(block) * layer_block_bytes_;
}

void KvStorage::CopyBlock(int src, int dst) {
  ForEachTensor([&](uint8_t* tensor, size_t /*index*/) {
    backend_->CopyOnDevice(BlockIn(tensor, dst), BlockIn(tensor, src), layer_block_bytes_);
  });
}

void KvStorage::CopyBlockToHost(int block, uint8_t* dst) {
  ForEachTensor([&](uint8_t* tensor, size_t index) {
    backend_->CopyToHostQueued(dst + index * layer_block_bytes_, BlockIn(tensor, block),
                               layer_block_bytes_);
  });
}

void KvStorage::CopyBlockFromHost(const uint8_t* src, int block) {
  ForEachTensor([&](uint8_t* tensor, size_t index) {
    backend_->CopyToDevice(BlockIn(tensor, block), src + index * layer_block_bytes_,
                           layer_block_bytes_);
  });
}

}  // namespace ringserve::model
