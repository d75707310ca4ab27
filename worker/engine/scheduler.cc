#include "worker/engine/scheduler.h"

#include <algorithm>
#include <climits>
#include <optional>
#include <span>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "common/check.h"
#include "common/hash.h"

namespace ringserve::engine {
namespace {

bool ServedBefore(const SchedSeq* a, const SchedSeq* b) {
  if (a->priority != b->priority) return a->priority > b->priority;
  return a->arrival < b->arrival;
}

void InsertSorted(std::vector<SchedSeq*>& list, SchedSeq* seq) {
  list.insert(std::upper_bound(list.begin(), list.end(), seq, ServedBefore), seq);
}

void Erase(std::vector<SchedSeq*>& list, SchedSeq* seq) {
  auto it = std::find(list.begin(), list.end(), seq);
  if (it != list.end()) list.erase(it);
}

// Keys of a sequence's full blocks, each chained over every token before it, so two
// sequences' block j have equal keys exactly when their first j + 1 blocks are equal (the
// scheduler's own keys: they only ever meet each other).
class BlockKeys {
 public:
  BlockKeys(const SchedSeq& seq, int32_t block_size)
      : seq_(seq), block_size_(block_size), key_(kvcache::RootKeyFor(seq.adapter_key)) {}

  int32_t num_full_blocks() const { return static_cast<int32_t>(seq_.tokens.size()) / block_size_; }
  // Block j's key (j < num_full_blocks()); walks forward from the last key asked for.
  uint64_t Key(int32_t j) {
    for (; next_ <= j; ++next_) {
      key_ = Hash64(seq_.tokens.data() + static_cast<size_t>(next_) * block_size_,
                    sizeof(int32_t) * static_cast<size_t>(block_size_), key_);
    }
    return key_;
  }

 private:
  const SchedSeq& seq_;
  int32_t block_size_;
  int32_t next_ = 0;  // the block Key computes next
  uint64_t key_;
};

// Adds the keys of the blocks of `seq` that computing positions [from, to) fills: they
// enter the prefix cache as it does.
void AddBlocksToCompute(const SchedSeq& seq, int32_t from, int32_t to, int32_t block_size,
                        absl::flat_hash_set<uint64_t>& keys) {
  BlockKeys blocks(seq, block_size);
  const int32_t end = std::min(blocks.num_full_blocks(), to / block_size);
  for (int32_t j = from / block_size; j < end; ++j) keys.insert(blocks.Key(j));
}

// The positions whose blocks another sequence may wait for: the rest of the prompt, or
// for a scoring sequence, which advances only as fast as the rows left for its scores, this
// step's chunk.
int32_t ComputedSoon(const SchedSeq& seq, int32_t computed) {
  return seq.scoring() ? computed + seq.planned_tokens : static_cast<int32_t>(seq.tokens.size());
}

// The positions of a chunk [start, end) of `seq` that score the prompt (one extra row each).
int32_t ScoredRows(const SchedSeq& seq, int32_t start, int32_t end) {
  if (!seq.scoring()) return 0;
  return std::max(0, std::min(end, seq.score_end) - std::max(start, seq.score_next));
}

// The most tokens `seq`'s chunk from `start` may take when `extra_rows` rows are left for
// its scored positions (INT32_MAX: no limit).
int32_t ScoringCap(const SchedSeq& seq, int32_t start, int32_t extra_rows) {
  if (!seq.scoring()) return INT32_MAX;
  const int32_t first = std::max(start, seq.score_next);
  if (static_cast<int64_t>(first) + extra_rows >= seq.score_end) return INT32_MAX;
  return first + extra_rows - start;
}

}  // namespace

Scheduler::Scheduler(kvcache::KvCacheManager* kv, SchedulerLimits limits,
                     std::function<bool()> release_idle)
    : kv_(kv), limits_(limits), release_idle_(std::move(release_idle)) {
  RS_CHECK(limits_.max_batch_tokens > 0 && limits_.max_seqs > 0);
}

void Scheduler::Enqueue(SchedSeq* seq) {
  RS_CHECK(!seq->lease.active() && !seq->tokens.empty());
  InsertSorted(waiting_, seq);
}

void Scheduler::AddRunning(SchedSeq* seq) {
  RS_CHECK(seq->lease.active() && seq->lease.seq_id() == seq->seq_id);
  seq->ever_admitted = true;
  InsertSorted(running_, seq);
}

void Scheduler::Remove(SchedSeq* seq) {
  Erase(running_, seq);
  Erase(waiting_, seq);
  for (SchedSeq* waiting : waiting_) {
    if (waiting->lead == seq) waiting->lead = nullptr;
  }
  ReleaseDraftBlocks(seq);
}

absl::flat_hash_set<uint64_t> Scheduler::BlocksInFlight() const {
  absl::flat_hash_set<uint64_t> keys;
  for (const SchedSeq* seq : running_) {
    if (!Prefilling(*seq)) continue;
    const int32_t computed = kv_->NumComputedTokens(seq->seq_id);
    AddBlocksToCompute(*seq, computed, ComputedSoon(*seq, computed), kv_->block_size_tokens(),
                       keys);
  }
  return keys;
}

bool Scheduler::WaitsForABlockInFlight(
    const SchedSeq& seq, const absl::flat_hash_set<uint64_t>& blocks_in_flight) const {
  if (blocks_in_flight.empty()) return false;
  const int32_t block_size = kv_->block_size_tokens();
  // The first block the sequence would compute, when it is full with a token after it (a
  // block is reused only so). A scoring sequence computes the blocks it scores anyway.
  const int32_t next =
      kv_->Match(seq.tokens, kvcache::RootKeyFor(seq.adapter_key)).num_cached_blocks;
  const int64_t end = static_cast<int64_t>(next + 1) * block_size;
  if (end >= static_cast<int64_t>(seq.tokens.size())) return false;
  if (seq.scoring() && end > seq.score_next) return false;
  return blocks_in_flight.contains(BlockKeys(seq, block_size).Key(next));
}

bool Scheduler::Prefilling(const SchedSeq& seq) const {
  return !seq.lease.active() ||
         static_cast<int64_t>(seq.tokens.size()) - kv_->NumComputedTokens(seq.seq_id) > 1;
}

void Scheduler::ReleaseDraftBlocks(SchedSeq* seq) {
  if (seq->lease.active()) kv_->ReleaseBlocksPastTokens(seq->seq_id);
}

void Scheduler::AppendToken(SchedSeq* seq, int32_t token, bool kv_computed) {
  seq->tokens.push_back(token);
  if (!seq->lease.active()) return;
  kv_->AppendTokens(seq->seq_id, {&token, 1});
  if (kv_computed) kv_->Commit(seq->seq_id, 1);
}

void Scheduler::DropDrafts(SchedSeq* seq, int32_t num_drafts) {
  if (num_drafts == 0) return;
  seq->tokens.resize(seq->tokens.size() - static_cast<size_t>(num_drafts));
  kv_->DropTokens(seq->seq_id, num_drafts);
}

void Scheduler::PlanChunk(SchedSeq* seq, int32_t start, int32_t num_tokens, StepPlan& plan,
                          Room& room) {
  RS_CHECK(!seq->scoring() || start <= seq->score_next);  // no scored position skipped
  const bool sample = start + num_tokens == static_cast<int32_t>(seq->tokens.size());
  const int32_t scored = ScoredRows(*seq, start, start + num_tokens);
  RS_CHECK(scored <= room.extra_rows);
  plan.chunks.push_back({.seq = seq,
                         .start = start,
                         .num_tokens = num_tokens,
                         .sample = sample,
                         .num_scored = scored});
  seq->planned_tokens = num_tokens;
  room.tokens -= num_tokens;
  room.extra_rows -= scored;
}

void Scheduler::PlanDrafts(StepPlan& plan, Room& room) {
  int32_t drafts_left = std::min(limits_.max_drafts, room.extra_rows);
  int32_t& budget = room.tokens;
  for (ScheduledChunk& chunk : plan.chunks) {
    SchedSeq* seq = chunk.seq;
    if (!chunk.sample || chunk.num_tokens != 1 || seq->draft.empty()) continue;
    if (budget <= 0 || drafts_left <= 0) break;
    // Positions the table already covers past the last token, and those the blocks that
    // cache nothing would add: a draft never evicts a cached prefix.
    const int64_t positions =
        (static_cast<int64_t>(kv_->BlockTable(seq->seq_id).size()) + kv_->NumUnkeyedFreeBlocks()) *
            kv_->block_size_tokens() -
        chunk.start - 1;
    const auto d = static_cast<int32_t>(std::min<int64_t>(
        {static_cast<int64_t>(seq->draft.size()), budget, drafts_left, positions}));
    if (d <= 0) continue;
    const std::span<const int32_t> drafts = std::span(seq->draft).first(static_cast<size_t>(d));
    seq->tokens.insert(seq->tokens.end(), drafts.begin(), drafts.end());
    kv_->AppendTokens(seq->seq_id, drafts);
    if (!kv_->Reserve(seq->seq_id, 1 + d)) {
      DropDrafts(seq, d);
      continue;
    }
    chunk.num_tokens += d;
    chunk.num_drafts = d;
    seq->planned_tokens += d;
    budget -= d;
    drafts_left -= d;
    room.extra_rows -= d;
  }
}

void Scheduler::Preempt(SchedSeq* victim, StepPlan& plan, Room& room) {
  if (victim->planned_tokens > 0) {
    room.tokens += victim->planned_tokens;
    victim->planned_tokens = 0;
    std::erase_if(plan.chunks, [&](const ScheduledChunk& c) {
      if (c.seq != victim) return false;
      room.extra_rows += c.num_scored;
      return true;
    });
  }
  victim->lease.Reset();
  // Drafts are proposed for running sequences only; a stale one must not outlive the seat.
  victim->draft.clear();
  Erase(running_, victim);
  InsertSorted(waiting_, victim);
  ++victim->num_preemptions;
  ++plan.num_preempted;
  ++num_preemptions_;
}

template <typename TryAlloc>
bool Scheduler::MakeRoom(TryAlloc try_alloc, SchedSeq* self, bool admitting, StepPlan& plan,
                         Room& room) {
  while (!try_alloc()) {
    if (release_idle_ && release_idle_()) continue;
    if (running_.empty()) return false;
    SchedSeq* victim = running_.back();
    if (admitting && victim->priority >= self->priority) return false;
    Preempt(victim, plan, room);
    if (victim == self) return false;
  }
  return true;
}

StepPlan Scheduler::Schedule() {
  StepPlan plan;
  Room room{.tokens = limits_.max_batch_tokens, .extra_rows = limits_.max_extra_rows};
  const int32_t& budget = room.tokens;
  for (SchedSeq* seq : running_) seq->planned_tokens = 0;
  for (SchedSeq* seq : waiting_) seq->planned_tokens = 0;

  // Running sequences: decodes first, so prefill chunks never delay a token in flight.
  for (const bool decode_phase : {true, false}) {
    // Preemption only takes from the back, so the prefix [0, i) stays in place.
    for (size_t i = 0; i < running_.size(); ++i) {
      SchedSeq* seq = running_[i];
      if (seq->planned_tokens > 0) continue;
      const int32_t computed = kv_->NumComputedTokens(seq->seq_id);
      const int32_t need = static_cast<int32_t>(seq->tokens.size()) - computed;
      RS_CHECK(need > 0);
      if ((need == 1) != decode_phase) continue;
      if (budget == 0 || static_cast<int32_t>(plan.chunks.size()) >= limits_.max_seqs) break;
      const int32_t n = std::min({need, budget, ScoringCap(*seq, computed, room.extra_rows)});
      if (n == 0) continue;  // its scored positions wait for a step with rows left
      if (!MakeRoom([&] { return kv_->Reserve(seq->seq_id, n); }, seq, /*admitting=*/false, plan,
                    room)) {
        continue;
      }
      PlanChunk(seq, computed, n, plan, room);
    }
  }

  // Waiting sequences, while the budget, max_seqs and the blocks allow. A sequence whose
  // next block to compute is one that a running prefill (or one admitted this step) is
  // computing waits, then finds it in the prefix cache: a burst of requests with one long
  // system prompt computes it once, not once per request, however many steps it takes.
  const int32_t block_size = kv_->block_size_tokens();
  // (Hashing the running prefills' prompts is needed only when something waits.)
  absl::flat_hash_set<uint64_t> blocks_in_flight;
  if (!waiting_.empty()) blocks_in_flight = BlocksInFlight();
  // (A plan holds at most one chunk per running sequence, so the seat count bounds its
  // chunks too.)
  for (size_t i = 0; i < waiting_.size() && budget > 0;) {
    SchedSeq* seq = waiting_[i];
    if (WaitsForABlockInFlight(*seq, blocks_in_flight) ||
        (seq->scoring() && room.extra_rows == 0) ||
        (seq->lead != nullptr && Prefilling(*seq->lead))) {
      ++i;
      continue;
    }
    // Every seat taken: a sequence that outranks the lowest running one takes its seat (the
    // rule MakeRoom applies to blocks); otherwise admission stops.
    if (static_cast<int32_t>(running_.size()) >= limits_.max_seqs) {
      if (running_.back()->priority >= seq->priority) break;
      Preempt(running_.back(), plan, room);  // re-queued behind seq, which stays at i
      continue;
    }
    std::optional<kvcache::Admission> admission;
    const kvcache::BlockKey root_key = kvcache::RootKeyFor(seq->adapter_key);
    auto try_admit = [&] {
      int32_t max_cached = INT32_MAX;
      int32_t max_new = budget;
      if (seq->scoring()) {
        // Positions from score_next on must run to give their rows.
        max_cached = kv_->Match(std::span(seq->tokens).first(seq->score_next + 1), root_key)
                         .num_cached_tokens;
        max_new = std::min(max_new, ScoringCap(*seq, max_cached, room.extra_rows));
      }
      admission = kv_->Admit(seq->seq_id, seq->tokens, max_new, max_cached, root_key);
      return admission.has_value();
    };
    if (!MakeRoom(try_admit, seq, /*admitting=*/true, plan, room)) break;
    Erase(waiting_, seq);  // still at i: preemption only re-queues lower priorities, behind it
    seq->lease = kvcache::SequenceLease(kv_, seq->seq_id);
    seq->lead = nullptr;  // admitted: it waits for nothing again (the lead may end first)
    InsertSorted(running_, seq);
    if (!seq->ever_admitted) {
      seq->ever_admitted = true;
      plan.first_admissions.emplace_back(seq, admission->num_cached_tokens);
    }
    PlanChunk(seq, admission->num_cached_tokens, admission->num_new_tokens, plan, room);
    AddBlocksToCompute(*seq, admission->num_cached_tokens,
                       ComputedSoon(*seq, admission->num_cached_tokens), block_size,
                       blocks_in_flight);
  }

  // Last: drafts take only the budget, rows and blocks the step leaves, so they never delay
  // or preempt anything.
  if (limits_.max_drafts > 0) PlanDrafts(plan, room);

  for (const ScheduledChunk& chunk : plan.chunks) {
    plan.num_tokens += chunk.num_tokens;
    plan.num_drafts += chunk.num_drafts;
    plan.num_scored += chunk.num_scored;
    if (chunk.num_tokens == 1 + chunk.num_drafts && chunk.sample) ++plan.num_decode_seqs;
  }
  plan.copies = kv_->TakePendingCopies();
  return plan;
}

void Scheduler::Commit(const StepPlan& plan) {
  for (const ScheduledChunk& chunk : plan.chunks) {
    DropDrafts(chunk.seq, chunk.num_drafts);
    kv_->Commit(chunk.seq->seq_id, chunk.num_tokens - chunk.num_drafts);
    if (chunk.num_scored > 0) {
      chunk.seq->score_next = std::max(chunk.start, chunk.seq->score_next) + chunk.num_scored;
    }
    chunk.seq->planned_tokens = 0;
  }
}

}  // namespace ringserve::engine
