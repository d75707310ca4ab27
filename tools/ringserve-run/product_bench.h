// `ringserve-run bench --decode-batch B,...`: each of the model's weight products alone,
// through Backend::MatMul at each decode batch size, with the weight bytes it reads. A decode
// step that falls short of the memory roofline then says which product does: a GPU's GEMM
// library picks one algorithm per product, chosen for larger batches, and a product whose
// algorithm launches few thread blocks at one row reads its weights slowly.
#ifndef RINGSERVE_TOOLS_RINGSERVE_RUN_PRODUCT_BENCH_H_
#define RINGSERVE_TOOLS_RINGSERVE_RUN_PRODUCT_BENCH_H_

#include <span>

#include "absl/status/statusor.h"
#include "kernels/backend.h"
#include "nlohmann/json.hpp"
#include "worker/model/model_config.h"

namespace ringserve::tools {

// [{"product", "rows" (the weight's), "cols", "out_dtype", "batch", "algo_rows",
// "us_median", "weight_bytes", "gb_per_s", "tflops"}] for wqkv, wo, w_gate_up, w_down and
// (with_head) the head at every batch size, each the median of `reps` products. Weights are
// made on the device in enough copies (cycled) that one product's weights never stay in a
// GPU's L2 for the next.
// With `algo_rows` listed, every product and batch is timed once per entry, MatMul's
// algorithm chosen for that many rows (Backend::SetMatMulAlgoRows: FAILED_PRECONDITION where
// the backend has no choice); the backend's own choice is set again before returning,
// whatever happened. Without, "algo_rows" is the backend's (0 on the CPU).
absl::StatusOr<nlohmann::json> TimeProducts(kernels::Backend& backend,
                                            const model::ModelConfig& config,
                                            std::span<const int> batches, int reps, bool with_head,
                                            std::span<const int> algo_rows = {});

}  // namespace ringserve::tools

#endif  // RINGSERVE_TOOLS_RINGSERVE_RUN_PRODUCT_BENCH_H_
