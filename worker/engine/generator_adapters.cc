// The generator's LoRA slots: names bound to the model's slots, loads and unloads run on the
// engine thread between steps, and each job bound to its slot (and that load's prefix-cache
// key) from the moment it starts until it ends.
#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "worker/engine/generator.h"
#include "worker/engine/generator_job.h"

namespace ringserve::engine {

std::vector<std::string> Generator::AdapterNames() const {
  std::lock_guard lock(stats_mu_);
  return published_adapter_names_;
}

absl::Status Generator::LoadAdapter(const std::string& name,
                                    const std::shared_ptr<const model::LoraAdapter>& adapter) {
  if (name.empty() || adapter == nullptr) {
    return absl::InvalidArgumentError("LoadAdapter: needs a name and an adapter");
  }
  absl::Status result;
  RS_RETURN_IF_ERROR(RunOnEngine([&] { result = LoadOnEngine(name, adapter); }));
  return result;
}

absl::Status Generator::UnloadAdapter(const std::string& name) {
  absl::Status result;
  RS_RETURN_IF_ERROR(RunOnEngine([&] { result = UnloadOnEngine(name); }));
  return result;
}

absl::Status Generator::LoadOnEngine(const std::string& name,
                                     const std::shared_ptr<const model::LoraAdapter>& adapter) {
  for (const AdapterSlot& slot : adapter_slots_) {
    if (slot.name == name) {
      return absl::AlreadyExistsError(absl::StrCat("adapter '", name, "' is loaded already"));
    }
  }
  const auto free = std::find_if(adapter_slots_.begin(), adapter_slots_.end(),
                                 [](const AdapterSlot& s) { return s.name.empty(); });
  if (free == adapter_slots_.end()) {
    return absl::ResourceExhaustedError(
        absl::StrCat("all ", adapter_slots_.size(),
                     " LoRA slots hold adapters (--max-loras); unload one first"));
  }
  const auto slot = static_cast<int32_t>(free - adapter_slots_.begin());
  RS_RETURN_IF_ERROR(runner_->SetLoraAdapter(slot, adapter));
  free->name = name;
  free->key = next_adapter_key_++;
  PublishAdapterNames();
  return absl::OkStatus();
}

absl::Status Generator::UnloadOnEngine(const std::string& name) {
  const auto it =
      std::find_if(adapter_slots_.begin(), adapter_slots_.end(),
                   [&](const AdapterSlot& s) { return !name.empty() && s.name == name; });
  if (it == adapter_slots_.end()) {
    return absl::NotFoundError(absl::StrCat("adapter '", name, "' is not loaded"));
  }
  if (it->jobs > 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "adapter '", name, "' is in use by ", it->jobs, " requests; unload it once they end"));
  }
  RS_RETURN_IF_ERROR(
      runner_->SetLoraAdapter(static_cast<int32_t>(it - adapter_slots_.begin()), nullptr));
  *it = AdapterSlot{};
  PublishAdapterNames();
  return absl::OkStatus();
}

absl::Status Generator::BindAdapter(Job& job) {
  const std::string& name = job.request.adapter;
  if (name.empty()) return absl::OkStatus();
  const auto it = std::find_if(adapter_slots_.begin(), adapter_slots_.end(),
                               [&](const AdapterSlot& s) { return s.name == name; });
  if (it == adapter_slots_.end()) {
    std::vector<std::string> loaded;
    for (const AdapterSlot& s : adapter_slots_) {
      if (!s.name.empty()) loaded.push_back(s.name);
    }
    return absl::NotFoundError(absl::StrCat(
        "adapter: '", name, "' is not loaded on this worker (",
        loaded.empty() ? "it serves none" : absl::StrCat("it serves ", absl::StrJoin(loaded, ", ")),
        ")"));
  }
  ++it->jobs;
  job.seq.adapter = static_cast<int32_t>(it - adapter_slots_.begin());
  job.seq.adapter_key = it->key;
  return absl::OkStatus();
}

void Generator::ReleaseAdapter(Job& job) {
  if (job.seq.adapter < 0) return;
  --adapter_slots_[static_cast<size_t>(job.seq.adapter)].jobs;
  job.seq.adapter = -1;
}

void Generator::PublishAdapterNames() {
  std::vector<std::string> names;
  for (const AdapterSlot& slot : adapter_slots_) names.push_back(slot.name);
  std::lock_guard lock(stats_mu_);
  published_adapter_names_ = std::move(names);
}

}  // namespace ringserve::engine
