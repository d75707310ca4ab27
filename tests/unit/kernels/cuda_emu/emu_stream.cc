// Streams and CUDA graphs of the emulation (see emu_runtime.h): stream capture records the
// stream's work instead of running it, and a graph executable replays the records in order.
//
// What CUDA enforces and the emulation checks, so a backend that passes here captures on a
// device too: work is recorded with its arguments as they were at the call (kernel arguments
// by value, copies by address), never run at capture; a capturing thread (not in relaxed
// mode) that allocates, frees or waits invalidates its captures and gets an error, and so
// does a copy to or from host memory on a capturing stream (CUDA refuses pageable memory
// there); cudaStreamEndCapture of an invalidated capture returns no graph.
#include <algorithm>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "tests/unit/kernels/cuda_emu/emu_runtime.h"

namespace emu {
namespace {

using Work = std::function<void()>;

struct Graph {
  std::vector<Work> nodes;
};

struct Stream {
  std::unique_ptr<Graph> capture;  // set while capturing
  bool invalidated = false;
  bool strict = false;  // not relaxed: unsafe calls on the capturing thread invalidate it
  std::thread::id capturing_thread;
};

// Objects behind the handles, which are their addresses. Kernels run outside the lock.
struct Registry {
  std::mutex mutex;
  std::unordered_map<const void*, std::unique_ptr<Stream>> streams;
  std::unordered_map<const void*, std::unique_ptr<Graph>> graphs;
  std::unordered_map<const void*, std::unique_ptr<Graph>> execs;
  Stream default_stream;  // stream 0, which CUDA cannot capture
};

Registry& Objects() {
  static auto* registry = new Registry();
  return *registry;
}

// The strict captures this thread has begun and not ended.
thread_local std::vector<Stream*> t_captures;

Stream* StreamOf(cudaStream_t handle) {
  Registry& r = Objects();
  if (handle == nullptr) return &r.default_stream;
  std::lock_guard<std::mutex> lock(r.mutex);
  const auto it = r.streams.find(handle);
  return it == r.streams.end() ? nullptr : it->second.get();
}

Graph* Find(std::unordered_map<const void*, std::unique_ptr<Graph>>& map, const void* handle) {
  std::lock_guard<std::mutex> lock(Objects().mutex);
  const auto it = map.find(handle);
  return it == map.end() ? nullptr : it->second.get();
}

void Invalidate(Stream& s) {
  s.invalidated = true;
  s.capture->nodes.clear();
}

// Runs `work` now, or records it when the stream captures. Work on a capture gone invalid
// fails, as on a device, until cudaStreamEndCapture.
cudaError_t Enqueue(cudaStream_t handle, Work work) {
  Stream* s = StreamOf(handle);
  if (s == nullptr) return cudaErrorInvalidResourceHandle;
  if (s->capture == nullptr) {
    work();
  } else if (s->invalidated) {
    return cudaErrorStreamCaptureInvalidated;
  } else {
    s->capture->nodes.push_back(std::move(work));
  }
  return cudaSuccess;
}

}  // namespace

cudaError_t CaptureUnsafeCall() {
  if (t_captures.empty()) return cudaSuccess;
  for (Stream* s : t_captures) Invalidate(*s);
  return cudaErrorStreamCaptureUnsupported;
}

void Launch(cudaStream_t stream, dim3 grid, dim3 block, size_t shared_bytes, Work body,
            const void* kernel) {
  CheckLaunchSharedMemory(kernel, shared_bytes);
  const cudaError_t error = Enqueue(stream, [grid, block, shared_bytes, body = std::move(body)] {
    RunGrid(grid, block, shared_bytes, body);
  });
  if (error == cudaErrorStreamCaptureInvalidated) {
    RecordLastError(error);
  } else if (error != cudaSuccess) {
    Fail("kernel launch on a stream that does not exist");
  }
}

cudaError_t cudaStreamIsCapturing(cudaStream_t stream, cudaStreamCaptureStatus* status) {
  Stream* s = StreamOf(stream);
  if (s == nullptr) return cudaErrorInvalidResourceHandle;
  *status = s->capture == nullptr ? cudaStreamCaptureStatusNone
            : s->invalidated      ? cudaStreamCaptureStatusInvalidated
                                  : cudaStreamCaptureStatusActive;
  return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned /*flags*/) {
  auto s = std::make_unique<Stream>();
  *stream = reinterpret_cast<cudaStream_t>(s.get());
  Registry& r = Objects();
  std::lock_guard<std::mutex> lock(r.mutex);
  r.streams.emplace(s.get(), std::move(s));
  return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  Registry& r = Objects();
  std::lock_guard<std::mutex> lock(r.mutex);
  const auto it = r.streams.find(stream);
  if (it == r.streams.end()) return cudaErrorInvalidResourceHandle;
  if (it->second->capture != nullptr) return cudaErrorStreamCaptureUnsupported;
  r.streams.erase(it);
  return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  if (const cudaError_t error = CaptureUnsafeCall(); error != cudaSuccess) return error;
  Stream* s = StreamOf(stream);
  if (s == nullptr) return cudaErrorInvalidResourceHandle;
  if (s->capture != nullptr) {  // even a relaxed capture cannot wait for itself
    Invalidate(*s);
    return cudaErrorStreamCaptureUnsupported;
  }
  return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t stream) {
  Stream* s = StreamOf(stream);
  if (s == nullptr) return cudaErrorInvalidResourceHandle;
  if (s->capture != nullptr && kind != cudaMemcpyDeviceToDevice) {
    Invalidate(*s);
    return cudaErrorStreamCaptureUnsupported;
  }
  CheckDeviceRange(dst, bytes, "cudaMemcpyAsync (destination)");
  CheckDeviceRange(src, bytes, "cudaMemcpyAsync (source)");
  return Enqueue(stream, [dst, src, bytes] { std::memcpy(dst, src, bytes); });
}

cudaError_t cudaMemcpy2DAsync(void* dst, size_t dst_pitch, const void* src, size_t src_pitch,
                              size_t width, size_t rows, cudaMemcpyKind kind, cudaStream_t stream) {
  Stream* s = StreamOf(stream);
  if (s == nullptr) return cudaErrorInvalidResourceHandle;
  if (s->capture != nullptr && kind != cudaMemcpyDeviceToDevice) {
    Invalidate(*s);
    return cudaErrorStreamCaptureUnsupported;
  }
  // CUDA's own limits: a pitch below the width, or beyond memPitch (2^31 - 1), is an error.
  constexpr size_t kMaxPitch = 2147483647;
  if (dst_pitch < width || src_pitch < width || dst_pitch > kMaxPitch || src_pitch > kMaxPitch) {
    return cudaErrorInvalidPitchValue;
  }
  for (size_t r = 0; r < rows; ++r) {
    CheckDeviceRange(static_cast<char*>(dst) + r * dst_pitch, width,
                     "cudaMemcpy2DAsync (destination)");
    CheckDeviceRange(static_cast<const char*>(src) + r * src_pitch, width,
                     "cudaMemcpy2DAsync (source)");
  }
  return Enqueue(stream, [=] {
    for (size_t r = 0; r < rows; ++r) {
      std::memcpy(static_cast<char*>(dst) + r * dst_pitch,
                  static_cast<const char*>(src) + r * src_pitch, width);
    }
  });
}

cudaError_t cudaMemsetAsync(void* dst, int value, size_t bytes, cudaStream_t stream) {
  CheckDeviceRange(dst, bytes, "cudaMemsetAsync");
  return Enqueue(stream, [dst, value, bytes] { std::memset(dst, value, bytes); });
}

cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode mode) {
  if (stream == nullptr) return cudaErrorStreamCaptureUnsupported;
  Stream* s = StreamOf(stream);
  if (s == nullptr) return cudaErrorInvalidResourceHandle;
  if (s->capture != nullptr) return cudaErrorIllegalState;
  s->capture = std::make_unique<Graph>();
  s->invalidated = false;
  s->strict = mode != cudaStreamCaptureModeRelaxed;
  s->capturing_thread = std::this_thread::get_id();
  if (s->strict) t_captures.push_back(s);
  return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* graph) {
  Stream* s = StreamOf(stream);
  if (s == nullptr) return cudaErrorInvalidResourceHandle;
  if (s->capture == nullptr) return cudaErrorIllegalState;
  if (s->strict) {
    if (s->capturing_thread != std::this_thread::get_id()) {
      return cudaErrorStreamCaptureWrongThread;
    }
    t_captures.erase(std::find(t_captures.begin(), t_captures.end(), s));
  }
  std::unique_ptr<Graph> captured = std::move(s->capture);
  *graph = nullptr;
  if (s->invalidated) return cudaErrorStreamCaptureInvalidated;
  *graph = reinterpret_cast<cudaGraph_t>(captured.get());
  Registry& r = Objects();
  std::lock_guard<std::mutex> lock(r.mutex);
  r.graphs.emplace(captured.get(), std::move(captured));
  return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph,
                                 unsigned long long /*flags*/) {  // NOLINT(google-runtime-int)
  const Graph* source = Find(Objects().graphs, graph);
  if (source == nullptr) return cudaErrorInvalidValue;
  auto copy = std::make_unique<Graph>(*source);
  *exec = reinterpret_cast<cudaGraphExec_t>(copy.get());
  Registry& r = Objects();
  std::lock_guard<std::mutex> lock(r.mutex);
  r.execs.emplace(copy.get(), std::move(copy));
  return cudaSuccess;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream) {
  const Graph* graph = Find(Objects().execs, exec);
  if (graph == nullptr) return cudaErrorInvalidValue;
  for (const Work& node : graph->nodes) {
    if (const cudaError_t error = Enqueue(stream, node); error != cudaSuccess) return error;
  }
  return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  Registry& r = Objects();
  std::lock_guard<std::mutex> lock(r.mutex);
  return r.graphs.erase(graph) == 1 ? cudaSuccess : cudaErrorInvalidValue;
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
  Registry& r = Objects();
  std::lock_guard<std::mutex> lock(r.mutex);
  return r.execs.erase(exec) == 1 ? cudaSuccess : cudaErrorInvalidValue;
}

int64_t LiveGraphExecs() {
  Registry& r = Objects();
  std::lock_guard<std::mutex> lock(r.mutex);
  return static_cast<int64_t>(r.execs.size());
}

}  // namespace emu
