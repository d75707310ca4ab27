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

// Identifies a sequence's first KV block when it has one full block and a token after it
// (only then can that block ever be found in the prefix cache for it).
std::optional<uint64_t> FirstBlockKey(const SchedSeq& seq, int32_t block_size) {
  if (static_cast<int32_t>(seq.tokens.size()) <= block_size) return std::nullopt;
  return Hash64(seq.tokens.data(), sizeof(int32_t) * static_cast<size_t>(block_size));
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
  // first block is being computed this step for another one it was admitted with waits one
  // step, then finds that block (and the rest of a shared prompt) in the prefix cache: a
  // burst of requests with one system prompt computes it once, not once per request.
  const int32_t block_size = kv_->block_size_tokens();
  absl::flat_hash_set<uint64_t> first_blocks_in_flight;
  // (A plan holds at most one chunk per running sequence, so the seat count bounds its
  // chunks too.)
  for (size_t i = 0; i < waiting_.size() && budget > 0;) {
    SchedSeq* seq = waiting_[i];
    // A scoring sequence that must compute its first block anyway does not wait for
    // another's; it waits for a step with rows left for its scored positions.
    const std::optional<uint64_t> first_block = FirstBlockKey(*seq, block_size);
    const bool uses_cached_first_block = !seq->scoring() || seq->score_next >= block_size;
    if ((uses_cached_first_block && first_block.has_value() &&
         first_blocks_in_flight.contains(*first_block)) ||
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
    auto try_admit = [&] {
      int32_t max_cached = INT32_MAX;
      int32_t max_new = budget;
      if (seq->scoring()) {
        // Positions from score_next on must run to give their rows.
        max_cached =
            kv_->Match(std::span(seq->tokens).first(seq->score_next + 1)).num_cached_tokens;
        max_new = std::min(max_new, ScoringCap(*seq, max_cached, room.extra_rows));
      }
      admission = kv_->Admit(seq->seq_id, seq->tokens, max_new, max_cached);
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
    if (first_block.has_value() && admission->num_cached_tokens == 0 &&
        admission->num_new_tokens >= block_size) {
      first_blocks_in_flight.insert(*first_block);
    }
    PlanChunk(seq, admission->num_cached_tokens, admission->num_new_tokens, plan, room);
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
