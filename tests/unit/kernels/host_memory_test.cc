// Host memory readings on fake /proc and /sys/fs/cgroup trees: a container's cgroup limit
// caps both what a CPU worker may size its KV pool from and what it may ever use.
#include "kernels/cpu/host_memory.h"

#include <filesystem>
#include <fstream>
#include <string>

#include "gtest/gtest.h"

namespace ringserve::kernels::cpu {
namespace {

namespace fs = std::filesystem;
constexpr uint64_t kGiB = uint64_t{1} << 30;

class HostMemoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(::testing::TempDir()) /
            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(root_);
    fs::create_directories(root_ / "sys");
    files_ = {.meminfo = (root_ / "meminfo").string(),
              .self_cgroup = (root_ / "cgroup").string(),
              .cgroup_root = (root_ / "sys").string()};
    Write("meminfo", "MemTotal:       33554432 kB\nMemAvailable:   16777216 kB\n");  // 16 GiB
  }
  void TearDown() override { fs::remove_all(root_); }

  void Write(const fs::path& relative, const std::string& text) {
    fs::create_directories((root_ / relative).parent_path());
    std::ofstream(root_ / relative) << text;
  }

  fs::path root_;
  HostMemoryFiles files_;
};

TEST_F(HostMemoryTest, WithoutACgroupLimitTheMachineDecides) {
  Write("cgroup", "0::/\n");
  Write("sys/memory.max", "max\n");
  EXPECT_FALSE(ReadCgroupMemory(files_).has_value());
  EXPECT_EQ(AvailableHostBytes(files_), 16 * kGiB);
  EXPECT_EQ(HostMemoryLimitBytes(32 * kGiB, files_), 32 * kGiB);
}

TEST_F(HostMemoryTest, AContainersV2LimitCapsBoth) {
  // In a container's cgroup namespace the process sits at the mount's root.
  Write("cgroup", "0::/\n");
  Write("sys/memory.max", std::to_string(2 * kGiB) + "\n");
  Write("sys/memory.current", std::to_string(kGiB / 2) + "\n");
  const auto cgroup = ReadCgroupMemory(files_);
  ASSERT_TRUE(cgroup.has_value());
  EXPECT_EQ(cgroup->limit_bytes, 2 * kGiB);
  EXPECT_EQ(AvailableHostBytes(files_), 2 * kGiB - kGiB / 2);
  EXPECT_EQ(HostMemoryLimitBytes(32 * kGiB, files_), 2 * kGiB);
}

TEST_F(HostMemoryTest, TheTightestAncestorLimitAndItsUsageCount) {
  Write("cgroup", "0::/kubepods/pod1/ctr\n");
  Write("sys/kubepods/pod1/ctr/memory.max", "max\n");
  Write("sys/kubepods/pod1/ctr/memory.current", "100\n");
  Write("sys/kubepods/pod1/memory.max", std::to_string(3 * kGiB) + "\n");
  Write("sys/kubepods/pod1/memory.current", std::to_string(kGiB) + "\n");
  Write("sys/kubepods/memory.max", std::to_string(8 * kGiB) + "\n");
  const auto cgroup = ReadCgroupMemory(files_);
  ASSERT_TRUE(cgroup.has_value());
  EXPECT_EQ(cgroup->limit_bytes, 3 * kGiB);
  EXPECT_EQ(cgroup->usage_bytes, kGiB);
  EXPECT_EQ(AvailableHostBytes(files_), 2 * kGiB);
}

TEST_F(HostMemoryTest, CgroupV1LimitsAndItsUnlimitedValue) {
  Write("cgroup", "4:memory:/process_api/abc\n3:cpuset:/\n0::/\n");
  Write("sys/memory/memory.limit_in_bytes", "9223372036854771712\n");  // v1's "no limit"
  Write("sys/memory/process_api/abc/memory.limit_in_bytes", "9223372036854771712\n");
  EXPECT_FALSE(ReadCgroupMemory(files_).has_value());
  EXPECT_EQ(AvailableHostBytes(files_), 16 * kGiB);

  Write("sys/memory/process_api/abc/memory.limit_in_bytes", std::to_string(4 * kGiB) + "\n");
  Write("sys/memory/process_api/abc/memory.usage_in_bytes", std::to_string(kGiB) + "\n");
  EXPECT_EQ(AvailableHostBytes(files_), 3 * kGiB);
  EXPECT_EQ(HostMemoryLimitBytes(32 * kGiB, files_), 4 * kGiB);
}

TEST_F(HostMemoryTest, UsageOverTheLimitLeavesNothingAndBadFilesAreIgnored) {
  Write("cgroup", "0::/\n");
  Write("sys/memory.max", std::to_string(kGiB) + "\n");
  Write("sys/memory.current", std::to_string(2 * kGiB) + "\n");
  EXPECT_EQ(AvailableHostBytes(files_), 0u);
  Write("sys/memory.max", "garbage\n");
  EXPECT_FALSE(ReadCgroupMemory(files_).has_value());
  Write("cgroup", "not a cgroup line\n");
  EXPECT_FALSE(ReadCgroupMemory(files_).has_value());
  EXPECT_EQ(AvailableHostBytes({.meminfo = "/nonexistent", .self_cgroup = "/nonexistent"}), 0u);
}

}  // namespace
}  // namespace ringserve::kernels::cpu
