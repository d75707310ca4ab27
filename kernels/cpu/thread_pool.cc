#include "kernels/cpu/thread_pool.h"

#include <algorithm>
#include <chrono>

#include "common/check.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define RS_CPU_RELAX() _mm_pause()
#else
#define RS_CPU_RELAX() \
  do {                 \
  } while (0)
#endif

namespace ringserve::kernels::cpu {
namespace {

// Long enough to catch the next op of a decode step without a futex round trip, short
// enough not to steal much from other processes once the engine goes idle. Measured by
// the clock: a pause instruction takes anywhere from 1 to 30+ ns across x86 parts.
constexpr auto kWorkerSpin = std::chrono::microseconds(50);
// How long the caller polls for a chunk still running elsewhere before yielding its core.
constexpr auto kCallerSpin = std::chrono::microseconds(200);

// Polls `done` with pauses until it returns true or `budget` elapses; true if it did.
template <typename Done>
bool SpinUntil(Done done, std::chrono::microseconds budget) {
  const auto deadline = std::chrono::steady_clock::now() + budget;
  while (true) {
    for (int i = 0; i < 16; ++i) {
      if (done()) return true;
      RS_CPU_RELAX();
    }
    if (std::chrono::steady_clock::now() >= deadline) return false;
  }
}

// Chunk indices and counts live in 16 bits of next_chunk_.
constexpr int kMaxThreads = 1024;

}  // namespace

ThreadPool::ThreadPool(int num_threads)
    : num_threads_(std::min(
          kMaxThreads, num_threads > 0
                           ? num_threads
                           : std::max(1, static_cast<int>(std::thread::hardware_concurrency())))) {
  workers_.reserve(num_threads_ - 1);
  for (int i = 1; i < num_threads_; ++i) workers_.emplace_back([this] { WorkerLoop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (std::thread& t : workers_) t.join();
}

void ThreadPool::RunChunks(uint32_t generation) {
  uint64_t claim = next_chunk_.load(std::memory_order_acquire);
  while (true) {
    if (static_cast<uint32_t>(claim >> 32) != generation) return;  // a later job: not ours
    const auto chunks = static_cast<int>((claim >> 16) & 0xFFFFU);
    const auto index = static_cast<int>(claim & 0xFFFFU);
    if (index >= chunks) return;
    if (!next_chunk_.compare_exchange_weak(claim, claim + 1, std::memory_order_acq_rel,
                                           std::memory_order_acquire)) {
      continue;
    }
    // The chunk is ours, so the caller cannot start another job (and rewrite job_*) before
    // we count it done.
    const int64_t begin = job_n_ * index / chunks;
    const int64_t end = job_n_ * (index + 1) / chunks;
    if (begin < end) (*job_fn_)(begin, end);
    chunks_done_.fetch_add(1, std::memory_order_acq_rel);
    claim = next_chunk_.load(std::memory_order_acquire);
  }
}

void ThreadPool::ParallelFor(int64_t n, absl::FunctionRef<void(int64_t, int64_t)> fn,
                             int64_t min_chunk) {
  if (n <= 0) return;
  const int64_t per_chunk = std::max<int64_t>(1, min_chunk);
  const auto chunks =
      static_cast<int>(std::min<int64_t>(num_threads_, (n + per_chunk - 1) / per_chunk));
  if (chunks <= 1) {
    fn(0, n);
    return;
  }
  const uint32_t generation = generation_.load(std::memory_order_relaxed) + 1;
  job_n_ = n;
  job_fn_ = &fn;
  chunks_done_.store(0, std::memory_order_relaxed);
  next_chunk_.store(
      (static_cast<uint64_t>(generation) << 32) | (static_cast<uint64_t>(chunks) << 16),
      std::memory_order_release);
  {
    // Bumping under the mutex closes the window between a sleeping worker's predicate
    // check and its wait; notify_all makes no syscall when nobody sleeps.
    std::lock_guard<std::mutex> lock(mu_);
    generation_.store(generation, std::memory_order_release);
  }
  cv_.notify_all();
  RunChunks(generation);
  auto all_done = [&] { return chunks_done_.load(std::memory_order_acquire) == chunks; };
  if (!SpinUntil(all_done, kCallerSpin)) {
    while (!all_done()) std::this_thread::yield();  // the chunk's thread was preempted
  }
}

void ThreadPool::WorkerLoop() {
  uint32_t seen = 0;
  while (true) {
    auto new_job = [&] { return generation_.load(std::memory_order_acquire) != seen; };
    if (!SpinUntil(new_job, kWorkerSpin)) {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || new_job(); });
      if (stop_) return;
    }
    seen = generation_.load(std::memory_order_acquire);
    RunChunks(seen);
  }
}

}  // namespace ringserve::kernels::cpu
