#include "kvcache/block_hash.h"

#include "common/hash.h"

namespace ringserve::kvcache {

BlockKey ChainedBlockKey(BlockKey parent_key, std::span<const int32_t> block_tokens) {
  return Hash64(block_tokens.data(), block_tokens.size_bytes(), parent_key);
}

BlockKey RootKeyFor(uint64_t adapter_key) {
  if (adapter_key == 0) return kRootBlockKey;
  // Token ids are never negative, so no prompt's first block hashes this "block".
  const int32_t marker[] = {-1, static_cast<int32_t>(adapter_key >> 32),
                            static_cast<int32_t>(adapter_key & 0xFFFFFFFFU)};
  return ChainedBlockKey(kRootBlockKey, marker);
}

}  // namespace ringserve::kvcache
