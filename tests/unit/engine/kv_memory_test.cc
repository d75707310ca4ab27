// A KV pool sized from free memory leaves the backend's runtime reserve aside (1 GiB on
// CUDA: kernels loaded on first use and decode graphs allocate after start-up), so that even
// --kv-memory 1.0 does not make those fail mid-serving; a byte count is taken as given.
#include <memory>

#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "tests/unit/model/test_devices.h"
#include "worker/engine/llama_runner.h"

namespace ringserve::engine {
namespace {

TEST(KvMemoryTest, AFractionIsOfTheFreeMemoryLessTheRuntimeReserve) {
  int ran = 0;
  for (const testing::TestDevice& device : testing::TestDevices()) {
    auto backend = device.create();
    if (!backend.ok()) continue;
    ++ran;
    const kernels::Backend& b = **backend;
    const bool cuda = b.name().starts_with("cuda");
    EXPECT_EQ(b.RuntimeReserveBytes(), cuda ? size_t{1} << 30 : 0) << device.name;
    constexpr size_t kBlock = size_t{1} << 20;
    const size_t free = b.FreeMemoryBytes();
    ASSERT_GT(free, b.RuntimeReserveBytes() + 8 * kBlock) << device.name;
    const auto all = KvBlocksForMemory({.fraction_of_free = 1.0}, b, kBlock);
    ASSERT_TRUE(all.ok()) << all.status();
    // Free memory moves a little between the two reads on a shared machine.
    EXPECT_NEAR(*all, static_cast<double>(free - b.RuntimeReserveBytes()) / kBlock,
                static_cast<double>(free) / kBlock * 0.01)
        << device.name;
    EXPECT_EQ(*KvBlocksForMemory({.bytes = 8 * kBlock}, b, kBlock), 8) << device.name;
  }
  EXPECT_GT(ran, 0);
}

}  // namespace
}  // namespace ringserve::engine
