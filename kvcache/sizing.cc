#include "kvcache/sizing.h"

#include "common/check.h"

namespace ringserve::kvcache {

size_t KvBytesPerBlock(int32_t num_layers, int32_t num_kv_heads, int32_t head_dim,
                       int32_t block_size_tokens, size_t bytes_per_element) {
  RS_CHECK(num_layers > 0 && num_kv_heads > 0 && head_dim > 0 && block_size_tokens > 0);
  RS_CHECK(bytes_per_element > 0);
  constexpr size_t kTensorsPerLayer = 2;  // K and V
  return kTensorsPerLayer * static_cast<size_t>(num_layers) * static_cast<size_t>(num_kv_heads) *
         static_cast<size_t>(head_dim) * static_cast<size_t>(block_size_tokens) * bytes_per_element;
}

size_t NumBlocksForMemory(size_t kv_bytes, size_t bytes_per_block) {
  RS_CHECK(bytes_per_block > 0);
  return kv_bytes / bytes_per_block;
}

}  // namespace ringserve::kvcache
