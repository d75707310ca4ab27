// Content keys for full KV blocks (automatic prefix caching).
//
// key(block i) = Hash64(token ids of block i, seed = key(block i - 1)), with
// key(block -1) = kRootBlockKey. The chain makes one key stand for the whole prefix up to and
// including the block, so the same 16 tokens after a different prefix get a different key
// (nano-vllm's compute_hash, vLLM v1's hash_block_tokens). Seeding xxHash64 with the parent
// key chains without copying the tokens into a buffer. Token ids are hashed in native byte
// order: keys never leave the worker process, so endianness cannot differ.
//
// Keys may collide; the block pool stores each full block's parent key and token ids and
// compares them on every hit (see BlockPool::Find).
#ifndef RINGSERVE_KVCACHE_BLOCK_HASH_H_
#define RINGSERVE_KVCACHE_BLOCK_HASH_H_

#include <cstdint>
#include <span>

namespace ringserve::kvcache {

using BlockKey = uint64_t;

// Parent key of a sequence's first block.
inline constexpr BlockKey kRootBlockKey = 0x9e3779b97f4a7c15ULL;

// The root key of a sequence whose K/V a LoRA adapter computes: `adapter_key` names one
// load of one adapter (the generator's, never reused; 0, the model's own weights:
// kRootBlockKey). The same tokens under another adapter have other K/V, so their blocks must
// never be shared: every key of the chain differs.
BlockKey RootKeyFor(uint64_t adapter_key);

// The production key function: xxHash64 of the block's token ids seeded with the parent key.
BlockKey ChainedBlockKey(BlockKey parent_key, std::span<const int32_t> block_tokens);

// Signature of a key function. Tests inject a degenerate one to force collisions.
using BlockHasher = BlockKey (*)(BlockKey parent_key, std::span<const int32_t> block_tokens);

}  // namespace ringserve::kvcache

#endif  // RINGSERVE_KVCACHE_BLOCK_HASH_H_
