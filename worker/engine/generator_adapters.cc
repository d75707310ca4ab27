// The generator's LoRA adapters: loads and unloads run on the engine thread between steps;
// each job is bound to its adapter's slot (and that registration's prefix-cache key) from
// the moment it starts until it ends, and a job whose adapter is in no slot waits, in
// arrival order, until one is idle.
#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "worker/engine/generator.h"
#include "worker/engine/generator_job.h"

namespace ringserve::engine {

std::vector<std::string> Generator::AdapterNames() const {
  std::lock_guard lock(stats_mu_);
  return published_adapter_names_;
}

std::vector<std::string> Generator::AdapterSlotNames() const {
  std::lock_guard lock(stats_mu_);
  return published_adapter_slot_names_;
}

absl::Status Generator::LoadAdapter(const std::string& name,
                                    const std::shared_ptr<const model::LoraAdapter>& adapter) {
  if (name.empty() || adapter == nullptr) {
    return absl::InvalidArgumentError("LoadAdapter: needs a name and an adapter");
  }
  // Encoded on the caller's thread: the engine thread only copies it into a slot.
  RS_ASSIGN_OR_RETURN(std::shared_ptr<const model::PreparedLora> prepared,
                      runner_->PrepareLoraAdapter(*adapter));
  absl::Status result;
  RS_RETURN_IF_ERROR(RunOnEngine([&] {
    result = adapters_->Add(name, std::move(prepared));
    PublishAdapterNames();
  }));
  return result;
}

absl::Status Generator::UnloadAdapter(const std::string& name) {
  absl::Status result;
  RS_RETURN_IF_ERROR(RunOnEngine([&] { result = UnloadOnEngine(name); }));
  return result;
}

absl::Status Generator::UnloadOnEngine(const std::string& name) {
  const auto waiting =
      std::count_if(adapter_waiters_.begin(), adapter_waiters_.end(), [&](uint64_t id) {
        const auto it = jobs_.find(id);
        return it != jobs_.end() && it->second->request.adapter == name;
      });
  if (waiting > 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "adapter '", name, "' is awaited by ", waiting, " requests; unload it once they end"));
  }
  RS_RETURN_IF_ERROR(adapters_->Remove(name));
  PublishAdapterNames();
  return absl::OkStatus();
}

absl::StatusOr<bool> Generator::BindAdapter(Job& job, bool may_swap) {
  const std::string& name = job.request.adapter;
  if (name.empty()) return true;
  if (options_.find_adapter && !adapters_->Contains(name)) {
    if (adapters_finding_.insert(name).second) {
      {
        std::lock_guard lock(finder_.mu);
        finder_.names.push_back(name);
      }
      finder_.wake.notify_one();
    }
    return false;  // waits until it is found (OnAdapterFound)
  }
  const int64_t swaps = adapters_->num_swaps();
  RS_ASSIGN_OR_RETURN(const std::optional<AdapterTable::Binding> binding,
                      adapters_->Acquire(name, may_swap));
  if (adapters_->num_swaps() != swaps) PublishAdapterNames();
  if (!binding.has_value()) return false;
  job.seq.adapter = binding->slot;
  job.seq.adapter_key = binding->key;
  return true;
}

void Generator::ReleaseAdapter(Job& job) {
  if (job.seq.adapter < 0) return;
  adapters_->Release(job.seq.adapter);
  job.seq.adapter = -1;
}

void Generator::AdmitAdapterWaiters() {
  adapters_->BeginRound();
  std::deque<uint64_t> queue;
  queue.swap(adapter_waiters_);
  // Starts waiting job `id` if it binds now (or fails it); false: it still waits.
  auto admit = [&](uint64_t id) {
    const auto it = jobs_.find(id);
    if (it == jobs_.end()) return true;
    Job& job = *it->second;
    const absl::StatusOr<bool> bound = BindAdapter(job, /*may_swap=*/true);
    if (!bound.ok()) {
      FinishJob(job, bound.status());
    } else if (!*bound) {
      return false;
    } else if (const absl::Status prepared = PrepareJob(job); !prepared.ok()) {
      FinishJob(job, prepared);
    }
    return true;
  };
  for (size_t i = 0; i < queue.size(); ++i) {
    if (queue[i] == 0) continue;  // admitted with its adapter's first waiter
    const auto it = jobs_.find(queue[i]);
    if (it == jobs_.end()) continue;  // cancelled while it waited
    const std::string adapter = it->second->request.adapter;
    const int64_t swaps = adapters_->num_swaps();
    if (!admit(queue[i])) {
      // Drained in arrival order, so a job that came later cannot take the slot first.
      if (adapters_->Contains(adapter) && !adapters_->Resident(adapter)) {
        adapters_->DrainFor(adapter);
      }
      adapter_waiters_.push_back(queue[i]);
      continue;
    }
    if (adapters_->num_swaps() == swaps) continue;
    // The adapter came into a slot: every job waiting for it starts with it, batched
    // together, before a later waiter drains the slot again.
    for (size_t j = i + 1; j < queue.size(); ++j) {
      const auto other = jobs_.find(queue[j]);
      if (other != jobs_.end() && other->second->request.adapter == adapter && admit(queue[j])) {
        queue[j] = 0;  // job ids start at 1
      }
    }
  }
}

bool Generator::AnyWaiter(const std::function<bool(const Job&)>& matches) const {
  return std::any_of(adapter_waiters_.begin(), adapter_waiters_.end(), [&](uint64_t id) {
    const auto it = jobs_.find(id);
    return it != jobs_.end() && matches(*it->second);
  });
}

void Generator::FindAdapters() {
  while (true) {
    std::string name;
    {
      std::unique_lock lock(finder_.mu);
      finder_.wake.wait(lock, [&] { return finder_.stop || !finder_.names.empty(); });
      if (finder_.stop) return;
      name = std::move(finder_.names.front());
      finder_.names.pop_front();
    }
    const absl::Time start = absl::Now();
    absl::StatusOr<std::shared_ptr<const model::PreparedLora>> prepared;
    absl::StatusOr<std::shared_ptr<const model::LoraAdapter>> found = options_.find_adapter(name);
    if (found.ok() && *found == nullptr) found = absl::InternalError("find_adapter: no adapter");
    prepared = found.ok() ? runner_->PrepareLoraAdapter(**found) : found.status();
    if (prepared.ok()) {
      Log(LogLevel::kInfo, "generator", "LoRA adapter found",
          {{"adapter", name},
           {"ms",
            absl::StrCat(static_cast<int64_t>(absl::ToDoubleMilliseconds(absl::Now() - start)))}});
    }
    {
      std::lock_guard lock(inbox_->mu);
      if (inbox_->stop) return;
      inbox_->tasks.push_back([this, name = std::move(name), prepared = std::move(prepared)] {
        OnAdapterFound(name, prepared);
      });
    }
    inbox_->wake.notify_all();
  }
}

void Generator::OnAdapterFound(
    const std::string& name,
    const absl::StatusOr<std::shared_ptr<const model::PreparedLora>>& found) {
  adapters_finding_.erase(name);
  absl::Status status = found.status();
  if (status.ok() && !adapters_->Contains(name)) {  // else LoadAdapter registered it meanwhile
    status = adapters_->MakeRoom([this](const std::string& n) {
      return AnyWaiter([&](const Job& job) { return job.request.adapter == n; });
    });
    if (status.ok()) status = adapters_->Add(name, *found, /*found=*/true);
    if (status.ok()) ++num_adapters_found_;
    PublishAdapterNames();
  }
  if (status.ok()) return;  // its jobs start in the next round of AdmitAdapterWaiters
  std::vector<uint64_t> failed;
  for (const uint64_t id : adapter_waiters_) {
    const auto it = jobs_.find(id);
    if (it != jobs_.end() && it->second->request.adapter == name) failed.push_back(id);
  }
  for (const uint64_t id : failed) FinishJob(*jobs_.at(id), status);
}

void Generator::PublishAdapterNames() {
  std::vector<std::string> names = adapters_->Names();
  std::vector<std::string> slot_names = adapters_->SlotNames();
  std::lock_guard lock(stats_mu_);
  published_adapter_names_ = std::move(names);
  published_adapter_slot_names_ = std::move(slot_names);
}

}  // namespace ringserve::engine
