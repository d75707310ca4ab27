// KvCacheManager: the paged KV cache as the scheduler sees it. Per-sequence block tables,
// automatic prefix caching, fork with copy-on-write, all-or-nothing reservations.
// Bookkeeping only: the model runner owns the K/V tensors and indexes them by block id.
//
// One engine step, as the generator drives it:
//   schedule: for a waiting request, CanEverFit(prompt) or refuse (RESOURCE_EXHAUSTED);
//             Admit(id, prompt, chunk) -> cached + new tokens, or nullopt (preempt, retry);
//             for a running one, Reserve(id, n) (n = 1 when decoding, a chunk when
//             prefilling), or false (preempt: Release(id), keep its tokens, re-Admit later);
//   execute:  run TakePendingCopies() in order, then the forward pass, writing K/V of
//             position p of sequence id at SlotOf(id, p) (block tables via BlockTable(id));
//   update:   Commit(id, n) for every sequence that ran, AppendTokens(id, {sampled});
//             Release(id) (or drop its SequenceLease) when a request finishes.
#ifndef RINGSERVE_KVCACHE_KV_CACHE_MANAGER_H_
#define RINGSERVE_KVCACHE_KV_CACHE_MANAGER_H_

#include <climits>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kvcache/block_hash.h"
#include "kvcache/block_pool.h"
#include "kvcache/host_block_index.h"

namespace ringserve::kvcache {

using SeqId = uint64_t;

struct KvCacheOptions {
  int32_t num_blocks = 0;          // > 0; see NumBlocksForMemory() in kvcache/sizing.h
  int32_t block_size_tokens = 16;  // > 0
  // Blocks of host memory that keep what the pool evicts (0: none); see HostBlockIndex.
  int32_t num_host_blocks = 0;
  BlockHasher block_hasher = &ChainedBlockKey;  // tests inject colliding hashers
};

// Leading tokens of a prompt whose KV is already cached, in whole blocks: on the device, then
// (the blocks after those) in the host tier, to be copied back.
struct PrefixMatch {
  int32_t num_cached_blocks = 0;  // device and host
  int32_t num_cached_tokens = 0;
  int32_t num_host_blocks = 0;  // of num_cached_blocks
};

// Result of a successful Admit(): KV for tokens [0, num_cached_tokens) is already computed;
// capacity is reserved for the next num_new_tokens.
struct Admission {
  int32_t num_cached_tokens = 0;
  int32_t num_new_tokens = 0;
};

// Where a BlockCopy goes: between two device blocks (copy-on-write of a shared, partially
// filled block), from a device block into a host slot (the pool evicts a cached block), or
// from a host slot into a device block (a prefix found in the host tier).
enum class CopyKind : uint8_t { kOnDevice, kToHost, kFromHost };

// A copy of one whole block the model runner must do before the step's forward pass, in the
// order given: src and dst are device block ids, except the host slot (HostSlot) that kind
// names.
struct BlockCopy {
  int32_t src_block = kNoBlock;
  int32_t dst_block = kNoBlock;
  CopyKind kind = CopyKind::kOnDevice;
  friend bool operator==(const BlockCopy&, const BlockCopy&) = default;
};

struct KvCacheStats {
  int32_t num_blocks = 0;
  int32_t num_used_blocks = 0;           // refcount > 0
  int32_t num_cached_blocks = 0;         // refcount 0 with a key: still findable
  int32_t num_free_blocks = 0;           // num_blocks - num_used_blocks (includes cached)
  int64_t num_prefix_lookups = 0;        // successful admissions
  int64_t num_prefix_lookup_tokens = 0;  // prompt tokens of those admissions
  int64_t num_hit_blocks = 0;
  int64_t num_hit_tokens = 0;  // prompt tokens served from the cache
  int64_t num_evictions = 0;   // cached blocks whose key was dropped on reuse
  int64_t num_cow_copies = 0;
  // The host tier (KvCacheOptions::num_host_blocks).
  int32_t num_host_blocks = 0;
  int32_t num_host_stored_blocks = 0;  // slots holding a block
  int64_t num_host_hit_blocks = 0;     // of num_hit_blocks: copied back from host memory
  int64_t num_host_hit_tokens = 0;     // of num_hit_tokens
  int64_t num_offloaded_blocks = 0;    // evicted blocks copied into host memory
  int64_t num_host_evictions = 0;      // host slots reused for another block
};

// Owner: the generator (one per worker: "one model, one generator, one cache"); it must
// outlive every SequenceLease made for it. Thread: the engine thread only. Single-threaded by
// design, no locks; other threads never call it.
//
// A sequence (SeqId, chosen by the caller) holds its token ids, the number of leading tokens
// whose KV is computed, and a block table: block i holds the KV of positions
// [i * block_size_tokens, (i + 1) * block_size_tokens). Tables only grow, except that
// copy-on-write replaces the shared partial block a sequence is about to write into.
// Invariants (checked by Validate()):
//  - a block's refcount equals the number of block tables that hold it;
//  - full computed blocks are immutable and keyed by the chained key of their prefix; a
//    block with a refcount > 1 is never written (Reserve() copies it first);
//  - num_computed_tokens <= NumTokens and <= table size * block_size_tokens.
// Every mutating call checks before it changes anything: a refusal (nullopt / false) leaves
// all state untouched. Precondition violations (unknown SeqId, counts out of range) are bugs
// and fail RS_CHECK.
class KvCacheManager {
 public:
  // InvalidArgument for num_blocks <= 0, block_size_tokens <= 0 or a null hasher.
  static absl::StatusOr<std::unique_ptr<KvCacheManager>> Create(const KvCacheOptions& options);
  // Same checks as Create(), as RS_CHECKs.
  explicit KvCacheManager(const KvCacheOptions& options);
  KvCacheManager(const KvCacheManager&) = delete;
  KvCacheManager& operator=(const KvCacheManager&) = delete;

  int32_t num_blocks() const { return pool_.num_blocks(); }
  int32_t block_size_tokens() const { return pool_.block_size_tokens(); }
  // Free blocks, cached ones included: what Admit()/Reserve() may hand out.
  int32_t NumFreeBlocksForAdmission() const { return pool_.NumFreeBlocks(); }
  // Free blocks that hold no cached prefix: what a growth may take without evicting one
  // (free blocks are handed out unkeyed first).
  int32_t NumUnkeyedFreeBlocks() const { return pool_.NumFreeBlocks() - pool_.NumCachedBlocks(); }
  // False when a sequence of num_tokens tokens would not fit even in an empty pool: the
  // scheduler refuses it (RESOURCE_EXHAUSTED) instead of preempting for it.
  bool CanEverFit(int64_t num_tokens) const;

  // The cached prefix of tokens (on the device, then in the host tier), in whole blocks,
  // capped so that at least one token is left to compute (the model must run on it to
  // produce logits). Changes nothing, counts nothing.
  // `root_key` starts the chain of keys (RootKeyFor: K/V computed with a LoRA adapter are
  // found only by sequences with the same adapter).
  PrefixMatch Match(std::span<const int32_t> tokens, BlockKey root_key = kRootBlockKey) const;

  // Starts sequence seq_id (not live) with tokens (non-empty): shares the cached prefix
  // blocks (see Match(); those in the host tier get device blocks and copies back, queued
  // for TakePendingCopies()) and reserves blocks for the next
  // min(max_new_tokens, tokens.size() - cached) tokens (a whole prompt or a first chunk of a
  // chunked prefill). At most max_cached_tokens come from the cache: a sequence that needs
  // the logits of earlier positions (prompt scoring) computes them again. The sequence's
  // blocks chain from `root_key` (see Match). nullopt when the blocks do not fit; then
  // nothing changed.
  [[nodiscard]] std::optional<Admission> Admit(SeqId seq_id, std::span<const int32_t> tokens,
                                               int32_t max_new_tokens,
                                               int32_t max_cached_tokens = INT32_MAX,
                                               BlockKey root_key = kRootBlockKey);

  // Appends token ids (e.g. a sampled token) whose KV is not computed yet. No blocks move.
  void AppendTokens(SeqId seq_id, std::span<const int32_t> tokens);
  // Forgets the last num_tokens tokens, none of them computed (the draft tokens of a
  // speculative step, before the accepted ones are appended again). Blocks reserved for them
  // stay in the table, to be written by the tokens that take their positions.
  void DropTokens(SeqId seq_id, int32_t num_tokens);
  // Releases the blocks at the end of the table that hold no token of the sequence (reserved
  // for draft tokens that were dropped). They are private and unkeyed, so they go back free.
  void ReleaseBlocksPastTokens(SeqId seq_id);

  // Makes room to compute the next num_new_tokens tokens (which must be known:
  // NumComputedTokens + num_new_tokens <= NumTokens): grows the table and, when the first
  // block written is shared, replaces it with a private copy (queued for
  // TakePendingCopies()). False when the blocks do not fit; then nothing changed.
  [[nodiscard]] bool Reserve(SeqId seq_id, int32_t num_new_tokens);

  // Records that the KV of the next num_new_tokens tokens is computed (within the reserved
  // capacity) and indexes every block that became full, so later prompts can hit it.
  void Commit(SeqId seq_id, int32_t num_new_tokens);

  // Starts dst_seq_id (not live) as a copy of src_seq_id: same tokens and computed count,
  // sharing every block that holds computed KV (refcount + 1). Needs no free block: the
  // shared partial block is copied later, by whichever sequence writes into it first.
  void Fork(SeqId src_seq_id, SeqId dst_seq_id);

  // Ends a sequence (refcount - 1 on each block, last block first so that the tail of a
  // prefix is evicted before its head). Full keyed blocks stay cached; the rest are free.
  void Release(SeqId seq_id);

  // Copies queued since the last call: copy-on-write by Reserve(), evicted blocks into the
  // host tier, found ones back. Call once per step after scheduling and run them in order
  // before the forward pass (an eviction's copy out precedes the copy that reuses its
  // block or slot). Copy-on-write copies into blocks freed before being taken are dropped.
  std::vector<BlockCopy> TakePendingCopies();

  bool Contains(SeqId seq_id) const { return seqs_.contains(seq_id); }
  size_t num_sequences() const { return seqs_.size(); }
  int32_t NumTokens(SeqId seq_id) const;
  int32_t NumComputedTokens(SeqId seq_id) const;
  std::span<const BlockId> BlockTable(SeqId seq_id) const;
  // Flat KV slot of a position: block_table[position / block_size] * block_size + offset.
  // position must be within the reserved capacity.
  int64_t SlotOf(SeqId seq_id, int32_t position) const;

  KvCacheStats Stats() const;

  // Checks the invariants above across all sequences and the pool. O(num_blocks + total
  // table length). For tests and debug builds.
  absl::Status Validate() const;

 private:
  friend class SequenceLease;

  struct Sequence {
    std::vector<int32_t> tokens;
    std::vector<BlockId> block_table;
    std::vector<BlockKey> block_keys;   // chained keys of the full computed blocks
    BlockKey root_key = kRootBlockKey;  // the parent key of block 0 (Admit)
    int32_t num_computed_tokens = 0;
    uint64_t epoch = 0;  // distinguishes re-admissions of one SeqId (for SequenceLease)
  };

  // Matched cached blocks and their keys; stops at the first miss. The device's hits go to
  // *blocks, then those of the host tier to *host_slots (each may be null).
  PrefixMatch MatchBlocks(std::span<const int32_t> tokens, BlockKey root_key,
                          std::vector<BlockId>* blocks, std::vector<BlockKey>* keys,
                          std::vector<HostSlot>* host_slots) const;
  // The pool's eviction listener: keeps the block in the host tier.
  void Offload(BlockId block, BlockKey key, BlockKey parent_key,
               std::span<const int32_t> block_tokens);
  std::span<const int32_t> BlockTokens(const Sequence& seq, size_t block_index) const;
  bool NeedsCopyOnWrite(const Sequence& seq, int32_t num_new_tokens) const;
  Sequence& Get(SeqId seq_id);
  const Sequence& Get(SeqId seq_id) const;
  uint64_t EpochOf(SeqId seq_id) const { return Get(seq_id).epoch; }
  void ReleaseIfEpoch(SeqId seq_id, uint64_t epoch);
  absl::Status ValidateSequence(SeqId seq_id, const Sequence& seq) const;

  BlockPool pool_;
  std::optional<HostBlockIndex> host_;  // with KvCacheOptions::num_host_blocks > 0
  BlockHasher hasher_;
  absl::flat_hash_map<SeqId, Sequence> seqs_;
  std::vector<BlockCopy> pending_copies_;
  uint64_t next_epoch_ = 1;
  KvCacheStats counters_;  // only the cumulative int64 fields are kept here
};

// Move-only RAII owner of one live sequence: its destructor (or Reset()) releases the
// sequence's blocks. Made after a successful Admit() or Fork(); if the sequence was already
// released and its SeqId admitted again, the stale lease does nothing. Owned by the engine's
// per-sequence record and destroyed on the engine thread only (never hand it to an RPC
// thread), before the manager.
class SequenceLease {
 public:
  SequenceLease() = default;
  // seq_id must be live in *manager.
  SequenceLease(KvCacheManager* manager, SeqId seq_id);
  SequenceLease(SequenceLease&& other) noexcept;
  SequenceLease& operator=(SequenceLease&& other) noexcept;
  SequenceLease(const SequenceLease&) = delete;
  SequenceLease& operator=(const SequenceLease&) = delete;
  ~SequenceLease() { Reset(); }

  SeqId seq_id() const { return seq_id_; }
  bool active() const { return manager_ != nullptr; }
  // Releases the sequence now (e.g. on preemption); idempotent.
  void Reset();

 private:
  KvCacheManager* manager_ = nullptr;
  SeqId seq_id_ = 0;
  uint64_t epoch_ = 0;
};

}  // namespace ringserve::kvcache

#endif  // RINGSERVE_KVCACHE_KV_CACHE_MANAGER_H_
