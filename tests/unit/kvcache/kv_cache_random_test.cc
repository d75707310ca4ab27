// Seeded random-operation test (TGI style): thousands of admit / append / reserve+commit /
// fork / release operations on prompts that share prefixes, with every invariant checked
// after every step. A fake device (one token id per KV slot, and per slot of a host tier)
// runs the pending copies and the writes, so the test also proves that every computed
// position of every live sequence holds that sequence's token, whatever was shared, copied,
// evicted, kept in host memory or copied back.
#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "gtest/gtest.h"
#include "kvcache/kv_cache_manager.h"

namespace ringserve::kvcache {
namespace {

constexpr int32_t kBlockSize = 4;
constexpr int32_t kNumBlocks = 48;
constexpr int32_t kEmptySlot = -1;

class RandomOpsHarness {
 public:
  RandomOpsHarness(uint32_t seed, BlockHasher hasher, int32_t num_host_blocks)
      : rng_(seed),
        manager_({.num_blocks = kNumBlocks,
                  .block_size_tokens = kBlockSize,
                  .num_host_blocks = num_host_blocks,
                  .block_hasher = hasher}),
        device_(static_cast<size_t>(kNumBlocks * kBlockSize), kEmptySlot),
        host_(static_cast<size_t>(num_host_blocks * kBlockSize), kEmptySlot) {
    for (auto& base : bases_) {
      base.resize(24);
      for (int32_t& token : base) token = Uniform(0, 1000);
    }
  }

  void Step() {
    const int op = Uniform(0, 9);
    if (leases_.empty() || op <= 1) {
      Admit();
    } else if (op <= 6) {
      Advance(RandomLive());
    } else if (op == 7) {
      Fork(RandomLive());
    } else {
      Release(RandomLive());
    }
    RunCopies();  // as the engine does before each pass
    CheckInvariants();
  }

  void ReleaseAllAndCheck() {
    leases_.clear();  // each lease releases its sequence
    EXPECT_TRUE(manager_.Validate().ok()) << manager_.Validate();
    const KvCacheStats stats = manager_.Stats();
    EXPECT_EQ(stats.num_used_blocks, 0);
    EXPECT_EQ(stats.num_free_blocks, kNumBlocks);
    EXPECT_EQ(manager_.num_sequences(), 0u);
  }

  int64_t num_hit_tokens() const { return manager_.Stats().num_hit_tokens; }
  int64_t num_host_hit_tokens() const { return manager_.Stats().num_host_hit_tokens; }
  int64_t num_offloaded_blocks() const { return manager_.Stats().num_offloaded_blocks; }
  int64_t num_cow_copies() const { return manager_.Stats().num_cow_copies; }

 private:
  int32_t Uniform(int32_t lo, int32_t hi) {
    return std::uniform_int_distribution<int32_t>(lo, hi)(rng_);
  }

  SeqId RandomLive() {
    auto it = leases_.begin();
    std::advance(it, Uniform(0, static_cast<int32_t>(leases_.size()) - 1));
    return it->first;
  }

  std::vector<int32_t> RandomPrompt() {
    const std::vector<int32_t>& base = bases_[static_cast<size_t>(Uniform(0, 3))];
    std::vector<int32_t> prompt(base.begin(), base.begin() + Uniform(1, 24));
    for (int32_t i = Uniform(0, 12); i > 0; --i) prompt.push_back(Uniform(0, 1000));
    return prompt;
  }

  void Admit() {
    const std::vector<int32_t> prompt = RandomPrompt();
    const SeqId seq = next_seq_id_++;
    const std::optional<Admission> admission = manager_.Admit(seq, prompt, Uniform(0, 16));
    if (!admission.has_value()) {
      if (!leases_.empty()) Release(RandomLive());  // preempt, as the scheduler would
      return;
    }
    EXPECT_EQ(admission->num_cached_tokens % kBlockSize, 0);
    EXPECT_LT(admission->num_cached_tokens, static_cast<int32_t>(prompt.size()));
    tokens_[seq] = prompt;
    leases_.emplace(seq, SequenceLease(&manager_, seq));
  }

  // One scheduler step for seq: compute a chunk of its known tokens, or sample one more.
  void Advance(SeqId seq) {
    std::vector<int32_t>& tokens = tokens_[seq];
    const int32_t num_computed = manager_.NumComputedTokens(seq);
    if (num_computed == static_cast<int32_t>(tokens.size())) {
      const int32_t sampled = Uniform(0, 1000);
      tokens.push_back(sampled);
      manager_.AppendTokens(seq, std::vector<int32_t>{sampled});
      return;
    }
    const int32_t num_new =
        std::min(Uniform(1, 8), static_cast<int32_t>(tokens.size()) - num_computed);
    if (!manager_.Reserve(seq, num_new)) return;  // refusal: next step may preempt
    RunCopies();
    for (int32_t pos = num_computed; pos < num_computed + num_new; ++pos) {
      device_[static_cast<size_t>(manager_.SlotOf(seq, pos))] = tokens[static_cast<size_t>(pos)];
    }
    manager_.Commit(seq, num_new);
  }

  void RunCopies() {
    for (const BlockCopy& copy : manager_.TakePendingCopies()) {
      std::vector<int32_t>& from = copy.kind == CopyKind::kFromHost ? host_ : device_;
      std::vector<int32_t>& to = copy.kind == CopyKind::kToHost ? host_ : device_;
      std::copy_n(from.begin() + ptrdiff_t{copy.src_block} * kBlockSize, kBlockSize,
                  to.begin() + ptrdiff_t{copy.dst_block} * kBlockSize);
    }
  }

  void Fork(SeqId src) {
    const SeqId dst = next_seq_id_++;
    manager_.Fork(src, dst);
    std::vector<int32_t> tokens = tokens_.at(src);  // copy first: inserting may rehash
    tokens_[dst] = std::move(tokens);
    leases_.emplace(dst, SequenceLease(&manager_, dst));
  }

  void Release(SeqId seq) {
    leases_.erase(seq);
    tokens_.erase(seq);
  }

  void CheckInvariants() {
    const absl::Status status = manager_.Validate();
    ASSERT_TRUE(status.ok()) << status;
    const KvCacheStats stats = manager_.Stats();
    ASSERT_EQ(stats.num_used_blocks + stats.num_free_blocks, kNumBlocks);
    ASSERT_LE(stats.num_cached_blocks, stats.num_free_blocks);
    ASSERT_EQ(manager_.num_sequences(), leases_.size());
    for (const auto& [seq, tokens] : tokens_) {
      ASSERT_EQ(manager_.NumTokens(seq), static_cast<int32_t>(tokens.size()));
      const std::span<const BlockId> table = manager_.BlockTable(seq);
      const int32_t num_computed = manager_.NumComputedTokens(seq);
      for (int32_t pos = 0; pos < num_computed; ++pos) {
        const size_t slot =
            static_cast<size_t>(table[static_cast<size_t>(pos / kBlockSize)]) * kBlockSize +
            static_cast<size_t>(pos % kBlockSize);
        ASSERT_EQ(device_[slot], tokens[static_cast<size_t>(pos)])
            << "sequence " << seq << " position " << pos;
      }
    }
  }

  std::mt19937 rng_;
  KvCacheManager manager_;
  std::vector<int32_t> device_;  // the token whose KV each slot holds
  std::vector<int32_t> host_;    // the same for the host tier's slots
  std::vector<int32_t> bases_[4];
  absl::flat_hash_map<SeqId, std::vector<int32_t>> tokens_;
  absl::flat_hash_map<SeqId, SequenceLease> leases_;  // declared last: released first
  SeqId next_seq_id_ = 1;
};

// Keeps 3 bits of the real key: constant collisions between different prefixes.
BlockKey ThreeBitHasher(BlockKey parent_key, std::span<const int32_t> tokens) {
  return ChainedBlockKey(parent_key, tokens) & 7;
}

void RunRandomOps(uint32_t seed, BlockHasher hasher, int32_t num_host_blocks = 0) {
  RandomOpsHarness harness(seed, hasher, num_host_blocks);
  for (int step = 0; step < 2500; ++step) {
    harness.Step();
    if (::testing::Test::HasFatalFailure()) {
      ADD_FAILURE() << "seed " << seed << " step " << step;
      return;
    }
  }
  EXPECT_GT(harness.num_hit_tokens(), 0) << "the prompts should share prefixes";
  EXPECT_GT(harness.num_cow_copies(), 0) << "forks should diverge";
  if (num_host_blocks > 0) {
    EXPECT_GT(harness.num_offloaded_blocks(), 0) << "evicted blocks should go to the host tier";
    // With 3-bit keys the tier holds at most 8 keys and a restore needs their content to
    // match too: whether one happens depends on the operation order, which follows the
    // process's hash seed (RandomLive walks a hash map).
    if (hasher == &ChainedBlockKey) {
      EXPECT_GT(harness.num_host_hit_tokens(), 0) << "evicted prefixes should come back";
    }
  }
  harness.ReleaseAllAndCheck();
}

TEST(KvCacheRandomTest, InvariantsHoldAfterEveryOperation) {
  for (uint32_t seed = 1; seed <= 3; ++seed) RunRandomOps(seed, &ChainedBlockKey);
}

TEST(KvCacheRandomTest, CollidingKeysNeverCorruptSequences) {
  for (uint32_t seed = 11; seed <= 12; ++seed) RunRandomOps(seed, &ThreeBitHasher);
}

TEST(KvCacheRandomTest, InvariantsHoldWithAHostTier) {
  for (uint32_t seed = 21; seed <= 23; ++seed)
    RunRandomOps(seed, &ChainedBlockKey, seed == 21 ? 24 : 6);
}

TEST(KvCacheRandomTest, CollidingKeysNeverCorruptSequencesWithAHostTier) {
  for (uint32_t seed = 31; seed <= 32; ++seed) RunRandomOps(seed, &ThreeBitHasher, 24);
}

}  // namespace
}  // namespace ringserve::kvcache
