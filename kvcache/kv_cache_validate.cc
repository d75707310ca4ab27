// KvCacheManager::Validate(): the cross-structure invariants, for tests and debug builds.
#include "absl/strings/str_cat.h"
#include "kvcache/kv_cache_manager.h"
#include "kvcache/sizing.h"

namespace ringserve::kvcache {

absl::Status KvCacheManager::ValidateSequence(SeqId seq_id, const Sequence& seq) const {
  const int32_t block_size = block_size_tokens();
  const auto error = [seq_id](auto&&... parts) {
    return absl::InternalError(absl::StrCat("sequence ", seq_id, ": ", parts...));
  };
  if (static_cast<size_t>(seq.num_computed_tokens) > seq.tokens.size()) {
    return error("computed ", seq.num_computed_tokens, " > tokens ", seq.tokens.size());
  }
  if (int64_t{seq.num_computed_tokens} >
      static_cast<int64_t>(seq.block_table.size()) * block_size) {
    return error("computed tokens exceed the block table");
  }
  const size_t num_full = static_cast<size_t>(seq.num_computed_tokens / block_size);
  if (seq.block_keys.size() != num_full) {
    return error(seq.block_keys.size(), " keys for ", num_full, " full blocks");
  }
  BlockKey parent_key = seq.root_key;
  for (size_t i = 0; i < num_full; ++i) {
    const std::span<const int32_t> block_tokens = BlockTokens(seq, i);
    if (hasher_(parent_key, block_tokens) != seq.block_keys[i]) {
      return error("key of block index ", i, " breaks the chain");
    }
    const BlockId block = seq.block_table[i];
    // A keyed full block must be findable under this sequence's key with its tokens.
    if (pool_.HasKey(block) &&
        pool_.Find(seq.block_keys[i], parent_key, block_tokens) != std::optional(block)) {
      return error("keyed block ", block, " is not findable with its tokens");
    }
    parent_key = seq.block_keys[i];
  }
  const size_t num_written =
      static_cast<size_t>(NumBlocksForTokens(seq.num_computed_tokens, block_size));
  for (size_t i = num_written; i < seq.block_table.size(); ++i) {
    if (pool_.RefCount(seq.block_table[i]) != 1) {
      return error("reserved block ", seq.block_table[i], " is shared");
    }
  }
  return absl::OkStatus();
}

absl::Status KvCacheManager::Validate() const {
  if (absl::Status status = pool_.Validate(); !status.ok()) return status;
  std::vector<int32_t> num_holders(static_cast<size_t>(num_blocks()), 0);
  for (const auto& [seq_id, seq] : seqs_) {
    if (absl::Status status = ValidateSequence(seq_id, seq); !status.ok()) return status;
    for (const BlockId block : seq.block_table) {
      if (block < 0 || block >= num_blocks()) {
        return absl::InternalError(absl::StrCat("sequence ", seq_id, ": bad block ", block));
      }
      ++num_holders[static_cast<size_t>(block)];
    }
  }
  for (BlockId block = 0; block < num_blocks(); ++block) {
    if (pool_.RefCount(block) != num_holders[static_cast<size_t>(block)]) {
      return absl::InternalError(absl::StrCat("block ", block, " has refcount ",
                                              pool_.RefCount(block), " but ",
                                              num_holders[static_cast<size_t>(block)], " holders"));
    }
  }
  for (const BlockCopy& copy : pending_copies_) {
    if (copy.kind == CopyKind::kOnDevice && pool_.RefCount(copy.dst_block) == 0) {
      return absl::InternalError(absl::StrCat("pending copy into free block ", copy.dst_block));
    }
  }
  if (host_.has_value()) return host_->Validate();
  return absl::OkStatus();
}

}  // namespace ringserve::kvcache
