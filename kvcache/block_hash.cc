#include "kvcache/block_hash.h"

#include "common/hash.h"

namespace ringserve::kvcache {

BlockKey ChainedBlockKey(BlockKey parent_key, std::span<const int32_t> block_tokens) {
  return Hash64(block_tokens.data(), block_tokens.size_bytes(), parent_key);
}

}  // namespace ringserve::kvcache
