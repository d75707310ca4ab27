// A CPU emulation of the CUDA execution model, enough to run the CUDA backend's own kernels
// and launchers (kernels/cuda/) in tests on machines without a GPU.
//
// Each thread of a block is a fiber on the calling thread; blocks run one after another.
// Fibers switch only at barriers (__syncthreads, __syncwarp, warp shuffles), round-robin,
// so a run is deterministic; a barrier that can never complete aborts with "deadlock".
// Dynamic shared memory and cudaMalloc'ed memory (its first 8 MiB) start as 0xFF (NaN in
// every float type), so reading what no one wrote shows up. Device memory is host memory, each
// allocation between inaccessible guard pages with its 256-rounded end flush against the
// trailing one (emu_memory.cc), so a kernel reading or writing past a buffer dies with
// SIGSEGV and a message naming the allocation. Streams
// run each call to completion, except while they capture (emu_stream.cc): then kernel
// launches, device copies and memsets are recorded, with their arguments as at the call, into
// a graph that cudaGraphLaunch replays; calls CUDA refuses during a capture (allocation,
// waiting, copies to or from host memory) fail and invalidate it, as in CUDA's thread-local
// capture mode.
//
// Not a simulator of timing or of memory ordering between blocks. x86-64 only, and not
// under ASan/TSan (their stack bookkeeping does not follow hand-made fibers): Available()
// says whether it runs here.
#ifndef RINGSERVE_TESTS_UNIT_KERNELS_CUDA_EMU_EMU_RUNTIME_H_
#define RINGSERVE_TESTS_UNIT_KERNELS_CUDA_EMU_EMU_RUNTIME_H_

#include <cuda_runtime_api.h>
#include <vector_functions.h>
#include <vector_types.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>

namespace emu {

bool Available();
// Prints "cuda emulation: `what`" and aborts.
[[noreturn]] void Fail(const char* what);

// ---- inside a kernel ----
const uint3& ThreadIdx();
const uint3& BlockIdx();
const dim3& BlockDim();
const dim3& GridDim();
void SyncThreads();
void SyncWarp();
void* DynamicShared();
[[noreturn]] void Trap();
// Every lane of the warp passes `bits`; returns lane `lane`'s (or lane ^ `lane`'s).
uint32_t WarpExchange(uint32_t bits, int lane, bool xor_lane);
// Every lane of the warp passes `count` words (at most kMaxGatherWords, the same count in
// every lane); returns all of them, lane i's at [i * count, (i + 1) * count), readable until
// the calling lane's next warp barrier. A warp barrier, like a shuffle: the warp-collective
// operations (mma.sync) are built on it.
inline constexpr int kMaxGatherWords = 16;
const uint32_t* WarpGather(const uint32_t* mine, int count);
// The calling thread's lane in its warp.
int LaneId();

template <typename V>
V Shfl(V v, int lane, bool xor_lane = false) {
  static_assert(sizeof(V) == 4);
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  bits = WarpExchange(bits, lane, xor_lane);
  std::memcpy(&v, &bits, 4);
  return v;
}

// ---- launching ----
// Runs body() as every thread of every block of the grid; returns when all are done.
void RunGrid(dim3 grid, dim3 block, size_t shared_bytes, const std::function<void()>& body);
// A kernel launch on `stream`: RunGrid now, or recorded when the stream is capturing.
// `kernel` (its address, for its cudaFuncSetAttribute limits) is checked at the call as a
// device checks the launch: CheckLaunchSharedMemory.
void Launch(cudaStream_t stream, dim3 grid, dim3 block, size_t shared_bytes,
            std::function<void()> body, const void* kernel = nullptr);
// Stops the process (Fail) when `shared_bytes` of dynamic shared memory is more than
// `kernel` may use: above 48 KiB it needs cudaFuncSetAttribute(kernel,
// cudaFuncAttributeMaxDynamicSharedMemorySize, >= shared_bytes) first.
void CheckLaunchSharedMemory(const void* kernel, size_t shared_bytes);
template <typename F>
const void* KernelAddress(F* kernel) {
  return reinterpret_cast<const void*>(kernel);
}
// What an allocation or a wait must return on this thread: cudaSuccess, or, while the thread
// captures a stream (not in relaxed mode), an error that has invalidated those captures.
cudaError_t CaptureUnsafeCall();
// Makes `error` this thread's last error (cudaGetLastError), as a failed launch does.
void RecordLastError(cudaError_t error);

// ---- the runtime API the backend calls ----
cudaError_t cudaGetDeviceCount(int* count);
cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned flags);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaStreamIsCapturing(cudaStream_t stream, cudaStreamCaptureStatus* status);
cudaError_t cudaMalloc(void** ptr, size_t bytes);
cudaError_t cudaFree(void* ptr);
cudaError_t cudaHostAlloc(void** ptr, size_t bytes, unsigned int flags);
cudaError_t cudaFreeHost(void* ptr);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t stream);
cudaError_t cudaMemcpy2DAsync(void* dst, size_t dst_pitch, const void* src, size_t src_pitch,
                              size_t width, size_t rows, cudaMemcpyKind kind, cudaStream_t stream);
cudaError_t cudaMemsetAsync(void* dst, int value, size_t bytes, cudaStream_t stream);
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes);
cudaError_t cudaGetLastError();
const char* cudaGetErrorName(cudaError_t error);
const char* cudaGetErrorString(cudaError_t error);
cudaError_t cudaFuncSetAttribute(const void* func, cudaFuncAttribute attr, int value);
cudaError_t cudaFuncGetAttributes(cudaFuncAttributes* attributes, const void* func);
template <typename F>
cudaError_t cudaFuncGetAttributes(cudaFuncAttributes* attributes, F* func) {
  return ::emu::cudaFuncGetAttributes(attributes, reinterpret_cast<const void*>(func));
}
cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode mode);
cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* graph);
cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph,
                                 unsigned long long flags);  // NOLINT(google-runtime-int)
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream);
cudaError_t cudaGraphDestroy(cudaGraph_t graph);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec);

// Stops the process (Fail) when [device, device + bytes) starts inside a cudaMalloc'ed
// buffer (or its guard area) and does not end inside it; host memory passes. `call` names
// the caller in the message.
void CheckDeviceRange(const void* device, size_t bytes, const char* call);
// Bytes cudaMalloc'ed and not yet freed.
int64_t LiveAllocations();
// Graph executables instantiated and not yet destroyed.
int64_t LiveGraphExecs();

}  // namespace emu

#endif  // RINGSERVE_TESTS_UNIT_KERNELS_CUDA_EMU_EMU_RUNTIME_H_
