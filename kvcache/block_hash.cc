#include "kvcache/block_hash.h"

#include "common/hash.h"

namespace ringserve::kvcache {

BlockKey ChainedBlockKey(BlockKey parent_key, std::span<const int32_t> block_tokens) {
  return Hash64(block_tokens.data(), block_tokens.size_bytes(), parent_key);
}

BlockKey RootKeyFor(int32_t adapter) {
  if (adapter < 0) return kRootBlockKey;
  // Token ids are never negative, so no prompt's first block hashes this "block".
  const int32_t marker[] = {-1, adapter};
  return ChainedBlockKey(kRootBlockKey, marker);
}

}  // namespace ringserve::kvcache
