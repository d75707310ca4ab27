// Helpers for the kernel op tests: backends under test, device arrays, random data, the
// paged-attention batch builder and float64 references shared by the test files.
#ifndef RINGSERVE_TESTS_UNIT_KERNELS_KERNEL_TEST_UTIL_H_
#define RINGSERVE_TESTS_UNIT_KERNELS_KERNEL_TEST_UTIL_H_

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "kernels/backend.h"
#include "kernels/cpu/cpu_isa.h"

namespace ringserve::kernels::testing {

// Every backend variant the suites run on: "cpu", "cpu-blas" (cpu_use_blas), "cuda:0" (bf16
// activations, cuBLASLt), "cuda:0-f16", "cuda:0-f32" and "cuda:0-simple" (bf16, the simple
// MatMul kernel), and "cuda-emu", "cuda-emu-f16", "cuda-emu-f32": the CUDA backend's sources
// on the CPU emulation (tests/unit/kernels/cuda_emu). "-tc" after the device
// ("cuda:0-tc-f16", "cuda-emu-tc") selects the tensor-core attention (cuda_attention_kernel).
// Returns nullptr when this build or machine lacks it (the test then skips).
std::unique_ptr<Backend> MakeBackend(const std::string& variant);
std::vector<std::string> BackendVariants();
// The variants whose results must be batch invariant (all but cpu-blas).
std::vector<std::string> InvariantBackendVariants();

// A device copy of a host vector, read back with Download.
template <typename T>
class DeviceArray {
 public:
  DeviceArray(Backend& backend, const std::vector<T>& host)
      : backend_(&backend), size_(host.size()) {
    buffer_ = *backend.Allocate(std::max<size_t>(1, host.size()) * sizeof(T));
    if (!host.empty()) backend.CopyToDevice(buffer_.data(), host.data(), host.size() * sizeof(T));
  }
  T* data() const { return buffer_.as<T>(); }
  std::vector<T> Download() const {
    std::vector<T> host(size_);
    if (size_ > 0) backend_->CopyToHost(host.data(), buffer_.data(), size_ * sizeof(T));
    return host;
  }
  Tensor AsTensor(int64_t rows, int64_t cols) const {
    return Tensor::Of(buffer_.data(), DType::kF32, rows, cols);
  }

 private:
  Backend* backend_;
  size_t size_;
  DeviceBuffer buffer_;
};

std::vector<float> RandomFloats(std::mt19937_64& rng, size_t count, float lo = -1, float hi = 1);

// Every CPU ISA this machine runs (cpu_isa.h), the baseline first: the CPU kernels' tests
// hold each to the same bits.
std::vector<cpu::Isa> SupportedIsas();

// The values a tensor of activation dtype `dtype` holds for `values` (f16/bf16: rounded to
// nearest even, as the devices round).
std::vector<float> RoundTo(DType dtype, std::vector<float> values);
// Relative rounding error of storing a result in `dtype`: 0 for f32 (whose tolerances
// already cover it), 2^-11 for f16, 2^-8 for bf16. Tolerances add a multiple of it.
double StoreRoundingError(DType dtype);

// How a backend's attention rounds each softmax weight before it multiplies V: the tensor-core
// kernel rounds them to the activation dtype (relative error `relative`, plus `absolute`
// where small weights fall into f16's subnormals); the other kernels do not round them.
struct SoftmaxWeightRounding {
  double relative = 0;
  double absolute = 0;
};
SoftmaxWeightRounding AttentionWeightRounding(const Backend& backend);

// An activation tensor in the backend's activation dtype, filled from f32 values and read
// back as f32. host() holds the values as stored (what a reference must use).
class ActivationArray {
 public:
  ActivationArray(Backend& backend, const std::vector<float>& values);
  // In `dtype` instead: f32 for the residual stream a narrower backend may keep wide.
  ActivationArray(Backend& backend, const std::vector<float>& values, DType dtype);
  void* data() const { return buffer_.data(); }
  DType dtype() const { return dtype_; }
  const std::vector<float>& host() const { return host_; }
  Tensor AsTensor(int64_t rows, int64_t cols) const {
    return Tensor::Of(buffer_.data(), dtype_, rows, cols);
  }
  std::vector<float> Download() const;

 private:
  Backend* backend_;
  DType dtype_;
  std::vector<float> host_;
  DeviceBuffer buffer_;
};

// Encodes f32 values as `dtype` (f32, f16, bf16, or a block dtype as
// tests/support/block_encoding.h writes it).
std::vector<uint8_t> Encode(DType dtype, const std::vector<float>& values);
// The values a weight of `dtype` really holds (what a reference must use).
std::vector<float> Decode(DType dtype, const std::vector<uint8_t>& bytes, size_t count);

// y[n, m] = x[n, k] w[m, k]^T in float64, plus the per-element magnitude sum |x||w| that
// scales the tolerance.
// How far x's quantization to int8 per 32 values (kernels/cpu/quant_matmul.h) may move each
// y[i, j] of x [n, k] times W^T [m, k]: half a block's scale (largest |x| / 127) per value,
// times the block's sum of |w|.
std::vector<double> ActivationQuantizationBound(const std::vector<float>& x,
                                                const std::vector<float>& w, int64_t n, int64_t m,
                                                int64_t k);

void ReferenceMatMul(const std::vector<float>& x, const std::vector<float>& w, int64_t n, int64_t m,
                     int64_t k, std::vector<double>* y, std::vector<double>* mag);

// A paged-attention batch: sequences with their context and query lengths, block tables
// drawn from a shuffled pool of blocks, token rows in sequence order.
struct SeqSpec {
  int context_len;
  int query_len;  // the last query_len positions of the context are this pass's tokens
};
struct PagedBatchHost {
  std::vector<int32_t> positions, slots, token_seq, query_start, context_lens, block_tables;
  int num_tokens = 0;
  int num_seqs = 0;
  int max_blocks_per_seq = 0;
  int max_context_len = 0;
};
PagedBatchHost BuildBatch(const std::vector<SeqSpec>& seqs, int block_size, int num_blocks,
                          std::mt19937_64& rng);
// The same batch with each sequence keeping its own block table but only tokens
// [first, first + count) of its query (used to replay chunked prefill).
PagedBatchHost SliceBatch(const PagedBatchHost& batch, int seq, int first, int count);

// Device copies of a PagedBatchHost; view() is valid while this lives.
class DeviceBatch {
 public:
  DeviceBatch(Backend& backend, const PagedBatchHost& host);
  AttentionBatch view() const { return view_; }

 private:
  std::vector<std::unique_ptr<DeviceArray<int32_t>>> arrays_;
  AttentionBatch view_;
};

}  // namespace ringserve::kernels::testing

#endif  // RINGSERVE_TESTS_UNIT_KERNELS_KERNEL_TEST_UTIL_H_
