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
  // Each tensor starts 256-byte aligned, as a buffer of its own would.
  constexpr size_t kAlign = 256;
  const size_t tensor_bytes = storage->layer_block_bytes_ * static_cast<size_t>(num_blocks);
  storage->tensor_stride_ = (tensor_bytes + kAlign - 1) / kAlign * kAlign;
  storage->num_tensors_ = 2 * config.num_layers;
  RS_ASSIGN_OR_RETURN(
      storage->tensors_,
      backend->Allocate(storage->tensor_stride_ * static_cast<size_t>(storage->num_tensors_)));
  return storage;
}

kernels::KvLayerView KvStorage::Layer(int layer) const {
  RS_CHECK(layer >= 0 && 2 * layer < num_tensors_);
  kernels::KvLayerView view = shape_;
  auto* base = tensors_.as<uint8_t>();
  view.k = base + tensor_stride_ * static_cast<size_t>(2 * layer);
  view.v = base + tensor_stride_ * static_cast<size_t>(2 * layer + 1);
  return view;
}

uint8_t* KvStorage::BlockStart(int block) const {
  RS_CHECK(block >= 0 && block < num_blocks_);
  return tensors_.as<uint8_t>() + static_cast<size_t>(block) * layer_block_bytes_;
}

void KvStorage::CopyBlock(int src, int dst) {
  backend_->CopyOnDevice2D(BlockStart(dst), tensor_stride_, BlockStart(src), tensor_stride_,
                           layer_block_bytes_, static_cast<size_t>(num_tensors_));
}

void KvStorage::CopyBlockToHost(int block, uint8_t* dst) {
  backend_->CopyToHostQueued2D(dst, layer_block_bytes_, BlockStart(block), tensor_stride_,
                               layer_block_bytes_, static_cast<size_t>(num_tensors_));
}

void KvStorage::CopyBlockFromHost(const uint8_t* src, int block) {
  backend_->CopyToDevice2D(BlockStart(block), tensor_stride_, src, layer_block_bytes_,
                           layer_block_bytes_, static_cast<size_t>(num_tensors_));
}

}  // namespace ringserve::model
