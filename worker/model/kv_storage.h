// The device half of the paged KV cache: for every layer, one K and one V tensor of
// [num_blocks, block_size, num_kv_heads, head_dim], allocated once on the backend as one
// buffer, the tensors a fixed stride apart (layer 0's K, its V, layer 1's K, ...): a block in
// every tensor is then `2 x layers` rows of one strided copy, not that many copies.
// kvcache/ hands out the block ids; this class only owns the memory they index.
#ifndef RINGSERVE_WORKER_MODEL_KV_STORAGE_H_
#define RINGSERVE_WORKER_MODEL_KV_STORAGE_H_

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "kernels/backend.h"
#include "worker/model/model_config.h"

namespace ringserve::model {

class KvStorage {
 public:
  // K and V in `dtype` (one the backend's SupportsKvDtype accepts).
  static absl::StatusOr<std::unique_ptr<KvStorage>> Create(const ModelConfig& config,
                                                           kernels::Backend* backend,
                                                           kernels::DType dtype, int num_blocks,
                                                           int block_size);
  // Bytes one block takes over all layers (K and V).
  static size_t BytesPerBlock(const ModelConfig& config, int block_size, kernels::DType dtype);

  int num_blocks() const { return num_blocks_; }
  int block_size() const { return block_size_; }
  kernels::KvLayerView Layer(int layer) const;
  // Bytes one block takes over all layers (K and V): BytesPerBlock for this storage.
  size_t bytes_per_block() const { return layer_block_bytes_ * static_cast<size_t>(num_tensors_); }
  // Copies block `src` into block `dst` in every layer's K and V, on the backend's stream
  // (copy-on-write of a shared partial block). Both ids must be in [0, num_blocks).
  void CopyBlock(int src, int dst);
  // Copies block `block` of every layer's K and V to host memory at `dst`
  // (bytes_per_block() bytes of a HostBuffer: layer by layer, K then V), queued on the
  // backend's stream (Backend::CopyToHostQueued2D), and back: the KV cache's host tier.
  void CopyBlockToHost(int block, uint8_t* dst);
  void CopyBlockFromHost(const uint8_t* src, int block);

 private:
  KvStorage() = default;
  // The first byte of `block` in the first tensor (layer 0's K); the block in tensor i is
  // tensor_stride_ * i bytes further. block in [0, num_blocks) (checked).
  uint8_t* BlockStart(int block) const;
  kernels::Backend* backend_ = nullptr;
  kernels::KvLayerView shape_;
  int num_blocks_ = 0;
  int block_size_ = 0;
  size_t layer_block_bytes_ = 0;  // one block of one layer's K (or V)
  size_t tensor_stride_ = 0;      // bytes from one tensor to the next
  int num_tensors_ = 0;           // 2 x layers
  kernels::DeviceBuffer tensors_;
};

}  // namespace ringserve::model

#endif  // RINGSERVE_WORKER_MODEL_KV_STORAGE_H_
