// The step planner: which sequences run in the next forward pass and how many tokens
// each computes, under the token budget (max_batch_tokens) and max_seqs.
//
// Each step: every running sequence that is decoding (one token to compute) first, then
// running sequences still prefilling (a chunk each, as the budget allows), then waiting
// sequences, admitted through the prefix cache, in priority-then-arrival order. When
// blocks run out, idle KV held outside the scheduler (pinned sessions) is given back first,
// then the lowest-priority, newest running sequence is preempted: its blocks are
// released, its tokens kept, and it waits to be recomputed. An admission only preempts
// sequences of strictly lower priority, so equal-priority work is served in arrival order.
#ifndef RINGSERVE_WORKER_ENGINE_SCHEDULER_H_
#define RINGSERVE_WORKER_ENGINE_SCHEDULER_H_

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "kvcache/kv_cache_manager.h"

namespace ringserve::engine {

// One sequence as the scheduler sees it. Owned by the generator's job record; the
// scheduler holds pointers while it is registered (Enqueue/AddRunning until Remove).
struct SchedSeq {
  uint64_t job_id = 0;  // the owner's id, for the caller's lookups
  kvcache::SeqId seq_id = 0;
  int32_t priority = 0;
  // The LoRA adapter the sequence runs with: its slot in the model (model::SequenceChunk::
  // adapter, -1 for none), and the key of that load of it, which roots its prefix-cache chain
  // (kvcache::RootKeyFor: its K/V are found only by sequences with the same one).
  int32_t adapter = -1;
  uint64_t adapter_key = 0;
  uint64_t arrival = 0;          // submission order; kept across preemptions
  std::vector<int32_t> tokens;   // every known token: context, then generated
  kvcache::SequenceLease lease;  // active while the sequence holds KV blocks
  int32_t num_preemptions = 0;
  bool ever_admitted = false;
  // Draft tokens to verify in the next step (speculative decoding), set by the owner while
  // the sequence decodes: the step computes its last token and as many drafts as the budget
  // and free blocks allow, and samples a token after each.
  std::vector<int32_t> draft;
  // Prompt scoring (GenerateRequest.prompt_logprobs): positions [score_next, score_end) still
  // owe a logits row each, scoring the token after them. Set by the owner before the sequence
  // is registered; each step computes them in chunks that fit the step's extra rows, and
  // Commit advances score_next. The cache never supplies them (Admit's max_cached_tokens).
  int32_t score_next = 0;
  int32_t score_end = 0;
  bool scoring() const { return score_next < score_end; }
  // A registered sequence whose prefill this one waits for before admission (JobRequest::
  // follows); cleared once this one is admitted or that one is removed.
  const SchedSeq* lead = nullptr;
  int32_t planned_tokens = 0;  // in the plan being built; scheduler-internal
};

struct ScheduledChunk {
  SchedSeq* seq = nullptr;
  int32_t start = 0;  // first position computed
  int32_t num_tokens = 0;
  bool sample = false;  // the chunk reaches the last known token: sample the next one
  // The chunk's last num_drafts tokens are seq->draft's first ones, appended to seq->tokens
  // for the pass; Commit takes them off again.
  int32_t num_drafts = 0;
  // Positions before the sampled one (or the chunk's last ones without sample) whose logits
  // score the prompt token after them (model::SequenceChunk::num_scored).
  int32_t num_scored = 0;
};

struct StepPlan {
  std::vector<ScheduledChunk> chunks;
  std::vector<kvcache::BlockCopy> copies;  // run before the forward pass
  // Sequences admitted for the first time this step, with the tokens found cached.
  std::vector<std::pair<SchedSeq*, int32_t>> first_admissions;
  int32_t num_tokens = 0;
  int32_t num_decode_seqs = 0;  // sequences computing their last token (and drafts)
  int32_t num_drafts = 0;
  int32_t num_scored = 0;
  int32_t num_preempted = 0;
  bool empty() const { return chunks.empty(); }
};

struct SchedulerLimits {
  int32_t max_batch_tokens = 2048;
  int32_t max_seqs = 256;  // most sequences per step, and most holding blocks at once
  int32_t max_drafts = 0;  // most draft tokens per step (0: no speculation)
  // Rows a step may sample beyond one per sequence (the runner's sampled rows beyond
  // max_seqs): scored prompt positions take them first, drafts what is left.
  int32_t max_extra_rows = 0;
};

// Thread: the engine thread only.
class Scheduler {
 public:
  // release_idle gives back one unit of KV held outside the scheduler (an idle session's
  // pinned sequence) and returns true, or returns false when there is none. May be empty.
  Scheduler(kvcache::KvCacheManager* kv, SchedulerLimits limits,
            std::function<bool()> release_idle);

  // A sequence that holds no blocks (seq->lease inactive) and has tokens to compute.
  void Enqueue(SchedSeq* seq);
  // A sequence already live in the cache (a session's pinned sequence taking a new turn).
  // Only while CanSkipQueue(): otherwise the turn would take a seat past max_seqs or go
  // ahead of queued work, and must be enqueued instead.
  void AddRunning(SchedSeq* seq);
  bool CanSkipQueue() const {
    return waiting_.empty() && static_cast<int32_t>(running_.size()) < limits_.max_seqs;
  }
  // Unregisters seq (finished or cancelled) and frees its followers (SchedSeq::lead); its
  // lease is left to the caller, without the blocks reserved for rejected drafts.
  void Remove(SchedSeq* seq);
  // Gives back a live sequence's blocks that hold none of its tokens: after a step that
  // verified drafts and accepted fewer than it reserved for.
  void ReleaseDraftBlocks(SchedSeq* seq);

  StepPlan Schedule();
  // After the forward pass: the plan's K/V is computed, except its drafts', which leave the
  // sequences' tokens until the owner appends the accepted ones (AppendToken, kv_computed).
  void Commit(const StepPlan& plan);
  // A sampled token joins the sequence. Its K/V is computed by a later step, or, with
  // kv_computed, was by this one: the token equals the draft the pass computed at its
  // position (the sequence's draft tokens up to it all accepted).
  void AppendToken(SchedSeq* seq, int32_t token, bool kv_computed = false);

  size_t num_running() const { return running_.size(); }
  // The sequences holding KV blocks for work, served first to last.
  std::span<SchedSeq* const> running() const { return running_; }
  size_t num_waiting() const { return waiting_.size(); }
  int64_t num_preemptions() const { return num_preemptions_; }

 private:
  // Calls try_alloc until it succeeds, freeing blocks between tries; false when nothing
  // more may be freed for `self`. `admitting`: self is waiting, so it may only preempt
  // lower priorities.
  // What the plan being built has left: tokens, and sampled rows beyond one a sequence.
  struct Room {
    int32_t tokens = 0;
    int32_t extra_rows = 0;
  };
  template <typename TryAlloc>
  bool MakeRoom(TryAlloc try_alloc, SchedSeq* self, bool admitting, StepPlan& plan, Room& room);
  void Preempt(SchedSeq* victim, StepPlan& plan, Room& room);
  // Whether `seq` still has input to compute (waiting, or more than its last token left).
  bool Prefilling(const SchedSeq& seq) const;
  // Keys of the full blocks running prefills have yet to compute.
  absl::flat_hash_set<uint64_t> BlocksInFlight() const;
  // Whether waiting `seq` would compute a block that one of `blocks_in_flight` holds: it
  // waits, and finds the block cached a step or a few later.
  bool WaitsForABlockInFlight(const SchedSeq& seq,
                              const absl::flat_hash_set<uint64_t>& blocks_in_flight) const;
  static void PlanChunk(SchedSeq* seq, int32_t start, int32_t num_tokens, StepPlan& plan,
                        Room& room);
  // Adds to each planned chunk of a sequence's last token as many of its drafts as the
  // budget, the step's draft limit, the extra rows and the free blocks left allow, in plan
  // order.
  void PlanDrafts(StepPlan& plan, Room& room);
  // Takes the last num_drafts tokens (drafts appended for a plan) off a live sequence again.
  void DropDrafts(SchedSeq* seq, int32_t num_drafts);

  kvcache::KvCacheManager* kv_;
  const SchedulerLimits limits_;
  std::function<bool()> release_idle_;
  // Both sorted by (priority desc, arrival asc): the front is served first, the back of
  // running_ is preempted first.
  std::vector<SchedSeq*> running_;
  std::vector<SchedSeq*> waiting_;
  int64_t num_preemptions_ = 0;
};

}  // namespace ringserve::engine

#endif  // RINGSERVE_WORKER_ENGINE_SCHEDULER_H_
