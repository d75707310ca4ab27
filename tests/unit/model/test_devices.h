// The devices the model and engine tests run on, and what each is held to: the CPU; the first
// GPU in f32 and in bf16 (cases skip at run time without one); and the CUDA backend's own
// sources on the CPU emulation (tests/unit/kernels/cuda_emu) in f32 and bf16, which run in
// every build with the CUDA toolkit except under ASan/TSan. Without the toolkit only the CPU.
#ifndef RINGSERVE_TESTS_UNIT_MODEL_TEST_DEVICES_H_
#define RINGSERVE_TESTS_UNIT_MODEL_TEST_DEVICES_H_

#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/backend.h"
#include "kernels/dtype.h"

namespace ringserve::testing {

struct TestDevice {
  std::string name;  // a test-name suffix: cpu_f32, cuda0_bf16, emu_f32, ...
  kernels::DType activation_dtype = kernels::DType::kF32;
  // Logits agree with an f32 (or float64) reference when LogitsError <= this.
  double logits_tolerance = 0;
  // The CUDA sources on the CPU emulation: thousands of times slower than the CPU backend,
  // so suites give these devices their smaller cases.
  bool emulated = false;
  // The backend, or why this build or machine cannot run it (the test then skips).
  std::function<absl::StatusOr<std::unique_ptr<kernels::Backend>>()> create;
  // The models' KV cache type (ModelOptions::kv_dtype); unset = the activation dtype. Only
  // the suites that take NarrowKvCacheDevices() read it.
  std::optional<kernels::DType> kv_dtype;

  // f32 activations: greedy tokens must equal the f32 references'; in bf16 a near-tie
  // between two logits may legitimately flip, so only logits are compared.
  bool exact_tokens() const { return activation_dtype == kernels::DType::kF32; }
};

std::vector<TestDevice> TestDevices();
// The CPU with its KV cache in f16, bf16 and fp8 (E4M3), and the CUDA emulation in bf16 with
// an fp8 cache (K and V rounded once as they are written).
std::vector<TestDevice> NarrowKvCacheDevices();
// The TestDevices for which keep(device) holds.
std::vector<TestDevice> TestDevicesWhere(const std::function<bool(const TestDevice&)>& keep);

// max_i |got_i - want_i| / max_i |want_i|: the error relative to the largest logit, so
// logits near zero are not held to a tighter absolute bound than the ones that decide
// sampling. Infinite when the sizes differ or want is all zero.
double LogitsError(std::span<const float> got, std::span<const double> want);
double LogitsError(std::span<const float> got, std::span<const float> want);

// gtest prints a TestDevice parameter as its name.
void PrintTo(const TestDevice& device, std::ostream* os);

}  // namespace ringserve::testing

#endif  // RINGSERVE_TESTS_UNIT_MODEL_TEST_DEVICES_H_
