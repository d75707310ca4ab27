// A persistent fork-join pool for the CPU backend's data-parallel ops.
//
// Owned by CpuBackend; ParallelFor is called from one thread at a time (the backend's
// "stream", i.e. the engine thread). Decode issues ~10 ops per layer at 10-100 us each, so
// the wake-up path matters: workers spin briefly (tens of microseconds, by the clock) on an
// atomic before sleeping on a condition variable, and the caller works too.
//
// Chunk boundaries are static ([n * c / C, n * (c + 1) / C)), but which thread runs a chunk
// is not: threads claim chunk indices from a shared counter. On a busy machine a preempted
// or sleeping worker then costs nothing — the caller takes its chunks — instead of
// stalling the whole op until the scheduler runs it again.
#ifndef RINGSERVE_KERNELS_CPU_THREAD_POOL_H_
#define RINGSERVE_KERNELS_CPU_THREAD_POOL_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/functional/function_ref.h"

namespace ringserve::kernels::cpu {

class ThreadPool {
 public:
  // num_threads counts the caller: a pool of N starts N - 1 workers. 0 = one per core.
  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return num_threads_; }

  // Splits [0, n) into C = min(num_threads, ceil(n / min_chunk)) contiguous chunks of
  // near-equal size and runs fn(begin, end) once per chunk, on the caller and the workers.
  // Returns when every chunk is done. min_chunk keeps tiny ops (a decode row's norm) off
  // the wake-up path. Not reentrant.
  void ParallelFor(int64_t n, absl::FunctionRef<void(int64_t, int64_t)> fn, int64_t min_chunk = 1);

 private:
  void WorkerLoop();
  // Claims and runs chunks of job `generation` until none is left.
  void RunChunks(uint32_t generation);

  const int num_threads_;
  std::vector<std::thread> workers_;

  // The current job; written by the caller before it publishes the job in next_chunk_
  // (release) and read only by a thread that claimed one of its chunks (acquire).
  int64_t job_n_ = 0;
  const absl::FunctionRef<void(int64_t, int64_t)>* job_fn_ = nullptr;

  // Bits 63..32: job generation; 31..16: number of chunks; 15..0: next unclaimed chunk.
  std::atomic<uint64_t> next_chunk_{0};
  std::atomic<int> chunks_done_{0};
  // Bumped once per job to wake workers (spinning or sleeping).
  std::atomic<uint32_t> generation_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;  // guarded by mu_
};

}  // namespace ringserve::kernels::cpu

#endif  // RINGSERVE_KERNELS_CPU_THREAD_POOL_H_
