#include "tests/unit/model/test_devices.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "absl/status/status.h"
#ifdef RINGSERVE_HAVE_CUDA
#include "tests/unit/kernels/cuda_emu/cuda_emu_backend.h"
#endif

namespace ringserve::testing {
namespace {

using kernels::DType;

// f32 on every device: the float64 reference's logits differ by f32 rounding only (measured
// on the forward reference models: at most 2.5e-6 of the largest logit on the CPU and the
// emulation), so 2e-4 (the bound these tests always had, then taken of 1 + max |logit|)
// leaves ample room for a GPU's different summation orders.
constexpr double kF32LogitsTolerance = 2e-4;
// bf16: every activation, weight and K/V value is rounded to 8 significant bits (2^-9
// relative), which compounds over the layers; the GPU acceptance criterion.
constexpr double kBF16LogitsTolerance = 2e-2;

TestDevice Cpu() {
  return {"cpu_f32",
          DType::kF32,
          kF32LogitsTolerance,
          false,
          [] { return kernels::CreateBackend("cpu"); },
          std::nullopt};
}

// A 16-bit cache rounds every K and V value once, and that error alone reaches the logits:
// f16 keeps 3 more bits than bf16, so an f16 cache gets bf16's tolerance / 4 (measured on the
// forward reference models: at most 2.4e-3 with f16, 1.5e-2 with bf16).
constexpr double kF16KvLogitsTolerance = kBF16LogitsTolerance / 4;
// E4M3 keeps 3 mantissa bits, 4 fewer than bf16: measured at 0.06-0.41 (CPU) and 0.07-0.44
// (the CUDA emulation in bf16) of the largest logit on the forward reference models (random weights
// that make attention sharp; stories260K's perplexity on a story moves from 2.388 to 2.441).
constexpr double kFp8KvLogitsTolerance = 0.6;

#ifdef RINGSERVE_HAVE_CUDA
double ToleranceFor(DType dtype) {
  return dtype == DType::kF32 ? kF32LogitsTolerance : kBF16LogitsTolerance;
}

TestDevice Cuda(DType dtype, std::string name) {
  return {std::move(name),
          dtype,
          ToleranceFor(dtype),
          false,
          [dtype] {
            kernels::BackendOptions options;
            options.cuda_activation_dtype = dtype;
            return kernels::CreateBackend("cuda:0", options);
          },
          std::nullopt};
}

TestDevice Emulated(DType dtype, std::string name) {
  return {std::move(name),
          dtype,
          ToleranceFor(dtype),
          true,
          [dtype]() -> absl::StatusOr<std::unique_ptr<kernels::Backend>> {
            auto backend = kernels::testing::MakeEmulatedCudaBackend(dtype);
            if (backend == nullptr) {
              return absl::FailedPreconditionError(
                  "the CUDA emulation needs x86-64 and a build without ASan/TSan");
            }
            return backend;
          },
          std::nullopt};
}
#endif

template <typename T>
double MaxRelativeError(std::span<const float> got, std::span<const T> want) {
  if (got.size() != want.size()) return std::numeric_limits<double>::infinity();
  double max_want = 0, max_diff = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    max_want = std::max(max_want, std::fabs(static_cast<double>(want[i])));
    const double diff = std::fabs(static_cast<double>(got[i]) - static_cast<double>(want[i]));
    max_diff =
        std::isnan(diff) ? std::numeric_limits<double>::infinity() : std::max(max_diff, diff);
  }
  return max_want > 0 ? max_diff / max_want : std::numeric_limits<double>::infinity();
}

}  // namespace

std::vector<TestDevice> TestDevices() {
  std::vector<TestDevice> devices = {Cpu()};
#ifdef RINGSERVE_HAVE_CUDA
  devices.push_back(Cuda(DType::kF32, "cuda0_f32"));
  devices.push_back(Cuda(DType::kBF16, "cuda0_bf16"));
  devices.push_back(Emulated(DType::kF32, "emu_f32"));
  devices.push_back(Emulated(DType::kBF16, "emu_bf16"));
#endif
  return devices;
}

std::vector<TestDevice> NarrowKvCacheDevices() {
  TestDevice f16 = Cpu();
  f16.name = "cpu_kvf16";
  f16.logits_tolerance = kF16KvLogitsTolerance;
  f16.kv_dtype = DType::kF16;
  TestDevice bf16 = Cpu();
  bf16.name = "cpu_kvbf16";
  bf16.logits_tolerance = kBF16LogitsTolerance;
  bf16.kv_dtype = DType::kBF16;
  TestDevice fp8 = Cpu();
  fp8.name = "cpu_kvfp8";
  fp8.logits_tolerance = kFp8KvLogitsTolerance;
  fp8.kv_dtype = DType::kF8E4M3;
  std::vector<TestDevice> devices = {f16, bf16, fp8};
#ifdef RINGSERVE_HAVE_CUDA
  TestDevice emulated = Emulated(DType::kBF16, "emu_bf16_kvfp8");
  emulated.logits_tolerance = kFp8KvLogitsTolerance;
  emulated.kv_dtype = DType::kF8E4M3;
  devices.push_back(emulated);
#endif
  return devices;
}

std::vector<TestDevice> TestDevicesWhere(const std::function<bool(const TestDevice&)>& keep) {
  std::vector<TestDevice> devices = TestDevices();
  std::erase_if(devices, [&](const TestDevice& d) { return !keep(d); });
  return devices;
}

double LogitsError(std::span<const float> got, std::span<const double> want) {
  return MaxRelativeError(got, want);
}

double LogitsError(std::span<const float> got, std::span<const float> want) {
  return MaxRelativeError(got, want);
}

void PrintTo(const TestDevice& device, std::ostream* os) { *os << device.name; }

}  // namespace ringserve::testing
