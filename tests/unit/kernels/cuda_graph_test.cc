// Backend::CaptureGraph: the CUDA backend's graphs on the GPU ("cuda", skipped without one)
// and on the CPU emulation ("emu"), the emulation's stream capture itself, and the CPU
// backend's refusal. The model's decode graphs are tested in tests/unit/model.
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "tests/unit/kernels/cuda_emu/cuda_emu_backend.h"
#include "tests/unit/kernels/cuda_emu/emu_runtime.h"
#include "tests/unit/kernels/cuda_emu/emu_stream_fixture.h"
#include "tests/unit/kernels/kernel_test_util.h"

namespace ringserve::kernels::testing {
namespace {

TEST(CaptureGraphTest, TheCpuBackendHasNoGraphs) {
  auto cpu = CreateBackend("cpu");
  ASSERT_TRUE(cpu.ok());
  EXPECT_FALSE((*cpu)->can_capture_graphs());
  bool ran = false;
  const auto graph = (*cpu)->CaptureGraph([&] { ran = true; });
  EXPECT_EQ(graph.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_FALSE(ran);
}

// The emulation's capture, through the runtime calls the backend makes.
using EmuStreamCaptureTest = emu::testing::EmuStreamTest;

TEST_F(EmuStreamCaptureTest, WorkIsRecordedWithItsArgumentsAndRunsOnlyOnLaunch) {
  std::vector<int> memory = {1, 2, 3, 0};
  int launches = 0;
  int argument = 10;
  ASSERT_EQ(emu::cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal), cudaSuccess);
  emu::Launch(stream_, dim3(1), dim3(32), 0,
              [&launches, value = argument] { launches += value == 10 ? 1 : 1000; });
  argument = 20;  // a copied argument keeps the value it had at the launch
  ASSERT_EQ(
      emu::cudaMemcpyAsync(&memory[3], &memory[0], sizeof(int), cudaMemcpyDeviceToDevice, stream_),
      cudaSuccess);
  ASSERT_EQ(emu::cudaMemsetAsync(&memory[1], 0, sizeof(int), stream_), cudaSuccess);
  cudaGraph_t graph = nullptr;
  ASSERT_EQ(emu::cudaStreamEndCapture(stream_, &graph), cudaSuccess);
  EXPECT_EQ(launches, 0);
  EXPECT_EQ(memory, (std::vector<int>{1, 2, 3, 0}));

  cudaGraphExec_t exec = nullptr;
  ASSERT_EQ(emu::cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
  EXPECT_EQ(emu::cudaGraphDestroy(graph), cudaSuccess);  // the executable lives on
  memory[0] = 7;                                         // copies read memory when they run
  ASSERT_EQ(emu::cudaGraphLaunch(exec, stream_), cudaSuccess);
  EXPECT_EQ(launches, 32);  // one per thread of the recorded grid
  EXPECT_EQ(memory, (std::vector<int>{7, 0, 3, 7}));
  ASSERT_EQ(emu::cudaGraphLaunch(exec, stream_), cudaSuccess);
  EXPECT_EQ(launches, 64);
  EXPECT_EQ(emu::cudaGraphExecDestroy(exec), cudaSuccess);
}

TEST_F(EmuStreamCaptureTest, UnsafeCallsFailAndInvalidateTheCapture) {
  int host = 0;
  void* device = nullptr;
  ASSERT_EQ(emu::cudaMalloc(&device, 64), cudaSuccess);
  // An allocation, a wait, a copy from host memory: each one fails and spoils the capture.
  const std::vector<std::function<cudaError_t()>> unsafe = {
      [&] {
        void* p = nullptr;
        return emu::cudaMalloc(&p, 16);
      },
      [&] { return emu::cudaFree(device); },
      [&] { return emu::cudaStreamSynchronize(stream_); },
      [&] {
        return emu::cudaMemcpyAsync(device, &host, sizeof(host), cudaMemcpyHostToDevice, stream_);
      },
  };
  for (size_t i = 0; i < unsafe.size(); ++i) {
    ASSERT_EQ(emu::cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal), cudaSuccess);
    EXPECT_EQ(unsafe[i](), cudaErrorStreamCaptureUnsupported) << "call " << i;
    cudaGraph_t graph = nullptr;
    EXPECT_EQ(emu::cudaStreamEndCapture(stream_, &graph), cudaErrorStreamCaptureInvalidated)
        << "call " << i;
    EXPECT_EQ(graph, nullptr);
  }
  EXPECT_EQ(emu::cudaFree(device), cudaSuccess);  // outside a capture it is fine again
}

// The backend's CaptureGraph on the GPU and on the emulation.
class CudaGraphTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "emu") {
      backend_ = MakeEmulatedCudaBackend(DType::kF32);
    } else {
      auto backend = CreateBackend("cuda:0");
      if (backend.ok()) backend_ = *std::move(backend);
    }
    if (backend_ == nullptr) GTEST_SKIP() << GetParam() << " is not available";
  }
  std::unique_ptr<Backend> backend_;
};

TEST_P(CudaGraphTest, ReplaysRunTheCapturedOpsOnTheMemoryAsItIsThen) {
  Backend& b = *backend_;
  ASSERT_TRUE(b.can_capture_graphs());
  std::mt19937_64 rng(3);
  const int64_t rows = 5, cols = 48, hidden = cols / 2, out_cols = 24;
  const std::vector<float> w_host = RandomFloats(rng, out_cols * hidden);
  auto w = b.UploadWeight(DType::kF32, out_cols, hidden, w_host.data());
  ASSERT_TRUE(w.ok()) << w.status();
  ActivationArray x(b, RandomFloats(rng, rows * cols)), act(b, std::vector<float>(rows * hidden)),
      y(b, std::vector<float>(rows * out_cols)), y_copy(b, std::vector<float>(rows * out_cols));
  const size_t x_bytes = DTypeBytes(b.activation_dtype(), rows * cols);
  const size_t y_bytes = DTypeBytes(b.activation_dtype(), rows * out_cols);
  auto ops = [&] {
    b.SiluMul(x.AsTensor(rows, cols), act.AsTensor(rows, hidden));
    b.Fill(y.data(), y_bytes, 0);
    b.MatMul(act.AsTensor(rows, hidden), *w, y.AsTensor(rows, out_cols));
    b.CopyOnDevice(y_copy.data(), y.data(), y_bytes);
  };
  ops();  // once op by op first, as a graph's first use does (MatMul plans are made here)
  const std::vector<float> eager = y_copy.Download();
  b.Fill(y_copy.data(), y_bytes, 0);
  const std::vector<float> cleared = y_copy.Download();

  const int64_t allocations = b.num_allocations();
  auto graph = b.CaptureGraph(ops);
  ASSERT_TRUE(graph.ok()) << graph.status();
  EXPECT_EQ(y_copy.Download(), cleared) << "capturing ran the ops";
  (*graph)->Replay();
  EXPECT_EQ(y_copy.Download(), eager);
  EXPECT_EQ(b.num_allocations(), allocations) << "capturing or replaying allocated";

  // New inputs, same graph: replays read them.
  const ActivationArray x2(b, RandomFloats(rng, rows * cols));
  b.CopyOnDevice(x.data(), x2.data(), x_bytes);
  ops();
  const std::vector<float> eager2 = y_copy.Download();
  ASSERT_NE(eager2, eager);
  b.Fill(y_copy.data(), y_bytes, 0);
  const int64_t before_replays = b.num_allocations();
  for (int i = 0; i < 3; ++i) (*graph)->Replay();
  EXPECT_EQ(y_copy.Download(), eager2);
  EXPECT_EQ(b.num_allocations(), before_replays) << "a replay allocated";
}

// A capture that something outside the backend invalidates (here an allocation on the
// capturing thread) fails every later op on the stream until its end: CaptureGraph returns
// the failure as a status instead of the ops' checks aborting, and the same ops then run
// eagerly, with no stale error reported against them. On the emulation, which invalidates as
// CUDA documents for thread-local capture.
TEST_P(CudaGraphTest, AnInvalidatedCaptureIsAStatusAndTheOpsRunEagerlyAfter) {
  if (GetParam() != "emu") GTEST_SKIP() << "the invalidating call is the emulation's";
  Backend& b = *backend_;
  std::mt19937_64 rng(5);
  const int64_t rows = 3, cols = 32, out_cols = 8;
  const std::vector<float> w_host = RandomFloats(rng, out_cols * cols);
  auto w = b.UploadWeight(DType::kF32, out_cols, cols, w_host.data());
  ASSERT_TRUE(w.ok()) << w.status();
  ActivationArray x(b, RandomFloats(rng, rows * cols)), y(b, std::vector<float>(rows * out_cols)),
      y_copy(b, std::vector<float>(rows * out_cols));
  const size_t y_bytes = DTypeBytes(b.activation_dtype(), rows * out_cols);
  auto ops = [&] {
    b.Fill(y.data(), y_bytes, 0);
    b.MatMul(x.AsTensor(rows, cols), *w, y.AsTensor(rows, out_cols));
    b.CopyOnDevice(y_copy.data(), y.data(), y_bytes);
  };
  ops();
  const std::vector<float> eager = y_copy.Download();
  auto graph = b.CaptureGraph([&] {
    b.Fill(y.data(), y_bytes, 0);
    void* memory = nullptr;
    EXPECT_NE(emu::cudaMalloc(&memory, 256), cudaSuccess);  // invalidates the capture
    ops();  // launches, a memset and a copy on the invalidated stream
  });
  EXPECT_FALSE(graph.ok());
  b.Fill(y_copy.data(), y_bytes, 0);
  ops();
  EXPECT_EQ(y_copy.Download(), eager);
}

TEST_P(CudaGraphTest, CallsThatCannotBeCapturedStopTheProcess) {
  Backend& b = *backend_;
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH((void)b.CaptureGraph([&] { (void)b.Allocate(256); }), "Allocate inside a graph");
  EXPECT_DEATH((void)b.CaptureGraph([&] { b.Synchronize(); }), "Synchronize inside a graph");
  std::vector<float> host(4);
  EXPECT_DEATH((void)b.CaptureGraph([&] {
    ActivationArray scratch(b, host);  // uploads: a host copy, and allocates
  }),
               "inside a graph");
}

INSTANTIATE_TEST_SUITE_P(Devices, CudaGraphTest, ::testing::Values("cuda", "emu"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace ringserve::kernels::testing
