// The CPU backend's pool: every index runs exactly once, chunks follow the documented static
// split, and back-to-back jobs (the decode pattern) never mix. Run under TSan as well.
#include "kernels/cpu/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace ringserve::kernels::cpu {
namespace {

TEST(ThreadPoolTest, CoversEveryIndexOnceAcrossManyJobs) {
  for (int threads : {1, 2, 5}) {
    ThreadPool pool(threads);
    for (int64_t n : {0, 1, 2, 3, 7, 64, 1000}) {
      for (int rep = 0; rep < 50; ++rep) {
        std::vector<std::atomic<int>> hits(n);
        pool.ParallelFor(n, [&](int64_t begin, int64_t end) {
          for (int64_t i = begin; i < end; ++i) hits[i].fetch_add(1, std::memory_order_relaxed);
        });
        for (int64_t i = 0; i < n; ++i)
          ASSERT_EQ(hits[i].load(), 1) << threads << " " << n << " " << i;
      }
    }
  }
}

TEST(ThreadPoolTest, StaticChunksAndMinChunk) {
  ThreadPool pool(4);
  std::mutex mu;
  std::vector<std::pair<int64_t, int64_t>> chunks;
  pool.ParallelFor(10, [&](int64_t begin, int64_t end) {
    std::lock_guard<std::mutex> lock(mu);
    chunks.emplace_back(begin, end);
  });
  std::sort(chunks.begin(), chunks.end());
  const std::vector<std::pair<int64_t, int64_t>> want = {{0, 2}, {2, 5}, {5, 7}, {7, 10}};
  EXPECT_EQ(chunks, want);
  std::atomic<int> calls{0};
  pool.ParallelFor(
      10, [&](int64_t, int64_t) { calls.fetch_add(1); }, /*min_chunk=*/100);
  EXPECT_EQ(calls.load(), 1);  // too little work to wake anyone
}

}  // namespace
}  // namespace ringserve::kernels::cpu
