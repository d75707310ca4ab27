// ringserve-gpu-roofline: the two ceilings a GPU check compares ringserve against, measured
// on the card as found (METHOD: measure the ceilings once, in the same call):
//   - device-to-device copy bandwidth (cudaMemcpyAsync of a large buffer; bytes read plus
//     bytes written over the median time of several copies), and a plain streaming read
//     kernel's bandwidth beside it;
//   - cuBLAS bf16 GEMM rate (bf16 in and out, f32 accumulation) at given shapes, by default
//     Llama-3-8B's fused projections at M = 2048 tokens.
// Prints one JSON object. Exits 77 with a message on stderr when no CUDA device is visible.
//
//   ringserve-gpu-roofline [--device N] [--copy-mib 1024] [--reps 20]
//                          [--shapes name:M:K:N,...]
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

// Reports the failing expression, function and file:line, then exits.
#define CUDA_CHECK(expr)                                                                    \
  do {                                                                                      \
    const cudaError_t rs_err_ = (expr);                                                     \
    if (rs_err_ != cudaSuccess) {                                                           \
      std::fprintf(stderr, "ringserve-gpu-roofline: %s failed in %s at %s:%d: %s\n", #expr, \
                   __func__, __FILE__, __LINE__, cudaGetErrorString(rs_err_));              \
      std::exit(1);                                                                         \
    }                                                                                       \
  } while (0)
#define CUBLAS_CHECK(expr)                                                                         \
  do {                                                                                             \
    const cublasStatus_t rs_st_ = (expr);                                                          \
    if (rs_st_ != CUBLAS_STATUS_SUCCESS) {                                                         \
      std::fprintf(stderr, "ringserve-gpu-roofline: %s failed in %s at %s:%d: cuBLAS %d\n", #expr, \
                   __func__, __FILE__, __LINE__, static_cast<int>(rs_st_));                        \
      std::exit(1);                                                                                \
    }                                                                                              \
  } while (0)

struct Shape {
  std::string name;
  int64_t m = 0;  // rows of x and y (tokens)
  int64_t k = 0;  // input features
  int64_t n = 0;  // output features
};

struct Flags {
  int device = 0;
  int64_t copy_mib = 1024;
  int reps = 20;
  std::vector<Shape> shapes = {{"qkv", 2048, 4096, 6144},
                               {"o", 2048, 4096, 4096},
                               {"gate_up", 2048, 4096, 28672},
                               {"down", 2048, 14336, 4096},
                               {"lm_head", 2048, 4096, 128256}};
};

[[noreturn]] void Usage(const char* why) {
  std::fprintf(stderr,
               "ringserve-gpu-roofline: %s\nusage: ringserve-gpu-roofline [--device N] "
               "[--copy-mib MIB] [--reps R] [--shapes name:M:K:N,...]\n",
               why);
  std::exit(2);
}

std::vector<Shape> ParseShapes(const std::string& list) {
  std::vector<Shape> shapes;
  size_t begin = 0;
  while (begin < list.size()) {
    size_t end = list.find(',', begin);
    if (end == std::string::npos) end = list.size();
    const std::string item = list.substr(begin, end - begin);
    char name[64] = {0};
    long long m = 0, k = 0, n = 0;
    if (std::sscanf(item.c_str(), "%63[^:]:%lld:%lld:%lld", name, &m, &k, &n) != 4 || m <= 0 ||
        k <= 0 || n <= 0) {
      Usage(("bad shape '" + item + "' (want name:M:K:N)").c_str());
    }
    shapes.push_back({name, m, k, n});
    begin = end + 1;
  }
  if (shapes.empty()) Usage("--shapes is empty");
  return shapes;
}

Flags ParseFlags(int argc, char** argv) {
  Flags flags;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") Usage("measures copy bandwidth and cuBLAS bf16 GEMM rates");
    if (i + 1 >= argc) Usage(("missing value for " + arg).c_str());
    const char* value = argv[++i];
    if (arg == "--device") {
      flags.device = std::atoi(value);
    } else if (arg == "--copy-mib") {
      flags.copy_mib = std::atoll(value);
    } else if (arg == "--reps") {
      flags.reps = std::atoi(value);
    } else if (arg == "--shapes") {
      flags.shapes = ParseShapes(value);
    } else {
      Usage(("unknown flag " + arg).c_str());
    }
  }
  if (flags.copy_mib <= 0 || flags.reps <= 0) Usage("--copy-mib and --reps must be positive");
  return flags;
}

// Uniform values in [-scale, scale) from a hash of the index: never zeros (which can run
// faster than real data), and the same on every run.
__global__ void FillRandomBf16(__nv_bfloat16* out, int64_t count, uint64_t seed, float scale) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count;
       i += int64_t{gridDim.x} * blockDim.x) {
    uint64_t z = seed + static_cast<uint64_t>(i) * 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    const float unit = static_cast<float>(z >> 40) * (1.0F / 16777216.0F);
    out[i] = __float2bfloat16((2.0F * unit - 1.0F) * scale);
  }
}

// Reads every 16-byte word once; one atomic per block keeps the loads from being removed.
__global__ void ReadAll(const uint4* in, int64_t count, unsigned long long* sink) {
  unsigned int acc = 0;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count;
       i += int64_t{gridDim.x} * blockDim.x) {
    const uint4 v = in[i];
    acc ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  if (acc == 0x12345678U) atomicAdd(sink, 1ULL);
}

void FillRandom(__nv_bfloat16* out, int64_t count, uint64_t seed, float scale) {
  FillRandomBf16<<<1024, 256>>>(out, count, seed, scale);
  CUDA_CHECK(cudaGetLastError());
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Times `reps` runs of `run(rep)` (after 3 warm-ups), each between its own pair of events;
// returns the median milliseconds.
template <typename Run>
double TimeMedianMs(int reps, Run run) {
  for (int i = 0; i < 3; ++i) run(i);
  std::vector<cudaEvent_t> events(2 * static_cast<size_t>(reps));
  for (cudaEvent_t& e : events) CUDA_CHECK(cudaEventCreate(&e));
  for (int i = 0; i < reps; ++i) {
    CUDA_CHECK(cudaEventRecord(events[2 * i]));
    run(i);
    CUDA_CHECK(cudaEventRecord(events[2 * i + 1]));
  }
  CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<double> ms(static_cast<size_t>(reps));
  for (int i = 0; i < reps; ++i) {
    float t = 0;
    CUDA_CHECK(cudaEventElapsedTime(&t, events[2 * i], events[2 * i + 1]));
    ms[i] = t;
  }
  for (cudaEvent_t& e : events) CUDA_CHECK(cudaEventDestroy(e));
  return Median(ms);
}

void PrintBandwidth(const Flags& flags) {
  const size_t bytes = static_cast<size_t>(flags.copy_mib) << 20;
  void* src = nullptr;
  void* dst = nullptr;
  unsigned long long* sink = nullptr;
  CUDA_CHECK(cudaMalloc(&src, bytes));
  CUDA_CHECK(cudaMalloc(&dst, bytes));
  CUDA_CHECK(cudaMalloc(&sink, sizeof(*sink)));
  FillRandom(static_cast<__nv_bfloat16*>(src), static_cast<int64_t>(bytes / 2), 1, 1.0F);
  CUDA_CHECK(cudaMemset(dst, 0x5A, bytes));
  const double copy_ms = TimeMedianMs(flags.reps, [&](int) {
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, 0));
  });
  int sms = 0;
  CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, flags.device));
  const int64_t words = static_cast<int64_t>(bytes / sizeof(uint4));
  const double read_ms = TimeMedianMs(flags.reps, [&](int) {
    ReadAll<<<sms * 8, 512>>>(static_cast<const uint4*>(src), words, sink);
    CUDA_CHECK(cudaGetLastError());
  });
  std::printf(
      "\"copy\": {\"bytes\": %zu, \"median_ms\": %.4f, \"gb_per_s\": %.1f, "
      "\"counts\": \"bytes read + bytes written\"},\n"
      "\"read\": {\"bytes\": %zu, \"median_ms\": %.4f, \"gb_per_s\": %.1f},\n",
      bytes, copy_ms, 2.0 * static_cast<double>(bytes) / (copy_ms * 1e6), bytes, read_ms,
      static_cast<double>(bytes) / (read_ms * 1e6));
  CUDA_CHECK(cudaFree(src));
  CUDA_CHECK(cudaFree(dst));
  CUDA_CHECK(cudaFree(sink));
}

// y[M, N] = x[M, K] * W[N, K]^T, all row-major bf16, f32 accumulation: in cuBLAS's
// column-major terms y^T = W * x^T, i.e. op(A) = W^T of a K x N column-major array. Enough
// copies of W and x rotate that the timed runs read them from memory, not from L2.
void PrintGemm(const Shape& s, int reps, cublasHandle_t handle, size_t l2_bytes, bool last) {
  const size_t w_bytes = static_cast<size_t>(s.n * s.k) * 2;
  const size_t x_bytes = static_cast<size_t>(s.m * s.k) * 2;
  const size_t y_bytes = static_cast<size_t>(s.m * s.n) * 2;
  const size_t sets = std::clamp<size_t>((3 * l2_bytes) / (w_bytes + x_bytes) + 1, 1, 8);
  size_t free_bytes = 0, total_bytes = 0;
  CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  if (sets * (w_bytes + x_bytes) + y_bytes + (size_t{256} << 20) > free_bytes) {
    std::printf(
        "  {\"name\": \"%s\", \"m\": %lld, \"k\": %lld, \"n\": %lld, "
        "\"error\": \"does not fit in free device memory\"}%s\n",
        s.name.c_str(), static_cast<long long>(s.m), static_cast<long long>(s.k),
        static_cast<long long>(s.n), last ? "" : ",");
    return;
  }
  std::vector<__nv_bfloat16*> w(sets), x(sets);
  __nv_bfloat16* y = nullptr;
  for (size_t i = 0; i < sets; ++i) {
    CUDA_CHECK(cudaMalloc(&w[i], w_bytes));
    CUDA_CHECK(cudaMalloc(&x[i], x_bytes));
    FillRandom(w[i], s.n * s.k, 100 + i, 1.0F / std::sqrt(static_cast<float>(s.k)));
    FillRandom(x[i], s.m * s.k, 200 + i, 1.0F);
  }
  CUDA_CHECK(cudaMalloc(&y, y_bytes));
  const float alpha = 1.0F, beta = 0.0F;
  const double ms = TimeMedianMs(reps, [&](int rep) {
    const size_t i = static_cast<size_t>(rep) % sets;
    CUBLAS_CHECK(cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(s.n),
                              static_cast<int>(s.m), static_cast<int>(s.k), &alpha, w[i],
                              CUDA_R_16BF, static_cast<int>(s.k), x[i], CUDA_R_16BF,
                              static_cast<int>(s.k), &beta, y, CUDA_R_16BF, static_cast<int>(s.n),
                              CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  });
  const double flops =
      2.0 * static_cast<double>(s.m) * static_cast<double>(s.n) * static_cast<double>(s.k);
  std::printf(
      "  {\"name\": \"%s\", \"m\": %lld, \"k\": %lld, \"n\": %lld, \"median_ms\": %.4f, "
      "\"tflops\": %.1f, \"rotated_sets\": %zu}%s\n",
      s.name.c_str(), static_cast<long long>(s.m), static_cast<long long>(s.k),
      static_cast<long long>(s.n), ms, flops / (ms * 1e9), sets, last ? "" : ",");
  for (size_t i = 0; i < sets; ++i) {
    CUDA_CHECK(cudaFree(w[i]));
    CUDA_CHECK(cudaFree(x[i]));
  }
  CUDA_CHECK(cudaFree(y));
}

}  // namespace

int main(int argc, char** argv) {
  const Flags flags = ParseFlags(argc, argv);
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess || count == 0) {
    std::fprintf(stderr, "ringserve-gpu-roofline: no CUDA device visible (%s); skipping\n",
                 err != cudaSuccess ? cudaGetErrorString(err) : "0 devices");
    return 77;
  }
  if (flags.device < 0 || flags.device >= count) Usage("--device is out of range");
  CUDA_CHECK(cudaSetDevice(flags.device));
  cudaDeviceProp prop{};
  CUDA_CHECK(cudaGetDeviceProperties(&prop, flags.device));
  std::printf(
      "{\"device\": \"%s\", \"compute_capability\": \"%d.%d\", \"multiprocessors\": %d, "
      "\"l2_bytes\": %d, \"memory_bytes\": %zu,\n",
      prop.name, prop.major, prop.minor, prop.multiProcessorCount, prop.l2CacheSize,
      prop.totalGlobalMem);
  PrintBandwidth(flags);
  cublasHandle_t handle = nullptr;
  CUBLAS_CHECK(cublasCreate(&handle));
  std::printf("\"gemm_dtype\": \"bf16 in/out, f32 accumulate (cublasGemmEx)\",\n\"gemm\": [\n");
  for (size_t i = 0; i < flags.shapes.size(); ++i) {
    PrintGemm(flags.shapes[i], flags.reps, handle, static_cast<size_t>(prop.l2CacheSize),
              i + 1 == flags.shapes.size());
  }
  std::printf("]}\n");
  CUBLAS_CHECK(cublasDestroy(handle));
  return 0;
}
