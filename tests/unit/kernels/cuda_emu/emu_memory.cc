// Device memory of the emulation (see emu_runtime.h), laid out so that out-of-bounds device
// accesses, which on a GPU read garbage or fault only sometimes, stop the test at once.
//
// Each cudaMalloc is its own anonymous mapping (committed lazily, so the model tests' large
// KV pools cost only the pages they touch):
//
//   [guard page] [slack < 1 page] [buffer: bytes] [gap: to 256] [guard page]
//                                 ^ start, 256-aligned           ^ start + round256(bytes)
//
// The start keeps the 256-byte alignment CUDA guarantees (the kernels choose 16-byte vector
// loads and cuBLASLt its algorithms from the pointers' alignment, so a less aligned start
// would test other code paths than a GPU runs), and the 256-rounded end lies flush against
// an inaccessible page: any access past it, or far enough before the start to cross the
// slack, is a SIGSEGV that the handler below names. The end can be flush with the size
// itself only when the size is a multiple of 256. We keep the alignment and give up
// flushness for other sizes: an access inside the gap (at most 255 bytes) does not fault.
// On a GPU it would not fault either (allocations are carved at 256-byte or coarser
// granularity), but it reads another buffer's bytes or its own garbage there. What the
// emulation can still catch cheaply: the gap and the slack hold the poison pattern (NaN in
// every float type), so a kernel that uses a value read there shows NaN, a write into
// either is reported when the buffer is freed, and a copy or memset whose device range
// leaves its allocation (gap included) stops before it runs (CheckDeviceRange).
//
// Not caught: accesses that stay inside one allocation but leave the sub-buffer the caller
// meant (tensors carved out of one workspace), and reads of the gap whose value is unused.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>

#include "tests/unit/kernels/cuda_emu/emu_runtime.h"

namespace emu {
namespace {

constexpr size_t kAlignment = 256;
// cudaMalloc'ed memory starts as this byte: NaN in f32, f16 and bf16. Poisoning is capped
// (the backend's large scratch is only used at its start) so large buffers stay uncommitted.
constexpr unsigned char kPoison = 0xFF;
constexpr size_t kPoisonBytes = size_t{8} << 20;

struct Mapping {
  char* base = nullptr;  // the leading guard page
  size_t map_bytes = 0;
  char* start = nullptr;  // what cudaMalloc returned
  size_t bytes = 0;       // as asked
  size_t rounded = 0;     // bytes rounded up to kAlignment: start + rounded is the trailing guard
};

size_t PageBytes() {
  static const auto page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return page;
}

size_t RoundUp(size_t n, size_t multiple) { return (n + multiple - 1) / multiple * multiple; }

std::mutex g_mutex;
// Live allocations by mapping base: the one holding an address is the last at or below it.
std::map<uintptr_t, Mapping>& Mappings() {
  static auto* map = new std::map<uintptr_t, Mapping>();
  return *map;
}

// The allocation whose mapping (guards included) holds `address`, or null. Call locked.
const Mapping* MappingAt(uintptr_t address) {
  auto it = Mappings().upper_bound(address);
  if (it == Mappings().begin()) return nullptr;
  --it;
  const Mapping& m = it->second;
  return address < it->first + m.map_bytes ? &m : nullptr;
}

// Where `address` lies relative to allocation `m`, for messages: "N bytes past the end of
// the allocation of M bytes at P" and the like.
void Describe(const Mapping& m, uintptr_t address, char* out, size_t out_bytes) {
  const auto start = reinterpret_cast<uintptr_t>(m.start);
  if (address < start) {
    std::snprintf(out, out_bytes, "%zu bytes before the start of the allocation of %zu bytes at %p",
                  static_cast<size_t>(start - address), m.bytes, static_cast<void*>(m.start));
  } else {
    std::snprintf(out, out_bytes, "%zu bytes past the end of the allocation of %zu bytes at %p",
                  static_cast<size_t>(address - start - m.bytes), m.bytes,
                  static_cast<void*>(m.start));
  }
}

// Fails with "`what`, <where `address` lies relative to `m`>".
[[noreturn]] void FailNear(const Mapping& m, uintptr_t address, const char* what) {
  char where[160];
  Describe(m, address, where, sizeof(where));
  char message[384];
  std::snprintf(message, sizeof(message), "%s%s", what, where);
  Fail(message);
}

struct sigaction g_previous_segv;

// A fault on a guard page: names the allocation, then lets the previous handler (or the
// default action) take the re-raised fault. Only reads the allocation table, and only when
// no thread is changing it.
void OnSegv(int signal, siginfo_t* info, void* /*context*/) {
  char line[256];
  int length = 0;
  if (g_mutex.try_lock()) {
    const auto address = reinterpret_cast<uintptr_t>(info->si_addr);
    if (const Mapping* m = MappingAt(address); m != nullptr) {
      char where[160];
      Describe(*m, address, where, sizeof(where));
      length = std::snprintf(line, sizeof(line),
                             "cuda emulation: out-of-bounds device access at %p, %s\n",
                             info->si_addr, where);
    }
    g_mutex.unlock();
  }
  if (length > 0) {
    [[maybe_unused]] const ssize_t written =
        write(STDERR_FILENO, line, std::min(static_cast<size_t>(length), sizeof(line) - 1));
  }
  sigaction(signal, &g_previous_segv, nullptr);  // returning re-runs the access
}

void InstallSegvHandler() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction action {};
    action.sa_sigaction = &OnSegv;
    action.sa_flags = SA_SIGINFO;
    sigemptyset(&action.sa_mask);
    sigaction(SIGSEGV, &action, &g_previous_segv);
  });
}

// The first byte of [begin, begin + bytes) that is not poison, or null.
const char* Overwritten(const char* begin, size_t bytes) {
  const char* end = begin + bytes;
  const char* it =
      std::find_if(begin, end, [](char c) { return static_cast<unsigned char>(c) != kPoison; });
  return it == end ? nullptr : it;
}

}  // namespace

[[noreturn]] void Fail(const char* what) {
  std::fprintf(stderr, "cuda emulation: %s\n", what);
  std::fflush(stderr);
  std::abort();
}

cudaError_t cudaMalloc(void** ptr, size_t bytes) {
  if (const cudaError_t error = CaptureUnsafeCall(); error != cudaSuccess) return error;
  InstallSegvHandler();
  const size_t page = PageBytes();
  Mapping m;
  m.bytes = bytes;
  m.rounded = RoundUp(bytes, kAlignment);
  const size_t data_bytes = RoundUp(m.rounded, page);
  m.map_bytes = data_bytes + 2 * page;
  void* base =
      mmap(nullptr, m.map_bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (base == MAP_FAILED) return cudaErrorMemoryAllocation;
  m.base = static_cast<char*>(base);
  if (data_bytes > 0 && mprotect(m.base + page, data_bytes, PROT_READ | PROT_WRITE) != 0) {
    munmap(base, m.map_bytes);
    return cudaErrorMemoryAllocation;
  }
  m.start = m.base + page + data_bytes - m.rounded;
  // The slack, the buffer's start and the gap; a size 0 buffer starts on the guard.
  std::memset(m.base + page, kPoison, data_bytes - m.rounded);
  std::memset(m.start, kPoison, std::min(m.rounded, kPoisonBytes));
  std::memset(m.start + m.bytes, kPoison, m.rounded - m.bytes);
  std::lock_guard<std::mutex> lock(g_mutex);
  Mappings().emplace(reinterpret_cast<uintptr_t>(m.base), m);
  *ptr = m.start;
  return cudaSuccess;
}

cudaError_t cudaFree(void* ptr) {
  if (const cudaError_t error = CaptureUnsafeCall(); error != cudaSuccess) return error;
  if (ptr == nullptr) return cudaSuccess;
  Mapping m;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    const Mapping* found = MappingAt(reinterpret_cast<uintptr_t>(ptr));
    if (found == nullptr || found->start != ptr) return cudaErrorInvalidValue;
    m = *found;
    Mappings().erase(reinterpret_cast<uintptr_t>(m.base));
  }
  // Writes that hit no guard: into the gap past the end, or the slack before the start.
  const char* slack = m.base + PageBytes();
  const char* stray = Overwritten(m.start + m.bytes, m.rounded - m.bytes);
  if (stray == nullptr) stray = Overwritten(slack, static_cast<size_t>(m.start - slack));
  if (stray != nullptr) {
    FailNear(m, reinterpret_cast<uintptr_t>(stray), "cudaFree: out-of-bounds device write found, ");
  }
  munmap(m.base, m.map_bytes);
  return cudaSuccess;
}

void CheckDeviceRange(const void* device, size_t bytes, const char* call) {
  const auto begin = reinterpret_cast<uintptr_t>(device);
  std::lock_guard<std::mutex> lock(g_mutex);
  const Mapping* m = MappingAt(begin);
  if (m == nullptr) return;  // host memory
  const auto start = reinterpret_cast<uintptr_t>(m->start);
  if (begin >= start && bytes <= m->bytes && begin - start <= m->bytes - bytes) return;
  char what[160];
  std::snprintf(what, sizeof(what), "%s of %zu bytes at %p reaches ", call, bytes, device);
  FailNear(*m, begin < start ? begin : begin + bytes, what);
}

// Page-locked host memory is plain host memory here: copies from and to it behave like any
// host copy (enqueued on the stream, run in order).
cudaError_t cudaHostAlloc(void** ptr, size_t bytes, unsigned int /*flags*/) {
  if (const cudaError_t error = CaptureUnsafeCall(); error != cudaSuccess) return error;
  *ptr = std::aligned_alloc(kAlignment, RoundUp(std::max<size_t>(bytes, 1), kAlignment));
  return *ptr != nullptr ? cudaSuccess : cudaErrorMemoryAllocation;
}

cudaError_t cudaFreeHost(void* ptr) {
  if (const cudaError_t error = CaptureUnsafeCall(); error != cudaSuccess) return error;
  std::free(ptr);
  return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  *free_bytes = size_t{8} << 30;
  *total_bytes = size_t{16} << 30;
  return cudaSuccess;
}

int64_t LiveAllocations() {
  std::lock_guard<std::mutex> lock(g_mutex);
  int64_t bytes = 0;
  for (const auto& [base, m] : Mappings()) bytes += static_cast<int64_t>(m.bytes);
  return bytes;
}

}  // namespace emu
