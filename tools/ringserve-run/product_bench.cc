#include "tools/ringserve-run/product_bench.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "common/status_macros.h"
#include "kernels/random_weights.h"
#include "worker/model/gguf_writer.h"

namespace ringserve::tools {
namespace {

using Clock = std::chrono::steady_clock;

struct Product {
  std::string name;
  int64_t rows;  // the weight's: output features
  int64_t cols;  // input features
  bool f32_out;  // LlamaModel writes these in f32 (the residual stream, q/k/v, the logits)
};

std::vector<Product> ModelProducts(const model::ModelConfig& c) {
  const int64_t q = int64_t{c.num_heads} * c.head_dim;
  const int64_t kv = int64_t{c.num_kv_heads} * c.head_dim;
  return {{"wqkv", q + 2 * kv, c.dim, true},
          {"wo", c.dim, q, true},
          {"w_gate_up", 2 * int64_t{c.hidden_dim}, c.dim, false},
          {"w_down", c.dim, c.hidden_dim, true},
          {"head", c.vocab_size, c.dim, true}};
}

// Copies cycled so that the weights a product reads were not read by the one before: over a
// GPU's L2 (50 MiB on an H100 or H200) however small the product.
constexpr size_t kCycledBytes = size_t{256} << 20;
constexpr int kMaxCopies = 8;

// `count` activations uniform in [-1, 1), in `dtype`: a GPU's tensor cores draw less power
// on zeros and may clock higher than on real data (cuBLAS's rates in ringserve-gpu-roofline
// come from random data too).
absl::StatusOr<kernels::DeviceBuffer> RandomActivations(kernels::Backend& backend,
                                                        kernels::DType dtype, size_t count) {
  std::vector<float> values(count);
  kernels::FillRandomUniform(7, 1.0F, values.data(), static_cast<int64_t>(count));
  const std::vector<uint8_t> bytes = model::EncodeTensorData(dtype, values);
  RS_ASSIGN_OR_RETURN(kernels::DeviceBuffer x, backend.Allocate(bytes.size()));
  backend.CopyToDevice(x.data(), bytes.data(), bytes.size());
  return x;
}

}  // namespace

absl::StatusOr<nlohmann::json> TimeProducts(kernels::Backend& backend,
                                            const model::ModelConfig& config,
                                            std::span<const int> batches, int reps, bool with_head,
                                            std::span<const int> algo_rows) {
  nlohmann::json out = nlohmann::json::array();
  if (batches.empty()) return out;
  const int64_t configured_rows = backend.matmul_algo_rows();
  const absl::Cleanup restore = [&backend, configured_rows, sweep = !algo_rows.empty()] {
    if (sweep && configured_rows > 0) backend.SetMatMulAlgoRows(configured_rows).IgnoreError();
  };
  const std::vector<int64_t> rows_choices =
      algo_rows.empty() ? std::vector<int64_t>{configured_rows}
                        : std::vector<int64_t>(algo_rows.begin(), algo_rows.end());
  const int max_batch = *std::max_element(batches.begin(), batches.end());
  const kernels::DType dtype = backend.activation_dtype();
  for (const Product& p : ModelProducts(config)) {
    if (p.name == "head" && !with_head) continue;
    const size_t weight_bytes = kernels::DTypeBytes(dtype, static_cast<size_t>(p.rows * p.cols));
    const int copies =
        static_cast<int>(std::clamp<size_t>(kCycledBytes / weight_bytes + 1, 1, kMaxCopies));
    std::vector<kernels::Weight> weights;
    for (int i = 0; i < copies; ++i) {
      const kernels::RandomPart part{.state = static_cast<uint64_t>(i + 1), .rows = p.rows};
      RS_ASSIGN_OR_RETURN(kernels::Weight w, backend.RandomWeight({&part, 1}, p.cols, 0.02F));
      weights.push_back(std::move(w));
    }
    const kernels::DType out_dtype = p.f32_out ? kernels::DType::kF32 : dtype;
    RS_ASSIGN_OR_RETURN(kernels::DeviceBuffer x,
                        RandomActivations(backend, dtype, static_cast<size_t>(max_batch * p.cols)));
    RS_ASSIGN_OR_RETURN(kernels::DeviceBuffer y,
                        backend.Allocate(kernels::DTypeBytes(out_dtype, max_batch * p.rows)));
    for (const int64_t rows_choice : rows_choices) {
      if (!algo_rows.empty()) RS_RETURN_IF_ERROR(backend.SetMatMulAlgoRows(rows_choice));
      for (const int batch : batches) {
        const auto run = [&](int i) {
          backend.MatMul(kernels::Tensor::Of(x.data(), dtype, batch, p.cols),
                         weights[static_cast<size_t>(i % copies)],
                         kernels::Tensor::Of(y.data(), out_dtype, batch, p.rows));
        };
        for (int i = 0; i < copies + 2; ++i) run(i);  // plans made, clocks up
        backend.Synchronize();
        // Back to back, one wait: a wait per product would time the wait as much.
        std::vector<double> per_product_us;
        for (int rep = 0; rep < 3; ++rep) {
          const Clock::time_point start = Clock::now();
          for (int i = 0; i < reps; ++i) run(i);
          backend.Synchronize();
          per_product_us.push_back(
              std::chrono::duration<double, std::micro>(Clock::now() - start).count() / reps);
        }
        std::sort(per_product_us.begin(), per_product_us.end());
        const double us = per_product_us[1];
        out.push_back(
            {{"product", p.name},
             {"rows", p.rows},
             {"cols", p.cols},
             {"out_dtype", std::string(kernels::DTypeName(out_dtype))},
             {"batch", batch},
             {"algo_rows", rows_choice},
             {"us_median", us},
             {"weight_bytes", weight_bytes},
             {"gb_per_s", static_cast<double>(weight_bytes) / (us * 1e3)},
             {"tflops", 2.0 * batch * static_cast<double>(p.rows * p.cols) / (us * 1e6)}});
      }
    }
  }
  return out;
}

}  // namespace ringserve::tools
