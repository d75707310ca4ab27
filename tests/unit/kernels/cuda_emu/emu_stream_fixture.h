// A gtest fixture for tests of the emulation's runtime itself (emu_runtime.h): skips where
// the emulation does not run, and gives each test a stream of its own.
#ifndef RINGSERVE_TESTS_UNIT_KERNELS_CUDA_EMU_EMU_STREAM_FIXTURE_H_
#define RINGSERVE_TESTS_UNIT_KERNELS_CUDA_EMU_EMU_STREAM_FIXTURE_H_

#include "gtest/gtest.h"
#include "tests/unit/kernels/cuda_emu/emu_runtime.h"

namespace emu::testing {

class EmuStreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!emu::Available()) GTEST_SKIP() << "no CPU emulation of CUDA here";
    ASSERT_EQ(emu::cudaStreamCreateWithFlags(&stream_, 0), cudaSuccess);
  }
  void TearDown() override {
    if (stream_ != nullptr) emu::cudaStreamDestroy(stream_);
  }
  cudaStream_t stream_ = nullptr;
};

}  // namespace emu::testing

#endif  // RINGSERVE_TESTS_UNIT_KERNELS_CUDA_EMU_EMU_STREAM_FIXTURE_H_
