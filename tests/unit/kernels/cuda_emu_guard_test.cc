// The emulation's device memory (tests/unit/kernels/cuda_emu/emu_memory.cc): an access past a
// cudaMalloc'ed buffer stops the process, naming the allocation, while exact-size copies,
// memsets and kernels that stay inside their buffers run as before. And its launch check: a
// kernel's dynamic shared memory above 48 KiB needs its cudaFuncSetAttribute.
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "gtest/gtest.h"
#include "tests/unit/kernels/cuda_emu/emu_runtime.h"
#include "tests/unit/kernels/cuda_emu/emu_stream_fixture.h"

namespace ringserve::kernels::testing {
namespace {

constexpr size_t kKiB = 1024;

float* Malloc(size_t bytes) {
  void* p = nullptr;
  EXPECT_EQ(emu::cudaMalloc(&p, bytes), cudaSuccess);
  return static_cast<float*>(p);
}

class EmuDeviceMemoryTest : public emu::testing::EmuStreamTest {
 protected:
  // Element `index` of `data`, read by lane 0 of a one-warp kernel.
  float ReadInKernel(const float* data, int64_t index) {
    float value = 0;
    emu::Launch(stream_, dim3(1), dim3(32), 0, [&] {
      if (emu::ThreadIdx().x == 0) value = static_cast<const volatile float*>(data)[index];
    });
    return value;
  }
  void WriteInKernel(float* data, int64_t index, float value) {
    emu::Launch(stream_, dim3(1), dim3(32), 0, [=] {
      if (emu::ThreadIdx().x == 0) static_cast<volatile float*>(data)[index] = value;
    });
  }
};

// The process has helper threads by now; the child re-runs the test instead of forking.
class EmuDeviceMemoryDeathTest : public EmuDeviceMemoryTest {
 protected:
  void SetUp() override {
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    EmuDeviceMemoryTest::SetUp();
  }
};

TEST_F(EmuDeviceMemoryTest, ExactSizesPassAndBuffersKeepCudasAlignment) {
  const int64_t live_before = emu::LiveAllocations();
  for (const size_t bytes : {size_t{0}, size_t{1}, size_t{100}, size_t{256}, size_t{5000}}) {
    SCOPED_TRACE(bytes);
    auto* device = reinterpret_cast<unsigned char*>(Malloc(bytes));
    EXPECT_EQ(reinterpret_cast<uintptr_t>(device) % 256, 0U);
    std::vector<unsigned char> host(bytes);
    std::vector<unsigned char> back(bytes, 0);
    for (size_t i = 0; i < bytes; ++i) host[i] = static_cast<unsigned char>(i * 7 + 1);
    ASSERT_EQ(emu::cudaMemsetAsync(device, 0, bytes, stream_), cudaSuccess);
    ASSERT_EQ(emu::cudaMemcpyAsync(device, host.data(), bytes, cudaMemcpyHostToDevice, stream_),
              cudaSuccess);
    ASSERT_EQ(emu::cudaMemcpyAsync(back.data(), device, bytes, cudaMemcpyDeviceToHost, stream_),
              cudaSuccess);
    EXPECT_EQ(back, host);
    if (bytes >= sizeof(float)) {  // the last whole element, from a kernel
      const size_t last = bytes / sizeof(float) - 1;
      uint32_t expected = 0;
      std::memcpy(&expected, host.data() + last * sizeof(float), sizeof(float));
      const float read = ReadInKernel(reinterpret_cast<float*>(device), static_cast<int64_t>(last));
      EXPECT_EQ(std::bit_cast<uint32_t>(read), expected);
    }
    EXPECT_EQ(emu::cudaFree(device), cudaSuccess);
  }
  EXPECT_EQ(emu::LiveAllocations(), live_before);
}

// 100 bytes: the end is rounded to 256 for the start's alignment, and the 156 bytes between
// hold poison (NaN), as unwritten memory does.
TEST_F(EmuDeviceMemoryTest, ReadsInsideTheRoundingSeePoison) {
  float* device = Malloc(100);
  EXPECT_TRUE(std::isnan(ReadInKernel(device, 25)));
  EXPECT_TRUE(std::isnan(ReadInKernel(device, 63)));
  EXPECT_EQ(emu::cudaFree(device), cudaSuccess);
}

TEST_F(EmuDeviceMemoryDeathTest, AKernelReadingOneElementPastItsBufferDies) {
  float* device = Malloc(1024);
  EXPECT_DEATH(ReadInKernel(device, 256),
               "out-of-bounds device access at 0x[0-9a-f]+, 0 bytes past the end of the "
               "allocation of 1024 bytes");
  // Past the rounding of a size that is not a multiple of 256.
  float* odd = Malloc(100);
  EXPECT_DEATH(ReadInKernel(odd, 64), "156 bytes past the end of the allocation of 100 bytes");
  EXPECT_EQ(emu::cudaFree(device), cudaSuccess);
  EXPECT_EQ(emu::cudaFree(odd), cudaSuccess);
}

// Each call takes a frame of at least 512 bytes; the compiler can neither drop the frames
// nor turn the recursion into a loop (the array is volatile and used after the call).
int Recurse(int depth) {
  volatile char frame[512];
  frame[0] = static_cast<char>(depth);
  if (depth == 0) return frame[0];
  return Recurse(depth - 1) + frame[0];
}

// A kernel overflowing its fiber's stack (256 KiB) hits the guard page below it instead of
// overwriting whatever lies there.
TEST_F(EmuDeviceMemoryDeathTest, AKernelOverflowingItsStackDies) {
  EXPECT_DEATH(emu::Launch(stream_, dim3(1), dim3(32), 0,
                           [] {
                             if (emu::ThreadIdx().x == 0) Recurse(2048);  // >= 1 MiB of frames
                           }),
               "");
}

TEST_F(EmuDeviceMemoryDeathTest, AWriteInsideTheRoundingIsReportedWhenFreed) {
  float* device = Malloc(100);
  EXPECT_DEATH(
      {
        WriteInKernel(device, 25, 1.0F);
        emu::cudaFree(device);
      },
      "cudaFree: out-of-bounds device write found, 0 bytes past the end of the allocation of "
      "100 bytes");
  EXPECT_EQ(emu::cudaFree(device), cudaSuccess);
}

TEST_F(EmuDeviceMemoryDeathTest, ACopyPastItsBufferDies) {
  float* device = Malloc(100);
  std::vector<unsigned char> host(104);
  EXPECT_DEATH(
      emu::cudaMemcpyAsync(host.data(), device, 104, cudaMemcpyDeviceToHost, stream_),
      "cudaMemcpyAsync \\(source\\) of 104 bytes at 0x[0-9a-f]+ reaches 4 bytes past the end");
  EXPECT_DEATH(emu::cudaMemsetAsync(device + 1, 0, 100, stream_),
               "cudaMemsetAsync of 100 bytes at 0x[0-9a-f]+ reaches 4 bytes past the end");
  EXPECT_EQ(emu::cudaFree(device), cudaSuccess);
}

void SomeKernel() {}

// As a device refuses it: more than 48 KiB of dynamic shared memory needs the kernel's
// cudaFuncSetAttribute first, and at most that much.
TEST_F(EmuDeviceMemoryDeathTest, DynamicSharedMemoryAbove48KiBNeedsTheKernelsAttribute) {
  const void* kernel = emu::KernelAddress(&SomeKernel);
  emu::CheckLaunchSharedMemory(kernel, 48 * kKiB);
  EXPECT_DEATH(emu::CheckLaunchSharedMemory(kernel, 48 * kKiB + 4),
               "launch with 49156 bytes of dynamic shared memory, above the kernel's limit of "
               "49152");
  ASSERT_EQ(
      emu::cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 100 * 1024),
      cudaSuccess);
  emu::CheckLaunchSharedMemory(kernel, 100 * kKiB);
  EXPECT_DEATH(emu::CheckLaunchSharedMemory(kernel, 100 * kKiB + 4), "above the kernel's limit");
  // The attribute itself is capped by the opt-in limit less the static shared memory.
  int optin = 0;
  ASSERT_EQ(emu::cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, 0),
            cudaSuccess);
  EXPECT_NE(emu::cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, optin),
            cudaSuccess);
}

}  // namespace
}  // namespace ringserve::kernels::testing
