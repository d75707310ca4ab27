// The LoRA adapters one generator serves: every registered adapter kept in host memory, as
// many as the model has slots also in a slot, written there when a request needs one that
// is not. Engine thread only.
#ifndef RINGSERVE_WORKER_ENGINE_ADAPTER_TABLE_H_
#define RINGSERVE_WORKER_ENGINE_ADAPTER_TABLE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "worker/engine/model_runner.h"
#include "worker/model/prepared_lora.h"

namespace ringserve::engine {

class AdapterTable {
 public:
  // A job's hold on a slot: the slot its chunks name, and the prefix-cache key of the
  // adapter's registration (SchedSeq::adapter, adapter_key).
  struct Binding {
    int32_t slot = -1;
    uint64_t key = 0;
  };

  // Registers the adapters in `runner`'s slots at creation. `capacity`: the most adapters
  // registered at once (0: the number of slots or of those, the larger).
  AdapterTable(ModelRunner* runner, int32_t capacity);

  // Registers `adapter` (ModelRunner::PrepareLoraAdapter's) under `name`, written into a
  // slot at once when one is empty. ALREADY_EXISTS for a name registered, RESOURCE_EXHAUSTED
  // at capacity; nothing changes then. A `found` adapter (GeneratorOptions::find_adapter's)
  // may be forgotten again by MakeRoom; the others stay until Remove.
  absl::Status Add(const std::string& name, std::shared_ptr<const model::PreparedLora> adapter,
                   bool found = false);
  // Room for one more adapter: at capacity, forgets the found adapter used least recently
  // among those no job holds or `awaited` names. RESOURCE_EXHAUSTED when there is none.
  absl::Status MakeRoom(const std::function<bool(const std::string&)>& awaited);
  // Forgets `name` and empties its slot. NOT_FOUND when unregistered, FAILED_PRECONDITION
  // while jobs hold its slot.
  absl::Status Remove(const std::string& name);

  // Binds a job to `name`'s slot. When the adapter is in no slot, it is written into an idle
  // one (no jobs bound; an empty one first, else the least recently bound) if `may_swap`.
  // nullopt: the job must wait (no idle slot, !may_swap, or the adapter's slot is draining
  // for a waiting job). NOT_FOUND for an unregistered name; the runner's write errors.
  absl::StatusOr<std::optional<Binding>> Acquire(const std::string& name, bool may_swap);
  void Release(int32_t slot);  // one Acquire's binding ends

  // Draining, so that a job waiting for an adapter that is in no slot gets one even while
  // every slot's adapter keeps receiving requests: a draining slot binds no new jobs, and
  // once the jobs it holds end, the waiting adapter takes it. A round of admissions starts
  // with BeginRound (no slot draining) and calls DrainFor for each adapter its waiting jobs
  // still need, in the order they arrived; each gets one slot, the one it had in the
  // previous round if any, else the one with the fewest jobs bound, then the least
  // recently bound.
  void BeginRound();
  void DrainFor(const std::string& name);

  bool Contains(const std::string& name) const { return Find(name) != nullptr; }
  bool Resident(const std::string& name) const;
  // Registered names, in registration order.
  std::vector<std::string> Names() const;
  // Each slot's adapter name ("" where empty).
  std::vector<std::string> SlotNames() const;
  int32_t num_slots() const { return static_cast<int32_t>(slots_.size()); }
  // Adapters written into a slot for a job that needed one in no slot.
  int64_t num_swaps() const { return num_swaps_; }
  int64_t num_evictions() const { return num_evictions_; }  // forgotten by MakeRoom
  double swap_seconds() const { return swap_seconds_; }     // spent writing them

 private:
  struct Entry {
    std::string name;
    std::shared_ptr<const model::PreparedLora> adapter;
    uint64_t key = 0;   // never reused: K/V cached under it is this registration's
    int32_t slot = -1;  // -1: in host memory only
    bool found = false;
    uint64_t last_used = 0;  // the clock at its last binding (or registration)
  };
  struct Slot {
    Entry* entry = nullptr;  // null: empty
    int32_t jobs = 0;
    uint64_t last_bound = 0;
    std::string draining_for;  // this round's waiting adapter it drains for
    std::string drained_for;   // the previous round's
  };

  Entry* Find(const std::string& name);
  const Entry* Find(const std::string& name) const;
  // Writes `entry` into `slot` (evicting what it held).
  absl::Status Write(int32_t slot, Entry& entry);

  ModelRunner* const runner_;
  int32_t capacity_ = 0;
  std::vector<std::unique_ptr<Entry>> entries_;  // registration order; stable addresses
  std::vector<Slot> slots_;
  uint64_t next_key_ = 1;
  uint64_t clock_ = 0;
  int64_t num_swaps_ = 0;
  int64_t num_evictions_ = 0;
  double swap_seconds_ = 0;
};

}  // namespace ringserve::engine

#endif  // RINGSERVE_WORKER_ENGINE_ADAPTER_TABLE_H_
