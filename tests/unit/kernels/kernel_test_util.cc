#include "tests/unit/kernels/kernel_test_util.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <set>
#include <string>

#include "tests/support/block_encoding.h"

#ifdef RINGSERVE_HAVE_CUDA
#include "tests/unit/kernels/cuda_emu/cuda_emu_backend.h"
#endif

namespace ringserve::kernels::testing {

std::unique_ptr<Backend> MakeBackend(const std::string& variant) {
  BackendOptions options;
  std::string device = variant;
  if (variant == "cpu-blas") {
    device = "cpu";
    options.cpu_use_blas = true;
  } else if (variant.starts_with("cuda-emu") || variant.starts_with("cuda:0")) {
    // Suffixes: -tc (tensor-core attention), then -f16, -f32 or -simple (cuda:0 only).
    const bool emulated = variant.starts_with("cuda-emu");
    std::string suffix = variant.substr(emulated ? 8 : 6);
    if (suffix.starts_with("-tc")) {
      options.cuda_attention_kernel = AttentionKernel::kTensorCore;
      suffix = suffix.substr(3);
    }
    if (suffix == "-f16") options.cuda_activation_dtype = DType::kF16;
    if (suffix == "-f32") options.cuda_activation_dtype = DType::kF32;
    if (suffix == "-simple") options.cuda_simple_matmul = true;
    if (emulated) {
#ifdef RINGSERVE_HAVE_CUDA
      return MakeEmulatedCudaBackend(options.cuda_activation_dtype, options.cuda_attention_kernel);
#else
      return nullptr;
#endif
    }
    device = "cuda:0";
  }
  auto backend = CreateBackend(device, options);
  if (!backend.ok()) {
    // Printed once per variant: a skipped device case should say why.
    static std::set<std::string> reported;
    if (reported.insert(variant).second) {
      std::fprintf(stderr, "%s unavailable: %s\n", variant.c_str(),
                   backend.status().ToString().c_str());
    }
    return nullptr;
  }
  return *std::move(backend);
}

std::vector<std::string> BackendVariants() {
  return {"cpu",           "cpu-blas", "cuda:0",       "cuda:0-f16",  "cuda:0-f32",
          "cuda:0-simple", "cuda-emu", "cuda-emu-f16", "cuda-emu-f32"};
}

// The emulation runs the invariance suite in bf16 only: it is slow, and the dtypes share
// every index path (the op suite covers all three).
std::vector<std::string> InvariantBackendVariants() {
  return {"cpu",       "cuda:0",        "cuda:0-f16", "cuda:0-f32", "cuda:0-simple",
          "cuda:0-tc", "cuda:0-tc-f16", "cuda-emu",   "cuda-emu-tc"};
}

SoftmaxWeightRounding AttentionWeightRounding(const Backend& backend) {
  const bool tensor_cores = backend.attention_kernel() == AttentionKernel::kTensorCore;
  switch (tensor_cores ? backend.activation_dtype() : DType::kF32) {
    case DType::kF16:
      return {1.0 / 2048, 0x1p-25};  // weights below 2^-14 are f16 subnormals
    case DType::kBF16:
      return {1.0 / 256, 0};
    default:
      return {};
  }
}

std::vector<float> RoundTo(DType dtype, std::vector<float> values) {
  if (dtype != DType::kF32) values = Decode(dtype, Encode(dtype, values), values.size());
  return values;
}

double StoreRoundingError(DType dtype) {
  switch (dtype) {
    case DType::kF16:
      return 1.0 / 2048;
    case DType::kBF16:
      return 1.0 / 256;
    case DType::kF8E4M3:
      return 1.0 / 16;
    default:
      return 0;
  }
}

ActivationArray::ActivationArray(Backend& backend, const std::vector<float>& values)
    : ActivationArray(backend, values, backend.activation_dtype()) {}

ActivationArray::ActivationArray(Backend& backend, const std::vector<float>& values, DType dtype)
    : backend_(&backend),
      dtype_(dtype),
      host_(RoundTo(dtype_, values)),
      buffer_(*backend.Allocate(std::max<size_t>(1, DTypeBytes(dtype_, values.size())))) {
  const std::vector<uint8_t> bytes = Encode(dtype_, host_);
  if (!bytes.empty()) backend.CopyToDevice(buffer_.data(), bytes.data(), bytes.size());
}

std::vector<float> ActivationArray::Download() const {
  std::vector<uint8_t> bytes(DTypeBytes(dtype_, host_.size()));
  if (!bytes.empty()) backend_->CopyToHost(bytes.data(), buffer_.data(), bytes.size());
  return Decode(dtype_, bytes, host_.size());
}

std::vector<cpu::Isa> SupportedIsas() {
  std::vector<cpu::Isa> isas;
  for (const cpu::Isa isa : {cpu::Isa::kAvx2, cpu::Isa::kAvx512, cpu::Isa::kAvx512Vnni}) {
    if (cpu::IsaSupported(isa)) isas.push_back(isa);
  }
  return isas;
}

std::vector<float> RandomFloats(std::mt19937_64& rng, size_t count, float lo, float hi) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(count);
  for (float& f : v) f = dist(rng);
  return v;
}

std::vector<uint8_t> Encode(DType dtype, const std::vector<float>& values) {
  std::vector<uint8_t> out(DTypeBytes(dtype, values.size()));
  switch (dtype) {
    case DType::kF32:
      std::memcpy(out.data(), values.data(), out.size());
      break;
    case DType::kF16:
    case DType::kBF16:
      for (size_t i = 0; i < values.size(); ++i) {
        const uint16_t h =
            dtype == DType::kF16 ? FloatToHalf(values[i]) : FloatToBFloat16(values[i]);
        std::memcpy(out.data() + 2 * i, &h, 2);
      }
      break;
    case DType::kF8E4M3:
      for (size_t i = 0; i < values.size(); ++i) out[i] = FloatToFloat8E4M3(values[i]);
      break;
    case DType::kQ8_0:
    case DType::kQ4Affine:
    case DType::kQ5Affine:
    case DType::kIQ4:
    case DType::kQ6:
      return ringserve::testing::EncodeBlocks(dtype, values);
    case DType::kI32:
      break;
  }
  return out;
}

std::vector<float> Decode(DType dtype, const std::vector<uint8_t>& bytes, size_t count) {
  std::vector<float> out(count);
  ConvertToFloat(dtype, bytes.data(), count, out.data());
  return out;
}

std::vector<double> ActivationQuantizationBound(const std::vector<float>& x,
                                                const std::vector<float>& w, int64_t n, int64_t m,
                                                int64_t k) {
  std::vector<double> bound(static_cast<size_t>(n * m), 0.0);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t b = 0; b < k; b += 32) {
      double largest = 0;
      for (int64_t c = b; c < b + 32; ++c) {
        largest = std::max(largest, std::fabs(double{x[i * k + c]}));
      }
      for (int64_t j = 0; j < m; ++j) {
        double w_abs = 0;
        for (int64_t c = b; c < b + 32; ++c) w_abs += std::fabs(double{w[j * k + c]});
        bound[i * m + j] += largest / 127 / 2 * w_abs;
      }
    }
  }
  return bound;
}

void ReferenceMatMul(const std::vector<float>& x, const std::vector<float>& w, int64_t n, int64_t m,
                     int64_t k, std::vector<double>* y, std::vector<double>* mag) {
  y->assign(static_cast<size_t>(n * m), 0.0);
  mag->assign(static_cast<size_t>(n * m), 0.0);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < m; ++j) {
      double sum = 0;
      double abs_sum = 0;
      for (int64_t c = 0; c < k; ++c) {
        const double p = static_cast<double>(x[i * k + c]) * w[j * k + c];
        sum += p;
        abs_sum += std::fabs(p);
      }
      (*y)[i * m + j] = sum;
      (*mag)[i * m + j] = abs_sum;
    }
  }
}

PagedBatchHost BuildBatch(const std::vector<SeqSpec>& seqs, int block_size, int num_blocks,
                          std::mt19937_64& rng) {
  PagedBatchHost b;
  b.num_seqs = static_cast<int>(seqs.size());
  for (const SeqSpec& s : seqs) {
    b.max_blocks_per_seq =
        std::max(b.max_blocks_per_seq, (s.context_len + block_size - 1) / block_size);
    b.max_context_len = std::max(b.max_context_len, s.context_len);
  }
  // Blocks come from a shuffled pool, so tables are neither contiguous nor ordered.
  std::vector<int32_t> pool(num_blocks);
  std::iota(pool.begin(), pool.end(), 0);
  std::shuffle(pool.begin(), pool.end(), rng);
  size_t next = 0;
  b.block_tables.assign(static_cast<size_t>(b.num_seqs) * b.max_blocks_per_seq, -1);
  b.query_start.push_back(0);
  for (int s = 0; s < b.num_seqs; ++s) {
    const int blocks = (seqs[s].context_len + block_size - 1) / block_size;
    for (int i = 0; i < blocks; ++i) b.block_tables[s * b.max_blocks_per_seq + i] = pool.at(next++);
    for (int p = seqs[s].context_len - seqs[s].query_len; p < seqs[s].context_len; ++p) {
      b.positions.push_back(p);
      b.slots.push_back(b.block_tables[s * b.max_blocks_per_seq + p / block_size] * block_size +
                        p % block_size);
      b.token_seq.push_back(s);
    }
    b.query_start.push_back(static_cast<int32_t>(b.positions.size()));
    b.context_lens.push_back(seqs[s].context_len);
  }
  b.num_tokens = static_cast<int>(b.positions.size());
  return b;
}

PagedBatchHost SliceBatch(const PagedBatchHost& batch, int seq, int first, int count) {
  PagedBatchHost b;
  b.num_seqs = 1;
  b.max_blocks_per_seq = batch.max_blocks_per_seq;
  const auto table = static_cast<ptrdiff_t>(seq) * batch.max_blocks_per_seq;
  b.block_tables.assign(batch.block_tables.begin() + table,
                        batch.block_tables.begin() + table + batch.max_blocks_per_seq);
  const int begin = batch.query_start[seq] + first;
  for (int t = begin; t < begin + count; ++t) {
    b.positions.push_back(batch.positions[t]);
    b.slots.push_back(batch.slots[t]);
    b.token_seq.push_back(0);
  }
  b.num_tokens = count;
  b.query_start = {0, count};
  b.context_lens = {b.positions.back() + 1};
  b.max_context_len = b.context_lens[0];
  return b;
}

DeviceBatch::DeviceBatch(Backend& backend, const PagedBatchHost& host) {
  auto upload = [&](const std::vector<int32_t>& v) {
    arrays_.push_back(std::make_unique<DeviceArray<int32_t>>(backend, v));
    return arrays_.back()->data();
  };
  view_.num_tokens = host.num_tokens;
  view_.num_seqs = host.num_seqs;
  view_.max_blocks_per_seq = host.max_blocks_per_seq;
  view_.max_context_len = host.max_context_len;
  view_.positions = upload(host.positions);
  view_.slots = upload(host.slots);
  view_.token_seq = upload(host.token_seq);
  view_.query_start = upload(host.query_start);
  view_.context_lens = upload(host.context_lens);
  view_.block_tables = upload(host.block_tables);
}

}  // namespace ringserve::kernels::testing

#if defined(__SANITIZE_THREAD__)
// OpenBLAS (uninstrumented) hands work to its own threads through spin flags TSan cannot
// see, so every threaded sgemm looks like a race on its operands. Only the cpu-blas
// variant calls it; our own pool is fully instrumented and not suppressed.
extern "C" const char* __tsan_default_suppressions() { return "race:libopenblas.so\n"; }
#endif
