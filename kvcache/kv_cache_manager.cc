#include "kvcache/kv_cache_manager.h"

#include <algorithm>
#include <utility>

#include "common/check.h"
#include "kvcache/sizing.h"

namespace ringserve::kvcache {

absl::StatusOr<std::unique_ptr<KvCacheManager>> KvCacheManager::Create(
    const KvCacheOptions& options) {
  if (options.num_blocks <= 0) {
    return absl::InvalidArgumentError("kv cache: num_blocks must be > 0");
  }
  if (options.block_size_tokens <= 0) {
    return absl::InvalidArgumentError("kv cache: block_size_tokens must be > 0");
  }
  if (options.num_host_blocks < 0) {
    return absl::InvalidArgumentError("kv cache: num_host_blocks must be >= 0");
  }
  if (options.block_hasher == nullptr) {
    return absl::InvalidArgumentError("kv cache: block_hasher must not be null");
  }
  return std::make_unique<KvCacheManager>(options);
}

KvCacheManager::KvCacheManager(const KvCacheOptions& options)
    : pool_(options.num_blocks, options.block_size_tokens), hasher_(options.block_hasher) {
  RS_CHECK(hasher_ != nullptr);
  RS_CHECK(options.num_host_blocks >= 0);
  if (options.num_host_blocks > 0) {
    host_.emplace(options.num_host_blocks, options.block_size_tokens);
    pool_.SetEvictionListener([this](BlockId block, BlockKey key, BlockKey parent_key,
                                     std::span<const int32_t> block_tokens) {
      Offload(block, key, parent_key, block_tokens);
    });
  }
}

void KvCacheManager::Offload(BlockId block, BlockKey key, BlockKey parent_key,
                             std::span<const int32_t> block_tokens) {
  const std::optional<HostSlot> slot = host_->Store(key, parent_key, block_tokens);
  if (!slot.has_value()) return;
  pending_copies_.push_back(
      BlockCopy{.src_block = block, .dst_block = *slot, .kind = CopyKind::kToHost});
  ++counters_.num_offloaded_blocks;
}

bool KvCacheManager::CanEverFit(int64_t num_tokens) const {
  return NumBlocksForTokens(num_tokens, block_size_tokens()) <= num_blocks();
}

KvCacheManager::Sequence& KvCacheManager::Get(SeqId seq_id) {
  const auto it = seqs_.find(seq_id);
  RS_CHECK_MSG(it != seqs_.end(), "unknown sequence id");
  return it->second;
}

const KvCacheManager::Sequence& KvCacheManager::Get(SeqId seq_id) const {
  const auto it = seqs_.find(seq_id);
  RS_CHECK_MSG(it != seqs_.end(), "unknown sequence id");
  return it->second;
}

std::span<const int32_t> KvCacheManager::BlockTokens(const Sequence& seq,
                                                     size_t block_index) const {
  return std::span<const int32_t>(seq.tokens)
      .subspan(block_index * static_cast<size_t>(block_size_tokens()),
               static_cast<size_t>(block_size_tokens()));
}

PrefixMatch KvCacheManager::MatchBlocks(std::span<const int32_t> tokens, BlockKey root_key,
                                        std::vector<BlockId>* blocks, std::vector<BlockKey>* keys,
                                        std::vector<HostSlot>* host_slots) const {
  PrefixMatch match;
  if (tokens.empty()) return match;
  const size_t block_size = static_cast<size_t>(block_size_tokens());
  // Leave at least one token to compute: the model must run on it to produce logits.
  const size_t max_blocks = (tokens.size() - 1) / block_size;
  BlockKey parent_key = root_key;
  bool on_device = true;  // the host tier continues where the device's chain ends
  for (size_t i = 0; i < max_blocks; ++i) {
    const std::span<const int32_t> block_tokens = tokens.subspan(i * block_size, block_size);
    const BlockKey key = hasher_(parent_key, block_tokens);
    if (on_device) {
      if (const std::optional<BlockId> block = pool_.Find(key, parent_key, block_tokens)) {
        if (blocks != nullptr) blocks->push_back(*block);
      } else {
        on_device = false;
      }
    }
    if (!on_device) {
      const std::optional<HostSlot> slot =
          host_.has_value() ? host_->Find(key, parent_key, block_tokens) : std::nullopt;
      if (!slot.has_value()) break;
      if (host_slots != nullptr) host_slots->push_back(*slot);
      ++match.num_host_blocks;
    }
    if (keys != nullptr) keys->push_back(key);
    parent_key = key;
    ++match.num_cached_blocks;
  }
  match.num_cached_tokens = match.num_cached_blocks * block_size_tokens();
  return match;
}

PrefixMatch KvCacheManager::Match(std::span<const int32_t> tokens, BlockKey root_key) const {
  return MatchBlocks(tokens, root_key, nullptr, nullptr, nullptr);
}

std::optional<Admission> KvCacheManager::Admit(SeqId seq_id, std::span<const int32_t> tokens,
                                               int32_t max_new_tokens, int32_t max_cached_tokens,
                                               BlockKey root_key) {
  RS_CHECK_MSG(!Contains(seq_id), "sequence id is already live");
  RS_CHECK(!tokens.empty());
  RS_CHECK(max_new_tokens >= 0 && max_cached_tokens >= 0);
  RS_CHECK(tokens.size() <= static_cast<size_t>(INT32_MAX));

  Sequence seq;
  seq.root_key = root_key;
  // MatchBlocks leaves a token to compute, so matching one token past the cap keeps the hit
  // within it.
  const std::span<const int32_t> matchable =
      tokens.first(std::min(tokens.size(), static_cast<size_t>(max_cached_tokens) + 1));
  std::vector<HostSlot> host_slots;
  const PrefixMatch match =
      MatchBlocks(matchable, root_key, &seq.block_table, &seq.block_keys, &host_slots);
  const int32_t num_cached_tokens = match.num_cached_tokens;
  const int32_t num_new_tokens =
      std::min(max_new_tokens, static_cast<int32_t>(tokens.size()) - num_cached_tokens);
  // Blocks found in the host tier need device blocks as fresh ones do.
  const int64_t num_fresh_blocks =
      NumBlocksForTokens(num_cached_tokens + num_new_tokens, block_size_tokens()) -
      static_cast<int64_t>(seq.block_table.size());
  // Hit blocks that are cached (refcount 0) sit on the free list: reviving them uses up free
  // blocks just as fresh allocations do.
  const int64_t num_revived =
      std::count_if(seq.block_table.begin(), seq.block_table.end(),
                    [this](BlockId block) { return pool_.RefCount(block) == 0; });
  if (num_fresh_blocks + num_revived > pool_.NumFreeBlocks()) return std::nullopt;

  // Revive the hits first so that the allocation below cannot evict them, and pin the host
  // tier's so that the blocks it evicts cannot take their slots.
  for (const BlockId block : seq.block_table) pool_.Acquire(block);
  for (const HostSlot slot : host_slots) host_->Pin(slot);
  const size_t first_restored = seq.block_table.size();
  const bool allocated = pool_.Allocate(static_cast<int32_t>(num_fresh_blocks), &seq.block_table);
  RS_CHECK(allocated);
  for (size_t i = 0; i < host_slots.size(); ++i) {
    const size_t index = first_restored + i;
    const BlockId block = seq.block_table[index];
    pending_copies_.push_back(
        BlockCopy{.src_block = host_slots[i], .dst_block = block, .kind = CopyKind::kFromHost});
    host_->Unpin(host_slots[i]);
    // Indexed now: the copy runs before any pass that could read the block.
    pool_.Register(block, seq.block_keys[index], index == 0 ? root_key : seq.block_keys[index - 1],
                   tokens.subspan(index * static_cast<size_t>(block_size_tokens()),
                                  static_cast<size_t>(block_size_tokens())));
  }
  seq.tokens.assign(tokens.begin(), tokens.end());
  seq.num_computed_tokens = num_cached_tokens;
  seq.epoch = next_epoch_++;
  seqs_.emplace(seq_id, std::move(seq));

  ++counters_.num_prefix_lookups;
  counters_.num_prefix_lookup_tokens += static_cast<int64_t>(tokens.size());
  counters_.num_hit_blocks += match.num_cached_blocks;
  counters_.num_hit_tokens += num_cached_tokens;
  counters_.num_host_hit_blocks += match.num_host_blocks;
  counters_.num_host_hit_tokens += int64_t{match.num_host_blocks} * block_size_tokens();
  return Admission{.num_cached_tokens = num_cached_tokens, .num_new_tokens = num_new_tokens};
}

void KvCacheManager::AppendTokens(SeqId seq_id, std::span<const int32_t> tokens) {
  Sequence& seq = Get(seq_id);
  RS_CHECK(seq.tokens.size() + tokens.size() <= static_cast<size_t>(INT32_MAX));
  seq.tokens.insert(seq.tokens.end(), tokens.begin(), tokens.end());
}

void KvCacheManager::DropTokens(SeqId seq_id, int32_t num_tokens) {
  Sequence& seq = Get(seq_id);
  RS_CHECK(num_tokens >= 0 &&
           static_cast<int64_t>(seq.tokens.size()) - num_tokens >= seq.num_computed_tokens);
  seq.tokens.resize(seq.tokens.size() - static_cast<size_t>(num_tokens));
}

void KvCacheManager::ReleaseBlocksPastTokens(SeqId seq_id) {
  Sequence& seq = Get(seq_id);
  const auto keep = static_cast<size_t>(
      NumBlocksForTokens(static_cast<int64_t>(seq.tokens.size()), block_size_tokens()));
  while (seq.block_table.size() > keep) {
    RS_DCHECK(pool_.RefCount(seq.block_table.back()) == 1);
    pool_.Release(seq.block_table.back());
    seq.block_table.pop_back();
  }
}

bool KvCacheManager::NeedsCopyOnWrite(const Sequence& seq, int32_t num_new_tokens) const {
  // Only a partially computed block can be shared and still written: full blocks are never
  // written again, and Fork() shares no block beyond the computed tokens.
  if (num_new_tokens == 0 || seq.num_computed_tokens % block_size_tokens() == 0) return false;
  const BlockId block = seq.block_table[seq.num_computed_tokens / block_size_tokens()];
  return pool_.RefCount(block) > 1;
}

bool KvCacheManager::Reserve(SeqId seq_id, int32_t num_new_tokens) {
  Sequence& seq = Get(seq_id);
  RS_CHECK(num_new_tokens >= 0);
  RS_CHECK(int64_t{seq.num_computed_tokens} + num_new_tokens <=
           static_cast<int64_t>(seq.tokens.size()));
  const int64_t num_needed =
      NumBlocksForTokens(seq.num_computed_tokens + num_new_tokens, block_size_tokens());
  const int64_t num_grow =
      std::max<int64_t>(0, num_needed - static_cast<int64_t>(seq.block_table.size()));
  const bool copy_on_write = NeedsCopyOnWrite(seq, num_new_tokens);
  if (num_grow + (copy_on_write ? 1 : 0) > pool_.NumFreeBlocks()) return false;

  if (copy_on_write) {
    BlockId& slot = seq.block_table[seq.num_computed_tokens / block_size_tokens()];
    std::vector<BlockId> fresh;
    RS_CHECK(pool_.Allocate(1, &fresh));
    pending_copies_.push_back(BlockCopy{.src_block = slot, .dst_block = fresh[0]});
    pool_.Release(slot);  // still held by the other sharers: refcount stays > 0
    slot = fresh[0];
    ++counters_.num_cow_copies;
  }
  RS_CHECK(pool_.Allocate(static_cast<int32_t>(num_grow), &seq.block_table));
  return true;
}

void KvCacheManager::Commit(SeqId seq_id, int32_t num_new_tokens) {
  Sequence& seq = Get(seq_id);
  RS_CHECK(num_new_tokens >= 0);
  const int64_t num_computed = int64_t{seq.num_computed_tokens} + num_new_tokens;
  RS_CHECK(num_computed <= static_cast<int64_t>(seq.tokens.size()));
  RS_CHECK(num_computed <= static_cast<int64_t>(seq.block_table.size()) * block_size_tokens());
  if (num_new_tokens > 0) {
    // The blocks just written must have been private (Reserve() copies shared ones).
    for (int64_t i = seq.num_computed_tokens / block_size_tokens();
         i <= (num_computed - 1) / block_size_tokens(); ++i) {
      RS_DCHECK(pool_.RefCount(seq.block_table[i]) == 1);
    }
  }
  seq.num_computed_tokens = static_cast<int32_t>(num_computed);
  const size_t num_full = static_cast<size_t>(num_computed / block_size_tokens());
  while (seq.block_keys.size() < num_full) {
    const size_t i = seq.block_keys.size();
    const BlockKey parent_key = i == 0 ? seq.root_key : seq.block_keys[i - 1];
    const std::span<const int32_t> block_tokens = BlockTokens(seq, i);
    const BlockKey key = hasher_(parent_key, block_tokens);
    seq.block_keys.push_back(key);
    pool_.Register(seq.block_table[i], key, parent_key, block_tokens);
  }
}

void KvCacheManager::Fork(SeqId src_seq_id, SeqId dst_seq_id) {
  RS_CHECK_MSG(!Contains(dst_seq_id), "fork target is already live");
  const Sequence& src = Get(src_seq_id);
  Sequence dst;
  dst.tokens = src.tokens;
  dst.num_computed_tokens = src.num_computed_tokens;
  dst.block_keys = src.block_keys;
  dst.root_key = src.root_key;
  const size_t num_shared =
      static_cast<size_t>(NumBlocksForTokens(src.num_computed_tokens, block_size_tokens()));
  dst.block_table.assign(src.block_table.begin(),
                         src.block_table.begin() + static_cast<ptrdiff_t>(num_shared));
  for (const BlockId block : dst.block_table) pool_.Acquire(block);
  dst.epoch = next_epoch_++;
  seqs_.emplace(dst_seq_id, std::move(dst));  // may rehash: src is not used after this
}

void KvCacheManager::Release(SeqId seq_id) {
  const auto it = seqs_.find(seq_id);
  RS_CHECK_MSG(it != seqs_.end(), "unknown sequence id");
  const std::vector<BlockId>& table = it->second.block_table;
  for (auto block = table.rbegin(); block != table.rend(); ++block) pool_.Release(*block);
  seqs_.erase(it);
  // A copy-on-write copy into a block nobody holds is moot; copies to and from the host tier
  // move keyed K/V that later prompts may find.
  std::erase_if(pending_copies_, [this](const BlockCopy& copy) {
    return copy.kind == CopyKind::kOnDevice && pool_.RefCount(copy.dst_block) == 0;
  });
}

std::vector<BlockCopy> KvCacheManager::TakePendingCopies() {
  return std::exchange(pending_copies_, {});
}

int32_t KvCacheManager::NumTokens(SeqId seq_id) const {
  return static_cast<int32_t>(Get(seq_id).tokens.size());
}

int32_t KvCacheManager::NumComputedTokens(SeqId seq_id) const {
  return Get(seq_id).num_computed_tokens;
}

std::span<const BlockId> KvCacheManager::BlockTable(SeqId seq_id) const {
  return Get(seq_id).block_table;
}

int64_t KvCacheManager::SlotOf(SeqId seq_id, int32_t position) const {
  const Sequence& seq = Get(seq_id);
  const int32_t block_size = block_size_tokens();
  RS_CHECK(position >= 0 && static_cast<size_t>(position / block_size) < seq.block_table.size());
  return int64_t{seq.block_table[static_cast<size_t>(position / block_size)]} * block_size +
         position % block_size;
}

KvCacheStats KvCacheManager::Stats() const {
  KvCacheStats stats = counters_;
  stats.num_blocks = pool_.num_blocks();
  stats.num_used_blocks = pool_.NumUsedBlocks();
  stats.num_cached_blocks = pool_.NumCachedBlocks();
  stats.num_free_blocks = pool_.NumFreeBlocks();
  stats.num_evictions = pool_.num_evictions();
  if (host_.has_value()) {
    stats.num_host_blocks = host_->num_slots();
    stats.num_host_stored_blocks = host_->NumStoredBlocks();
    stats.num_host_evictions = host_->num_evictions();
  }
  return stats;
}

void KvCacheManager::ReleaseIfEpoch(SeqId seq_id, uint64_t epoch) {
  const auto it = seqs_.find(seq_id);
  if (it != seqs_.end() && it->second.epoch == epoch) Release(seq_id);
}

SequenceLease::SequenceLease(KvCacheManager* manager, SeqId seq_id)
    : manager_(manager), seq_id_(seq_id), epoch_(manager->EpochOf(seq_id)) {}

SequenceLease::SequenceLease(SequenceLease&& other) noexcept
    : manager_(std::exchange(other.manager_, nullptr)),
      seq_id_(other.seq_id_),
      epoch_(other.epoch_) {}

SequenceLease& SequenceLease::operator=(SequenceLease&& other) noexcept {
  if (this != &other) {
    Reset();
    manager_ = std::exchange(other.manager_, nullptr);
    seq_id_ = other.seq_id_;
    epoch_ = other.epoch_;
  }
  return *this;
}

void SequenceLease::Reset() {
  if (manager_ == nullptr) return;
  std::exchange(manager_, nullptr)->ReleaseIfEpoch(seq_id_, epoch_);
}

}  // namespace ringserve::kvcache
