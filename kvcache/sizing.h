// Pool sizing arithmetic. The engine measures free device memory (--kv-memory) and the
// model's shape; this turns bytes into a block count for KvCacheOptions::num_blocks.
#ifndef RINGSERVE_KVCACHE_SIZING_H_
#define RINGSERVE_KVCACHE_SIZING_H_

#include <cstddef>
#include <cstdint>

namespace ringserve::kvcache {

// Bytes one block occupies across all layers: K and V, each
// [block_size_tokens, num_kv_heads, head_dim] per layer.
size_t KvBytesPerBlock(int32_t num_layers, int32_t num_kv_heads, int32_t head_dim,
                       int32_t block_size_tokens, size_t bytes_per_element);

// Whole blocks that fit in kv_bytes (rounded down). bytes_per_block must be > 0.
size_t NumBlocksForMemory(size_t kv_bytes, size_t bytes_per_block);

// Blocks needed to hold num_tokens tokens (rounded up). block_size_tokens must be > 0.
inline int64_t NumBlocksForTokens(int64_t num_tokens, int32_t block_size_tokens) {
  return (num_tokens + block_size_tokens - 1) / block_size_tokens;
}

}  // namespace ringserve::kvcache

#endif  // RINGSERVE_KVCACHE_SIZING_H_
