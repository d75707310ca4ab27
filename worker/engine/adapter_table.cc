#include "worker/engine/adapter_table.h"

#include <algorithm>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"

namespace ringserve::engine {

AdapterTable::AdapterTable(ModelRunner* runner, int32_t capacity) : runner_(runner) {
  const std::vector<std::shared_ptr<const model::PreparedLora>> resident = runner_->lora_adapters();
  slots_.resize(resident.size());
  for (size_t slot = 0; slot < resident.size(); ++slot) {
    if (resident[slot] == nullptr) continue;
    auto entry = std::make_unique<Entry>(
        Entry{resident[slot]->name, resident[slot], next_key_++, static_cast<int32_t>(slot)});
    slots_[slot].entry = entry.get();
    entries_.push_back(std::move(entry));
  }
  capacity_ = std::max({capacity, num_slots(), static_cast<int32_t>(entries_.size())});
}

AdapterTable::Entry* AdapterTable::Find(const std::string& name) {
  const auto it = std::find_if(entries_.begin(), entries_.end(),
                               [&](const std::unique_ptr<Entry>& e) { return e->name == name; });
  return it != entries_.end() ? it->get() : nullptr;
}

const AdapterTable::Entry* AdapterTable::Find(const std::string& name) const {
  return const_cast<AdapterTable*>(this)->Find(name);
}

bool AdapterTable::Resident(const std::string& name) const {
  const Entry* entry = Find(name);
  return entry != nullptr && entry->slot >= 0;
}

std::vector<std::string> AdapterTable::Names() const {
  std::vector<std::string> names;
  for (const auto& entry : entries_) names.push_back(entry->name);
  return names;
}

std::vector<std::string> AdapterTable::SlotNames() const {
  std::vector<std::string> names;
  for (const Slot& slot : slots_) {
    names.push_back(slot.entry != nullptr ? slot.entry->name : std::string());
  }
  return names;
}

absl::Status AdapterTable::Add(const std::string& name,
                               std::shared_ptr<const model::PreparedLora> adapter, bool found) {
  if (name.empty() || adapter == nullptr) {
    return absl::InvalidArgumentError("LoRA adapter: needs a name and weights");
  }
  if (slots_.empty()) {
    return absl::FailedPreconditionError("this model keeps no LoRA slots (--max-loras)");
  }
  if (Contains(name)) {
    return absl::AlreadyExistsError(absl::StrCat("adapter '", name, "' is loaded already"));
  }
  if (static_cast<int32_t>(entries_.size()) >= capacity_) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "this worker holds ", capacity_, " LoRA adapters already (--max-cpu-loras); unload one"));
  }
  auto entry = std::make_unique<Entry>(
      Entry{name, std::move(adapter), next_key_++, -1, found, /*last_used=*/++clock_});
  const auto empty =
      std::find_if(slots_.begin(), slots_.end(), [](const Slot& s) { return s.entry == nullptr; });
  if (empty != slots_.end()) {
    RS_RETURN_IF_ERROR(Write(static_cast<int32_t>(empty - slots_.begin()), *entry));
  }
  entries_.push_back(std::move(entry));
  return absl::OkStatus();
}

absl::Status AdapterTable::MakeRoom(const std::function<bool(const std::string&)>& awaited) {
  if (static_cast<int32_t>(entries_.size()) < capacity_) return absl::OkStatus();
  const Entry* oldest = nullptr;
  for (const auto& entry : entries_) {
    const bool held = entry->slot >= 0 && slots_[static_cast<size_t>(entry->slot)].jobs > 0;
    if (!entry->found || held || awaited(entry->name)) continue;
    if (oldest == nullptr || entry->last_used < oldest->last_used) oldest = entry.get();
  }
  if (oldest == nullptr) {
    return absl::ResourceExhaustedError(
        absl::StrCat("this worker holds ", capacity_,
                     " LoRA adapters (--max-cpu-loras), all in use by requests"));
  }
  RS_RETURN_IF_ERROR(Remove(oldest->name));
  ++num_evictions_;
  return absl::OkStatus();
}

absl::Status AdapterTable::Remove(const std::string& name) {
  const auto it = std::find_if(entries_.begin(), entries_.end(),
                               [&](const std::unique_ptr<Entry>& e) { return e->name == name; });
  if (name.empty() || it == entries_.end()) {
    return absl::NotFoundError(absl::StrCat("adapter '", name, "' is not loaded"));
  }
  Entry& entry = **it;
  if (entry.slot >= 0) {
    Slot& slot = slots_[static_cast<size_t>(entry.slot)];
    if (slot.jobs > 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "adapter '", name, "' is in use by ", slot.jobs, " requests; unload it once they end"));
    }
    RS_RETURN_IF_ERROR(runner_->SetLoraAdapter(entry.slot, nullptr));
    slot = Slot{};
  }
  entries_.erase(it);
  return absl::OkStatus();
}

absl::Status AdapterTable::Write(int32_t slot_index, Entry& entry) {
  RS_RETURN_IF_ERROR(runner_->SetLoraAdapter(slot_index, entry.adapter));
  Slot& slot = slots_[static_cast<size_t>(slot_index)];
  if (slot.entry != nullptr) slot.entry->slot = -1;
  slot.entry = &entry;
  slot.draining_for.clear();
  entry.slot = slot_index;
  return absl::OkStatus();
}

absl::StatusOr<std::optional<AdapterTable::Binding>> AdapterTable::Acquire(const std::string& name,
                                                                           bool may_swap) {
  Entry* entry = Find(name);
  if (entry == nullptr) {
    const std::vector<std::string> names = Names();
    return absl::NotFoundError(absl::StrCat(
        "adapter: '", name, "' is not loaded on this worker (",
        names.empty() ? "it serves none" : absl::StrCat("it serves ", absl::StrJoin(names, ", ")),
        ")"));
  }
  if (entry->slot < 0) {
    if (!may_swap) return std::nullopt;
    // An idle slot: an empty one first, then the one bound least recently.
    int32_t best = -1;
    for (int32_t s = 0; s < num_slots(); ++s) {
      const Slot& slot = slots_[static_cast<size_t>(s)];
      if (slot.jobs > 0) continue;
      const auto rank = [](const Slot& x) { return std::tuple(x.entry != nullptr, x.last_bound); };
      if (best < 0 || rank(slot) < rank(slots_[static_cast<size_t>(best)])) best = s;
    }
    if (best < 0) return std::nullopt;
    const absl::Time start = absl::Now();
    RS_RETURN_IF_ERROR(Write(best, *entry));
    swap_seconds_ += absl::ToDoubleSeconds(absl::Now() - start);
    ++num_swaps_;
  } else if (!slots_[static_cast<size_t>(entry->slot)].draining_for.empty()) {
    return std::nullopt;
  }
  Slot& slot = slots_[static_cast<size_t>(entry->slot)];
  ++slot.jobs;
  slot.last_bound = ++clock_;
  entry->last_used = clock_;
  return Binding{.slot = entry->slot, .key = entry->key};
}

void AdapterTable::Release(int32_t slot) { --slots_[static_cast<size_t>(slot)].jobs; }

void AdapterTable::BeginRound() {
  for (Slot& slot : slots_) slot.drained_for = std::exchange(slot.draining_for, std::string());
}

void AdapterTable::DrainFor(const std::string& name) {
  int32_t best = -1;
  // The slot it drained in the previous round, then any slot another drained then (its
  // jobs are fewer by now), then the fewest jobs, then the least recently bound.
  const auto rank = [&](const Slot& x) {
    return std::tuple(x.drained_for != name, x.drained_for.empty(), x.jobs, x.last_bound);
  };
  for (int32_t s = 0; s < num_slots(); ++s) {
    const Slot& slot = slots_[static_cast<size_t>(s)];
    if (slot.draining_for == name) return;
    if (!slot.draining_for.empty() || slot.entry == nullptr) continue;
    if (best < 0 || rank(slot) < rank(slots_[static_cast<size_t>(best)])) best = s;
  }
  if (best >= 0) slots_[static_cast<size_t>(best)].draining_for = name;
}

}  // namespace ringserve::engine
