#include "tests/unit/kernels/cuda_emu/emu_runtime.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

#if defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#define RS_EMU_FIBERS 1
// Saves the callee-saved registers on the current stack, stores the stack pointer in *from,
// and resumes the stack `to` (System V x86-64).
extern "C" void RsEmuSwitch(void** from, void* to);
asm(R"(
.text
.globl RsEmuSwitch
.type RsEmuSwitch,@function
RsEmuSwitch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
.size RsEmuSwitch,.-RsEmuSwitch
.section .note.GNU-stack,"",@progbits
.text
)");
#endif

namespace emu {
namespace {

constexpr size_t kStackBytes = size_t{256} << 10;
constexpr int kWarp = 32;

struct Fiber {
  void* sp = nullptr;
  uint3 thread_idx{};
  bool done = false;
};

// The block being run.
struct Block {
  dim3 grid, block;
  uint3 block_idx{};
  const std::function<void()>* body = nullptr;
  std::vector<Fiber> fibers;
  int current = -1;
  void* scheduler_sp = nullptr;
  int live = 0;
  int block_arrived = 0;
  uint64_t block_generation = 0;
  std::vector<int> warp_live, warp_arrived;
  std::vector<uint64_t> warp_generation;
  std::vector<std::array<uint32_t, 2 * kWarp>> warp_values;  // double-buffered by generation
  std::vector<std::array<uint32_t, 2 * kWarp * kMaxGatherWords>> warp_gathers;  // the same
  std::vector<unsigned char> shared;
  uint64_t progress = 0;  // arrivals and exits; a pass without any is a deadlock
};

// Shared memory limits of an H100 (sm_90).
constexpr size_t kOptinSharedBytes = size_t{227} << 10;
constexpr size_t kDefaultDynamicSharedBytes = size_t{48} << 10;
constexpr size_t kStaticSharedBytes = 2048;  // as if every kernel had some

// What cudaFuncSetAttribute allowed each kernel (by address).
std::mutex g_kernel_mutex;
std::unordered_map<const void*, size_t>& DynamicSharedLimits() {
  static auto* limits = new std::unordered_map<const void*, size_t>();
  return *limits;
}

Block* g_block = nullptr;

// A fiber's stack with an inaccessible page below it, so that a kernel overflowing its stack
// (deep recursion, a huge local array) faults at once instead of overwriting the heap.
// Committed page by page as it is touched.
class FiberStack {
 public:
  FiberStack() {
    const auto page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    map_bytes_ = kStackBytes + page;
    void* map =
        mmap(nullptr, map_bytes_, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (map == MAP_FAILED) Fail("fiber stack: mmap failed");
    base_ = static_cast<char*>(map);
    if (mprotect(base_ + page, kStackBytes, PROT_READ | PROT_WRITE) != 0) {
      Fail("fiber stack: mprotect failed");
    }
  }
  FiberStack(const FiberStack&) = delete;
  FiberStack& operator=(const FiberStack&) = delete;
  ~FiberStack() { munmap(base_, map_bytes_); }
  char* top() const { return base_ + map_bytes_; }

 private:
  char* base_ = nullptr;
  size_t map_bytes_ = 0;
};
std::vector<std::unique_ptr<FiberStack>> g_stacks;  // reused across launches

Block& Current() {
  if (g_block == nullptr || g_block->current < 0) Fail("device function called outside a kernel");
  return *g_block;
}

#ifdef RS_EMU_FIBERS
void Yield() {
  Block& b = *g_block;
  RsEmuSwitch(&b.fibers[b.current].sp, b.scheduler_sp);
}

// A barrier whose waiters all arrived completes; exits count as arrivals.
void ReleaseCompleted() {
  Block& b = *g_block;
  if (b.block_arrived > 0 && b.block_arrived == b.live) {
    b.block_arrived = 0;
    ++b.block_generation;
  }
  for (size_t w = 0; w < b.warp_live.size(); ++w) {
    if (b.warp_arrived[w] > 0 && b.warp_arrived[w] == b.warp_live[w]) {
      b.warp_arrived[w] = 0;
      ++b.warp_generation[w];
    }
  }
}

extern "C" [[noreturn]] void RsEmuFiberEntry() {
  Block& b = *g_block;
  (*b.body)();
  Fiber& f = b.fibers[b.current];
  f.done = true;
  --b.live;
  --b.warp_live[b.current / kWarp];
  ++b.progress;
  ReleaseCompleted();
  RsEmuSwitch(&f.sp, b.scheduler_sp);
  Fail("finished fiber resumed");
}

void RunBlock(Block& b) {
  const int n = static_cast<int>(b.block.x * b.block.y * b.block.z);
  while (static_cast<int>(g_stacks.size()) < n) {
    g_stacks.push_back(std::make_unique<FiberStack>());
  }
  b.fibers.assign(n, Fiber{});
  const int warps = (n + kWarp - 1) / kWarp;
  b.warp_live.assign(warps, 0);
  b.warp_arrived.assign(warps, 0);
  b.warp_generation.assign(warps, 0);
  b.warp_values.assign(warps, {});
  b.warp_gathers.resize(warps);
  for (int t = 0; t < n; ++t) {
    Fiber& f = b.fibers[t];
    f.thread_idx =
        make_uint3(t % b.block.x, t / b.block.x % b.block.y, t / (b.block.x * b.block.y));
    // Stack top: the entry's address at a 16-aligned slot (as after a call), below it the
    // six registers RsEmuSwitch pops.
    auto top = reinterpret_cast<uintptr_t>(g_stacks[t]->top()) & ~uintptr_t{15};
    auto* slot = reinterpret_cast<void**>(top - 16);
    slot[0] = reinterpret_cast<void*>(&RsEmuFiberEntry);
    slot[1] = nullptr;
    for (int r = 1; r <= 6; ++r) slot[-r] = nullptr;
    f.sp = slot - 6;
    ++b.warp_live[t / kWarp];
  }
  b.live = n;
  b.block_arrived = 0;
  while (b.live > 0) {
    const uint64_t before = b.progress;
    for (int t = 0; t < n; ++t) {
      if (b.fibers[t].done) continue;
      b.current = t;
      RsEmuSwitch(&b.scheduler_sp, b.fibers[t].sp);
    }
    b.current = -1;
    if (b.live > 0 && b.progress == before) Fail("deadlock: threads wait at different barriers");
  }
}
#endif

}  // namespace

bool Available() {
#ifdef RS_EMU_FIBERS
  return true;
#else
  return false;
#endif
}

const uint3& ThreadIdx() {
  Block& b = Current();
  return b.fibers[b.current].thread_idx;
}
const uint3& BlockIdx() { return Current().block_idx; }
const dim3& BlockDim() { return Current().block; }
const dim3& GridDim() { return Current().grid; }
void* DynamicShared() { return Current().shared.data(); }
void Trap() { Fail("__trap() in a kernel"); }

#ifdef RS_EMU_FIBERS
void SyncThreads() {
  Block& b = Current();
  const uint64_t generation = b.block_generation;
  ++b.progress;
  if (++b.block_arrived == b.live) {
    b.block_arrived = 0;
    ++b.block_generation;
    return;
  }
  while (b.block_generation == generation) Yield();
}

// Waits until every lane of warp `w` has arrived at this generation's warp barrier.
void WarpBarrier(Block& b, int w, uint64_t generation) {
  ++b.progress;
  if (++b.warp_arrived[w] == b.warp_live[w]) {
    b.warp_arrived[w] = 0;
    ++b.warp_generation[w];
  } else {
    while (b.warp_generation[w] == generation) Yield();
  }
}

// The warp of the calling thread, checked to be whole.
int FullWarp(const Block& b) {
  const int w = b.current / kWarp;
  if (b.warp_live[w] != kWarp) Fail("warp-collective operation after lanes of the warp exited");
  return w;
}

uint32_t WarpExchange(uint32_t bits, int lane_arg, bool xor_lane) {
  Block& b = Current();
  const int w = FullWarp(b), lane = b.current % kWarp;
  const uint64_t generation = b.warp_generation[w];
  const int half = static_cast<int>(generation & 1) * kWarp;
  b.warp_values[w][half + lane] = bits;
  WarpBarrier(b, w, generation);
  return b.warp_values[w][half + (xor_lane ? lane ^ lane_arg : lane_arg)];
}

// The buffer of generation G is written again at G + 2, which no lane reaches before every
// lane has passed G + 1: a lane may read it until its next warp barrier.
const uint32_t* WarpGather(const uint32_t* mine, int count) {
  if (count < 1 || count > kMaxGatherWords) Fail("WarpGather: bad word count");
  Block& b = Current();
  const int w = FullWarp(b), lane = b.current % kWarp;
  const uint64_t generation = b.warp_generation[w];
  uint32_t* buffer = b.warp_gathers[w].data() + (generation & 1) * kWarp * kMaxGatherWords;
  std::copy(mine, mine + count, buffer + lane * count);
  WarpBarrier(b, w, generation);
  return buffer;
}

int LaneId() { return Current().current % kWarp; }

void SyncWarp() { WarpExchange(0, 0, false); }

void RunGrid(dim3 grid, dim3 block, size_t shared_bytes, const std::function<void()>& body) {
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || block.x * block.y * block.z == 0) {
    Fail("launch with an empty grid or block (cudaErrorInvalidConfiguration)");
  }
  if (block.x * block.y * block.z > 1024) Fail("more than 1024 threads per block");
  if (block.x * block.y * block.z % kWarp != 0) Fail("block is not a whole number of warps");
  if (grid.y > 65535 || grid.z > 65535) Fail("grid y or z above 65535");
  Block b;
  b.grid = grid;
  b.block = block;
  b.body = &body;
  Block* outer = g_block;
  g_block = &b;
  for (unsigned z = 0; z < grid.z; ++z) {
    for (unsigned y = 0; y < grid.y; ++y) {
      for (unsigned x = 0; x < grid.x; ++x) {
        b.block_idx = make_uint3(x, y, z);
        b.shared.assign(shared_bytes, 0xFF);
        RunBlock(b);
      }
    }
  }
  g_block = outer;
}
#else
void SyncThreads() { Fail("unavailable"); }
void SyncWarp() { Fail("unavailable"); }
uint32_t WarpExchange(uint32_t, int, bool) { Fail("unavailable"); }
const uint32_t* WarpGather(const uint32_t*, int) { Fail("unavailable"); }
int LaneId() { Fail("unavailable"); }
void RunGrid(dim3, dim3, size_t, const std::function<void()>&) { Fail("unavailable"); }
#endif

cudaError_t cudaGetDeviceCount(int* count) {
  *count = Available() ? 1 : 0;
  return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int /*device*/) {
  switch (attr) {
    case cudaDevAttrComputeCapabilityMajor:
      *value = 9;
      return cudaSuccess;
    case cudaDevAttrMultiProcessorCount:
      *value = 4;
      return cudaSuccess;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin:
      *value = static_cast<int>(kOptinSharedBytes);
      return cudaSuccess;
    default:
      return cudaErrorInvalidValue;
  }
}

cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : cudaErrorInvalidDevice; }

namespace {
thread_local cudaError_t t_last_error = cudaSuccess;
}  // namespace

void RecordLastError(cudaError_t error) { t_last_error = error; }

cudaError_t cudaGetLastError() { return std::exchange(t_last_error, cudaSuccess); }
const char* cudaGetErrorName(cudaError_t /*error*/) { return "cudaErrorEmulated"; }
const char* cudaGetErrorString(cudaError_t /*error*/) { return "error in the CUDA emulation"; }
// A kernel's dynamic shared memory may exceed kDefaultDynamicSharedBytes only up to what
// cudaFuncSetAttribute(cudaFuncAttributeMaxDynamicSharedMemorySize) allowed it, and that
// plus its static shared memory may not exceed the opt-in limit. A device refuses other
// launches; the emulation stops at them. (Every kernel reports the same static size here, so
// static + dynamic above 48 KiB without the attribute is not caught.)
cudaError_t cudaFuncSetAttribute(const void* func, cudaFuncAttribute attr, int value) {
  if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize) return cudaSuccess;
  if (value < 0 || static_cast<size_t>(value) + kStaticSharedBytes > kOptinSharedBytes) {
    return cudaErrorInvalidValue;
  }
  std::lock_guard<std::mutex> lock(g_kernel_mutex);
  DynamicSharedLimits()[func] = static_cast<size_t>(value);
  return cudaSuccess;
}
cudaError_t cudaFuncGetAttributes(cudaFuncAttributes* attributes, const void* /*func*/) {
  *attributes = cudaFuncAttributes{};
  attributes->sharedSizeBytes = kStaticSharedBytes;
  return cudaSuccess;
}

void CheckLaunchSharedMemory(const void* kernel, size_t shared_bytes) {
  if (shared_bytes <= kDefaultDynamicSharedBytes) return;
  size_t limit = kDefaultDynamicSharedBytes;
  {
    std::lock_guard<std::mutex> lock(g_kernel_mutex);
    const auto it = DynamicSharedLimits().find(kernel);
    if (it != DynamicSharedLimits().end()) limit = std::max(limit, it->second);
  }
  if (shared_bytes <= limit) return;
  char message[256];
  std::snprintf(message, sizeof(message),
                "launch with %zu bytes of dynamic shared memory, above the kernel's limit of %zu "
                "(cudaFuncSetAttribute(cudaFuncAttributeMaxDynamicSharedMemorySize) raises it)",
                shared_bytes, limit);
  Fail(message);
}

}  // namespace emu
