// Every backend op against a float64 reference, one table-driven suite over
// (op, shape, dtype) x backend. Backends absent from this build or machine skip.
#include <algorithm>
#include <cmath>
#include <functional>
#include <iterator>
#include <limits>
#include <numeric>
#include <ostream>
#include <random>
#include <span>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/kernels/kernel_test_util.h"

namespace ringserve::kernels::testing {
namespace {

using Check = std::function<void(Backend&, std::mt19937_64&)>;
struct OpCase {
  std::string name;
  Check check;
};
// Names the case in gtest output instead of dumping its bytes.
void PrintTo(const OpCase& op, std::ostream* os) { *os << op.name; }

// Fails with the first few mismatches when |got - want| > tol (per element).
void ExpectClose(const std::vector<float>& got, const std::vector<double>& want,
                 const std::function<double(size_t)>& tol, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  int reported = 0;
  size_t failures = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double err = std::fabs(static_cast<double>(got[i]) - want[i]);
    if (!(err <= tol(i))) {
      ++failures;
      if (reported++ < 5)
        ADD_FAILURE() << what << "[" << i << "]: got " << got[i] << " want " << want[i] << " tol "
                      << tol(i);
    }
  }
  EXPECT_EQ(failures, 0U) << what << ": " << failures << " of " << got.size()
                          << " out of tolerance";
}

std::function<double(size_t)> RelTol(const std::vector<double>& want, double rel, double abs) {
  return [&want, rel, abs](size_t i) { return rel * std::fabs(want[i]) + abs; };
}

// ---- MatMul: x [n, k] (row stride k + pad) times W^T into a column slice of y ----

// `f32_out`: y is f32 whatever the activation dtype (the logits product).
void CheckMatMul(Backend& b, std::mt19937_64& rng, DType dtype, int64_t n, int64_t m, int64_t k,
                 int64_t pad, bool f32_out = false) {
  const DType act = b.activation_dtype();
  const std::vector<uint8_t> w_bytes = Encode(dtype, RandomFloats(rng, m * k));
  if (!b.TakesWeightDType(dtype)) {  // loaders give it Q8_0 instead; it says no, it never crashes
    EXPECT_EQ(b.UploadWeight(dtype, m, k, w_bytes.data()).status().code(),
              absl::StatusCode::kInvalidArgument);
    return;
  }
  // The backend stores weights in its activation dtype.
  const std::vector<float> w_ref = RoundTo(act, Decode(dtype, w_bytes, m * k));
  const std::vector<float> x = RoundTo(act, RandomFloats(rng, n * k));
  std::vector<float> x_strided(n * (k + pad), 7.0F);
  for (int64_t i = 0; i < n; ++i) std::copy_n(&x[i * k], k, &x_strided[i * (k + pad)]);
  auto w = b.UploadWeight(dtype, m, k, w_bytes.data());
  ASSERT_TRUE(w.ok()) << w.status();
  ActivationArray xd(b, x_strided);
  const int64_t y_width = m + 2 * pad;
  const std::vector<float> y_init(n * y_width, -3.0F);
  ActivationArray yd(b, y_init);
  DeviceArray<float> yd_f32(b, y_init);
  Tensor xt{xd.data(), act, n, k, k + pad};
  const Tensor yt = f32_out ? yd_f32.AsTensor(n, y_width) : yd.AsTensor(n, y_width);
  b.MatMul(xt, *w, yt.Columns(pad, m));
  const std::vector<float> y_all = f32_out ? yd_f32.Download() : yd.Download();
  std::vector<float> y(n * m);
  for (int64_t i = 0; i < n; ++i) {
    std::copy_n(&y_all[i * y_width + pad], m, &y[i * m]);
    for (int64_t j = 0; j < pad; ++j) ASSERT_EQ(y_all[i * y_width + j], -3.0F) << "wrote outside y";
  }
  std::vector<double> want, mag;
  ReferenceMatMul(x, w_ref, n, m, k, &want, &mag);
  // f16/bf16 products may accumulate on tensor cores, which round more coarsely than an
  // f32 FMA chain; a rounded output adds its own error.
  const double accumulate = act == DType::kF32 ? 1e-5 : 1e-4;
  const double store = f32_out ? 0 : 2 * StoreRoundingError(act);
  const std::vector<double> quantization = b.name() == "cpu" && IsBlockDType(w->dtype)
                                               ? ActivationQuantizationBound(x, w_ref, n, m, k)
                                               : std::vector<double>(want.size(), 0.0);
  ExpectClose(
      y, want,
      [&](size_t i) {
        return accumulate * mag[i] + store * std::fabs(want[i]) + quantization[i] + 1e-6;
      },
      "MatMul");
}

// ---- EmbeddingGather ----
// With `wide`, the output (the residual stream) is f32 whatever the activation dtype, as
// LlamaModel keeps it; likewise the residual and delta below.
DType StreamDtype(const Backend& b, bool wide) { return wide ? DType::kF32 : b.activation_dtype(); }

void CheckEmbedding(Backend& b, std::mt19937_64& rng, DType dtype, int64_t rows, int64_t cols,
                    bool wide = false) {
  const std::vector<uint8_t> bytes = Encode(dtype, RandomFloats(rng, rows * cols));
  if (!b.TakesWeightDType(dtype)) {
    EXPECT_EQ(b.UploadWeight(dtype, rows, cols, bytes.data()).status().code(),
              absl::StatusCode::kInvalidArgument);
    return;
  }
  const std::vector<float> table = RoundTo(b.activation_dtype(), Decode(dtype, bytes, rows * cols));
  auto w = b.UploadWeight(dtype, rows, cols, bytes.data());
  ASSERT_TRUE(w.ok()) << w.status();
  const std::vector<int32_t> ids = {static_cast<int32_t>(rows - 1), 0, 3, 3,
                                    static_cast<int32_t>(rows / 2), 1};
  DeviceArray<int32_t> ids_d(b, ids);
  ActivationArray out(b, std::vector<float>(ids.size() * cols), StreamDtype(b, wide));
  b.EmbeddingGather(*w, ids_d.data(), out.AsTensor(static_cast<int64_t>(ids.size()), cols));
  const std::vector<float> got = out.Download();
  for (size_t i = 0; i < ids.size(); ++i) {
    for (int64_t c = 0; c < cols; ++c)
      ASSERT_EQ(got[i * cols + c], table[ids[i] * cols + c]) << i << "," << c;
  }
}

// ---- RmsNorm / AddRmsNorm ----
std::vector<double> ReferenceRmsNorm(const std::vector<float>& x, const std::vector<float>& w,
                                     int64_t rows, int64_t cols, double eps) {
  std::vector<double> out(rows * cols);
  for (int64_t i = 0; i < rows; ++i) {
    double ss = 0;
    for (int64_t c = 0; c < cols; ++c) ss += static_cast<double>(x[i * cols + c]) * x[i * cols + c];
    const double scale = 1.0 / std::sqrt(ss / cols + eps);
    for (int64_t c = 0; c < cols; ++c) out[i * cols + c] = x[i * cols + c] * scale * w[c];
  }
  return out;
}

void CheckRmsNorm(Backend& b, std::mt19937_64& rng, int64_t rows, int64_t cols, bool fused,
                  bool wide = false) {
  const float eps = 1e-5F;
  const DType act = b.activation_dtype();
  const DType stream = StreamDtype(b, wide);
  std::vector<float> x = RoundTo(stream, RandomFloats(rng, rows * cols, -2, 2));
  const std::vector<float> delta = RoundTo(stream, RandomFloats(rng, rows * cols));
  const std::vector<float> gain_f32 = RandomFloats(rng, cols, 0.5, 1.5);
  const std::vector<float> gain = RoundTo(act, gain_f32);  // as the backend stores it
  auto w = b.UploadWeight(DType::kF32, 1, cols, gain_f32.data());
  ASSERT_TRUE(w.ok()) << w.status();
  ActivationArray xd(b, x, stream), dd(b, delta, stream), out(b, std::vector<float>(rows * cols));
  if (fused) {
    b.AddRmsNorm(xd.AsTensor(rows, cols), dd.AsTensor(rows, cols), *w, eps,
                 out.AsTensor(rows, cols));
    for (size_t i = 0; i < x.size(); ++i) x[i] += delta[i];  // f32 add, then stored rounded
    x = RoundTo(stream, x);
    EXPECT_EQ(xd.Download(), x) << "residual stream";
  } else {
    b.RmsNorm(xd.AsTensor(rows, cols), *w, eps, out.AsTensor(rows, cols));
  }
  const std::vector<double> want = ReferenceRmsNorm(x, gain, rows, cols, eps);
  ExpectClose(out.Download(), want, RelTol(want, 1e-5 + 2 * StoreRoundingError(act), 1e-6),
              fused ? "AddRmsNorm" : "RmsNorm");
}

// ---- AddBias: the f32 Q/K/V projections plus a bias stored as the backend stores weights ----
void CheckAddBias(Backend& b, std::mt19937_64& rng, int64_t rows, int64_t cols) {
  const std::vector<float> x = RandomFloats(rng, rows * cols, -4, 4);
  const std::vector<float> bias_f32 = RandomFloats(rng, cols, -2, 2);
  const std::vector<float> bias = RoundTo(b.activation_dtype(), bias_f32);
  auto w = b.UploadWeight(DType::kF32, 1, cols, bias_f32.data());
  ASSERT_TRUE(w.ok()) << w.status();
  ActivationArray xd(b, x, DType::kF32);
  b.AddBias(xd.AsTensor(rows, cols), *w);
  std::vector<double> want(x.size());
  for (size_t i = 0; i < x.size(); ++i) want[i] = double{x[i]} + bias[i % cols];
  // One f32 rounding of the sum.
  ExpectClose(xd.Download(), want, RelTol(want, 1e-7, 1e-7), "AddBias");
}

// ---- HeadRmsNorm: Qwen3's per-head Q/K norms, in place over the f32 projections ----
void CheckHeadRmsNorm(Backend& b, std::mt19937_64& rng, int64_t rows, int64_t heads,
                      int64_t head_dim) {
  const float eps = 1e-6F;
  const int64_t cols = heads * head_dim;
  const std::vector<float> x = RandomFloats(rng, rows * cols, -30, 30);
  const std::vector<float> gain_f32 = RandomFloats(rng, head_dim, 0.5, 1.5);
  const std::vector<float> gain = RoundTo(b.activation_dtype(), gain_f32);
  auto w = b.UploadWeight(DType::kF32, 1, head_dim, gain_f32.data());
  ASSERT_TRUE(w.ok()) << w.status();
  ActivationArray xd(b, x, DType::kF32);
  b.HeadRmsNorm(xd.AsTensor(rows, cols), head_dim, *w, eps);
  // Each head is a row of its own to the plain norm.
  const std::vector<double> want = ReferenceRmsNorm(x, gain, rows * heads, head_dim, eps);
  ExpectClose(xd.Download(), want, RelTol(want, 1e-5, 1e-6), "HeadRmsNorm");
}

// ---- AddLora: each row's adapter slot (or none) adds (x A^T) B^T into a column slice ----
// `wide`: y is f32 (the q/k/v and down projections' outputs) whatever the activation dtype.
// `run` > 0: rows take the slots (none first) in runs of that many, as prefill chunks do, so
// that groups of neighbouring rows share an adapter, whole or in part; 0: each row its own.
void CheckAddLora(Backend& b, std::mt19937_64& rng, int64_t rows, int64_t in, int64_t out, int rank,
                  int slots, bool wide, int run) {
  const DType act = b.activation_dtype();
  const std::vector<float> x = RoundTo(act, RandomFloats(rng, rows * in));
  const std::vector<float> a = RoundTo(act, RandomFloats(rng, int64_t{slots} * rank * in));
  const std::vector<float> b_t = RoundTo(act, RandomFloats(rng, int64_t{slots} * rank * out));
  std::vector<int32_t> row_slots(rows);
  std::uniform_int_distribution<int32_t> pick(-1, slots - 1);
  for (int32_t& s : row_slots) s = pick(rng);
  row_slots[0] = slots - 1;
  for (int64_t i = 0; run > 0 && i < rows; ++i) {
    row_slots[i] = static_cast<int32_t>(slots - 1 - (i / run) % (slots + 1));
  }
  const int64_t y_width = out + 3;  // the op writes a column slice
  const std::vector<float> y0 =
      RoundTo(wide ? DType::kF32 : act, RandomFloats(rng, rows * y_width, -4, 4));
  ActivationArray xd(b, x), ad(b, a), bd(b, b_t), yd(b, y0, StreamDtype(b, wide));
  DeviceArray<int32_t> slots_d(b, row_slots);
  DeviceArray<float> scratch(b, std::vector<float>(rows * rank));
  const LoraStack lora{ad.data(), bd.data(), slots, rank, in, out};
  b.AddLora(xd.AsTensor(rows, in), lora, slots_d.data(), scratch.data(),
            yd.AsTensor(rows, y_width).Columns(2, out));
  const std::vector<float> got_all = yd.Download();
  std::vector<float> got(rows * out);
  std::vector<double> want(rows * out), mag(rows * out);
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t c = 0; c < y_width; ++c) {
      if (c < 2 || c >= 2 + out) {
        ASSERT_EQ(got_all[i * y_width + c], y0[i * y_width + c]) << "wrote outside y";
      }
    }
    const int32_t s = row_slots[i];
    std::vector<double> t(rank), t_mag(rank);
    for (int r = 0; r < rank && s >= 0; ++r) {
      for (int64_t k = 0; k < in; ++k) {
        const double p = double{x[i * in + k]} * a[(int64_t{s} * rank + r) * in + k];
        t[r] += p;
        t_mag[r] += std::fabs(p);
      }
    }
    for (int64_t c = 0; c < out; ++c) {
      double delta = 0, delta_mag = 0;
      for (int r = 0; r < rank && s >= 0; ++r) {
        const double bv = b_t[(int64_t{s} * rank + r) * out + c];
        delta += t[r] * bv;
        delta_mag += t_mag[r] * std::fabs(bv);
      }
      const double y_in = y0[i * y_width + 2 + c];
      want[i * out + c] = y_in + delta;
      mag[i * out + c] = std::fabs(y_in) + delta_mag;
      got[i * out + c] = got_all[i * y_width + 2 + c];
    }
  }
  const double store = wide ? 0 : 2 * StoreRoundingError(act);
  ExpectClose(
      got, want, [&](size_t i) { return 1e-5 * mag[i] + store * std::fabs(want[i]) + 1e-6; },
      "AddLora");
  // Batch invariance: each row alone gives the same bits.
  for (const int64_t i : {int64_t{0}, std::min<int64_t>(9, rows - 1), rows - 1}) {
    ActivationArray x1(b, std::vector<float>(x.begin() + i * in, x.begin() + (i + 1) * in));
    ActivationArray y1(
        b, std::vector<float>(y0.begin() + i * y_width + 2, y0.begin() + i * y_width + 2 + out),
        StreamDtype(b, wide));
    DeviceArray<int32_t> slot1(b, {row_slots[i]});
    b.AddLora(x1.AsTensor(1, in), lora, slot1.data(), scratch.data(), y1.AsTensor(1, out));
    const std::vector<float> alone = y1.Download();
    for (int64_t c = 0; c < out; ++c) {
      ASSERT_EQ(alone[c], got[i * out + c]) << "row " << i << " column " << c;
    }
  }
}

// ---- SiluMul / GatherRows ----
void CheckSiluMul(Backend& b, std::mt19937_64& rng, int64_t rows, int64_t cols) {
  const DType act = b.activation_dtype();
  const std::vector<float> gu = RoundTo(act, RandomFloats(rng, rows * 2 * cols, -8, 8));
  ActivationArray gud(b, gu), out(b, std::vector<float>(rows * cols));
  b.SiluMul(gud.AsTensor(rows, 2 * cols), out.AsTensor(rows, cols));
  std::vector<double> want(rows * cols);
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t c = 0; c < cols; ++c) {
      const double g = gu[i * 2 * cols + c];
      want[i * cols + c] = g / (1.0 + std::exp(-g)) * gu[i * 2 * cols + cols + c];
    }
  }
  ExpectClose(out.Download(), want, RelTol(want, 1e-5 + 2 * StoreRoundingError(act), 1e-6),
              "SiluMul");
}

// Greedy decoding on the device (SampleRows at temperature 0): every row's answer is a plain
// scan's, with ties between threads and warps, -inf, a NaN inside a row (never wins) and one
// in front (wins).
void CheckGreedyRows(Backend& b, std::mt19937_64& rng, int64_t rows, int64_t cols) {
  std::uniform_int_distribution<int> level(-3, 3);
  std::vector<float> x(static_cast<size_t>(rows * cols));
  for (float& v : x) v = static_cast<float>(level(rng));
  std::uniform_int_distribution<int64_t> at(0, cols - 1);
  for (int64_t r = 0; r < rows; ++r) {
    float* row = &x[r * cols];
    if (r % 3 == 0) row[at(rng)] = 7.0F;  // a unique maximum anywhere
    if (r % 4 == 1) row[at(rng)] = std::numeric_limits<float>::quiet_NaN();
    if (r % 5 == 2) row[at(rng)] = -std::numeric_limits<float>::infinity();
  }
  x[(rows - 1) * cols] = std::numeric_limits<float>::quiet_NaN();
  DeviceArray<float> xd(b, x);
  DeviceArray<RowSampling> greedy(b, std::vector<RowSampling>(rows));
  DeviceArray<int32_t> ids(b, std::vector<int32_t>(rows, -1));
  b.SampleRows(xd.AsTensor(rows, cols), greedy.data(), ids.data());
  const std::vector<int32_t> got = ids.Download();
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = &x[r * cols];
    int32_t want = 0;
    for (int32_t c = 1; c < cols; ++c) {
      if (row[c] > row[want]) want = c;
    }
    ASSERT_EQ(got[r], want) << "row " << r;
  }
}

// The sampling chain of kernels/row_sampling.h done the obvious way: a full sort for top-k
// and top-p. Shares the per-token arithmetic (keys, weights, cuts) with the backends, which
// must pick exactly its token: the selects and the id-order draw are what is checked.
int32_t ReferenceSample(std::span<const float> row, const RowSampling& p) {
  const auto n = static_cast<int32_t>(row.size());
  int32_t greedy = 0;
  for (int32_t c = 1; c < n; ++c) {
    if (row[c] > row[greedy]) greedy = c;
  }
  if (!(p.temperature > 0.0F)) return greedy;
  const float inv_t = InverseTemperature(p.temperature);
  std::vector<float> s(n);
  float m = -std::numeric_limits<float>::infinity();
  for (int32_t c = 0; c < n; ++c) {
    s[c] = Mul(row[c], inv_t);
    if (s[c] > m) m = s[c];
  }
  if (!std::isfinite(m)) return greedy;
  std::vector<int32_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](int32_t a, int32_t b) { return SortKey(s[a], a) > SortKey(s[b], b); });
  size_t keep = p.top_k > 0 && p.top_k < n ? static_cast<size_t>(p.top_k) : order.size();
  if (p.top_p < 1.0F) {
    uint64_t total = 0;
    for (size_t j = 0; j < keep; ++j) total += SampleWeight(s[order[j]], m);
    const uint64_t want = NucleusMass(p.top_p, total);
    uint64_t mass = 0;
    for (size_t j = 0; j < keep; ++j) {
      mass += SampleWeight(s[order[j]], m);
      if (mass >= want) {
        keep = j + 1;
        break;
      }
    }
  }
  std::vector<uint64_t> weight(n, 0);
  for (size_t j = 0; j < keep; ++j) {
    const int32_t c = order[j];
    if (!(p.min_p > 0.0F && BelowMinP(s[c], m, p.min_p))) weight[c] = SampleWeight(s[c], m);
  }
  const uint64_t target =
      DrawTarget(p.uniform, std::accumulate(weight.begin(), weight.end(), 0ULL));
  uint64_t running = 0;
  for (int32_t c = 0; c < n; ++c) {
    running += weight[c];
    if (running > target) return c;
  }
  ADD_FAILURE() << "the draw ran off the row";
  return -1;
}

// Device sampling against the reference, id for id: rows with many ties (few levels) and
// without, NaN and -inf inside rows, rows of only -inf and with +inf, every cut alone and
// combined, draws at both ends of [0, 1).
void CheckSampleRows(Backend& b, std::mt19937_64& rng, int64_t rows, int64_t cols) {
  std::vector<float> x(static_cast<size_t>(rows * cols));
  std::normal_distribution<float> normal(0.0F, 3.0F);
  std::uniform_int_distribution<int> level(-4, 4);
  std::uniform_int_distribution<int64_t> at(0, cols - 1);
  const float inf = std::numeric_limits<float>::infinity();
  for (int64_t r = 0; r < rows; ++r) {
    float* row = &x[r * cols];
    for (int64_t c = 0; c < cols; ++c) {
      row[c] = r % 2 == 0 ? normal(rng) : static_cast<float>(level(rng)) * 0.5F;
    }
    if (r % 7 == 3) row[at(rng)] = std::numeric_limits<float>::quiet_NaN();
    if (r % 5 == 4) row[at(rng)] = -inf;
    if (r == 11) std::fill(row, row + cols, -inf);
    if (r == 13) row[at(rng)] = inf;
  }
  const std::vector<float> temperatures = {0.0F, 1.0F, 0.7F, 1.5F, 0.05F};
  const std::vector<int32_t> top_ks = {0, 1, 5, 0, static_cast<int32_t>(cols), 40};
  const std::vector<float> top_ps = {1.0F, 0.9F, 0.5F, 1.0F, 0.01F, 0.999F, 1.0F};
  const std::vector<float> min_ps = {0.0F, 0.0F, 0.05F, 0.0F, 1.0F, 0.3F, 0.0F, 0.0F};
  const std::vector<double> uniforms = {0.0, 0.999999999, 0.5, 0.25, 0.75, 0.123456789};
  std::uniform_real_distribution<double> any(0.0, 1.0);
  std::vector<RowSampling> params(rows);
  for (int64_t r = 0; r < rows; ++r) {
    RowSampling& p = params[r];
    p.temperature = temperatures[r % temperatures.size()];
    if (r == 11 || r == 13) p.temperature = 1.0F;  // not greedy by choice
    p.top_k = top_ks[r % top_ks.size()];
    p.top_p = top_ps[r % top_ps.size()];
    p.min_p = min_ps[r % min_ps.size()];
    p.uniform = r < static_cast<int64_t>(uniforms.size()) ? uniforms[r] : any(rng);
  }
  // Parameters the engine never sends still pick a defined token (the helpers clamp).
  if (rows >= 20) {
    params[14] = {.temperature = 1.0F, .min_p = 1.5F, .uniform = 0.5};
    params[15] = {.temperature = 1.0F, .top_p = -0.5F, .uniform = 0.9};
    params[16] = {.temperature = 1.0F, .uniform = 1.5};
    params[17] = {.temperature = 1.0F, .top_k = -3, .uniform = -0.25};
    params[18] = {.temperature = 1.0F, .uniform = std::numeric_limits<double>::quiet_NaN()};
    params[19] = {.temperature = -1.0F, .uniform = 0.5};
  }
  DeviceArray<float> xd(b, x);
  DeviceArray<RowSampling> pd(b, params);
  DeviceArray<int32_t> ids(b, std::vector<int32_t>(rows, -1));
  b.SampleRows(xd.AsTensor(rows, cols), pd.data(), ids.data());
  const std::vector<int32_t> got = ids.Download();
  for (int64_t r = 0; r < rows; ++r) {
    const RowSampling& p = params[r];
    ASSERT_EQ(got[r], ReferenceSample({&x[r * cols], static_cast<size_t>(cols)}, p))
        << "row " << r << " temperature " << p.temperature << " top_k " << p.top_k << " top_p "
        << p.top_p << " min_p " << p.min_p << " uniform " << p.uniform;
  }
}

// Penalties in place, bit for bit the host's PenalizedLogit: rows with and without entries,
// each penalty alone and together, logit biases on seen and bias-only tokens, positive and
// negative logits, an id outside the row.
void CheckPenalizeRows(Backend& b, std::mt19937_64& rng, int64_t rows, int64_t cols) {
  std::vector<float> x = RandomFloats(rng, rows * cols, -4.0F, 4.0F);
  std::vector<RowSampling> params(rows);
  std::vector<PenaltyEntry> entries;
  std::uniform_int_distribution<int32_t> count(kBiasOnly, 5);
  std::uniform_real_distribution<float> bias(-100.0F, 100.0F);
  for (int64_t r = 0; r < rows; ++r) {
    RowSampling& p = params[r];
    p.repetition_penalty = r % 3 == 0 ? 1.0F : 1.3F;
    p.presence_penalty = r % 2 == 0 ? 0.5F : 0.0F;
    p.frequency_penalty = r % 4 < 2 ? -0.25F : 0.7F;
    p.penalty_begin = static_cast<int32_t>(entries.size());
    if (r % 5 != 4) {  // every fifth row has no entries
      for (int64_t c = r % 3; c < cols; c += 3) {
        // Every third entry of the odd rows has a bias.
        const float b_c = r % 2 == 1 && c % 9 < 3 ? bias(rng) : 0.0F;
        entries.push_back({static_cast<int32_t>(c), count(rng), b_c});
      }
      entries.push_back({static_cast<int32_t>(cols + 7), 1});  // outside the row: skipped
    }
    p.penalty_end = static_cast<int32_t>(entries.size());
  }
  std::vector<float> want = x;
  for (int64_t r = 0; r < rows; ++r) {
    const RowSampling& p = params[r];
    for (int32_t e = p.penalty_begin; e < p.penalty_end; ++e) {
      if (entries[e].token >= cols) continue;
      float& l = want[r * cols + entries[e].token];
      l = PenalizedLogit(l, p, entries[e]);
    }
  }
  DeviceArray<float> xd(b, x);
  DeviceArray<RowSampling> pd(b, params);
  DeviceArray<PenaltyEntry> ed(b, entries);
  b.PenalizeRows(xd.AsTensor(rows, cols), pd.data(), ed.data());
  const std::vector<float> got = xd.Download();
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(AsBits(got[i]), AsBits(want[i]))
        << "element " << i << ": " << got[i] << " want " << want[i];
  }
}

void CheckGatherRows(Backend& b, std::mt19937_64& rng, int64_t rows, int64_t cols) {
  const std::vector<float> x = RoundTo(b.activation_dtype(), RandomFloats(rng, rows * cols));
  const std::vector<int32_t> pick = {static_cast<int32_t>(rows - 1), 0,
                                     5 % static_cast<int32_t>(rows),
                                     5 % static_cast<int32_t>(rows)};
  ActivationArray xd(b, x), out(b, std::vector<float>(pick.size() * cols));
  DeviceArray<int32_t> pd(b, pick);
  b.GatherRows(xd.AsTensor(rows, cols), pd.data(),
               out.AsTensor(static_cast<int64_t>(pick.size()), cols));
  const std::vector<float> got = out.Download();
  for (size_t i = 0; i < pick.size(); ++i) {
    for (int64_t c = 0; c < cols; ++c) ASSERT_EQ(got[i * cols + c], x[pick[i] * cols + c]);
  }
}

}  // namespace

// Declared in kernel_attention_cases.cc and kernel_logprob_cases.cc.
std::vector<std::pair<std::string, Check>> AttentionCases();
std::vector<std::pair<std::string, Check>> LogprobCases();

namespace {

std::vector<OpCase> AllCases() {
  std::vector<OpCase> cases;
  auto add = [&](std::string name, Check check) {
    cases.push_back({std::move(name), std::move(check)});
  };
  struct Mm {
    int64_t n, m, k, pad;
  };
  const std::vector<Mm> any_k = {{1, 16, 8, 0},     {1, 37, 13, 3},    {4, 768, 768, 0},
                                 {37, 19, 45, 1},   {37, 100, 600, 0}, {6, 48, 32, 0},
                                 {64, 130, 257, 2}, {1, 1, 70, 0}};
  const std::vector<Mm> k32 = {{1, 33, 64, 0}, {37, 50, 96, 1}, {13, 64, 544, 0}, {5, 1, 32, 0}};
  std::vector<DType> matmul_dtypes = {DType::kF32, DType::kF16, DType::kBF16};
  matmul_dtypes.insert(matmul_dtypes.end(), std::begin(kBlockDTypes), std::end(kBlockDTypes));
  for (DType dt : matmul_dtypes) {
    for (const Mm& s : IsBlockDType(dt) ? k32 : any_k) {
      add(absl::StrCat("MatMul_", std::string(DTypeName(dt)), "_n", s.n, "_m", s.m, "_k", s.k),
          [=](Backend& b, std::mt19937_64& rng) { CheckMatMul(b, rng, dt, s.n, s.m, s.k, s.pad); });
    }
  }
  for (DType dt : {DType::kF32, DType::kF16, DType::kBF16}) {
    add(absl::StrCat("Embedding_", std::string(DTypeName(dt)), "_50x37"),
        [=](Backend& b, std::mt19937_64& rng) { CheckEmbedding(b, rng, dt, 50, 37); });
  }
  // The logits product: f32 out of f16/bf16 activations (on the CPU the same as above).
  for (DType dt : matmul_dtypes) {
    if (dt == DType::kF16) continue;
    for (const Mm& s : std::vector<Mm>{{1, 160, 64, 0}, {19, 1000, 96, 2}}) {
      add(absl::StrCat("MatMulF32Out_", std::string(DTypeName(dt)), "_n", s.n, "_m", s.m, "_k",
                       s.k),
          [=](Backend& b, std::mt19937_64& rng) {
            CheckMatMul(b, rng, dt, s.n, s.m, s.k, s.pad, /*f32_out=*/true);
          });
    }
  }
  for (DType dt : kBlockDTypes) {
    add(absl::StrCat("Embedding_", std::string(DTypeName(dt)), "_40x64"),
        [=](Backend& b, std::mt19937_64& rng) { CheckEmbedding(b, rng, dt, 40, 64); });
  }
  add("Embedding_f32_1x768",
      [](Backend& b, std::mt19937_64& rng) { CheckEmbedding(b, rng, DType::kF32, 7, 768); });
  for (auto [rows, cols] :
       std::vector<std::pair<int64_t, int64_t>>{{1, 8}, {37, 37}, {5, 768}, {3, 4096}}) {
    add(absl::StrCat("RmsNorm_", rows, "x", cols),
        [=](Backend& b, std::mt19937_64& rng) { CheckRmsNorm(b, rng, rows, cols, false); });
    add(absl::StrCat("AddRmsNorm_", rows, "x", cols),
        [=](Backend& b, std::mt19937_64& rng) { CheckRmsNorm(b, rng, rows, cols, true); });
  }
  for (auto [rows, cols] :
       std::vector<std::pair<int64_t, int64_t>>{{1, 13}, {37, 1152}, {300, 192}}) {
    add(absl::StrCat("AddBias_", rows, "x", cols),
        [=](Backend& b, std::mt19937_64& rng) { CheckAddBias(b, rng, rows, cols); });
  }
  for (auto [rows, heads, head_dim] :
       std::vector<std::tuple<int64_t, int64_t, int64_t>>{{1, 1, 8}, {37, 5, 64}, {3, 40, 128}}) {
    add(absl::StrCat("HeadRmsNorm_", rows, "x", heads, "x", head_dim),
        [=](Backend& b, std::mt19937_64& rng) { CheckHeadRmsNorm(b, rng, rows, heads, head_dim); });
  }
  for (auto [rows, cols] : std::vector<std::pair<int64_t, int64_t>>{{1, 13}, {37, 64}, {2, 2048}}) {
    add(absl::StrCat("SiluMul_", rows, "x", cols),
        [=](Backend& b, std::mt19937_64& rng) { CheckSiluMul(b, rng, rows, cols); });
  }
  // The f32 residual stream under narrower activations (LlamaModel's layout).
  add("EmbeddingF32Out_50x37", [](Backend& b, std::mt19937_64& rng) {
    CheckEmbedding(b, rng, b.activation_dtype(), 50, 37, /*wide=*/true);
  });
  for (auto [rows, cols] : std::vector<std::pair<int64_t, int64_t>>{{37, 37}, {3, 4096}}) {
    add(absl::StrCat("RmsNormF32In_", rows, "x", cols), [=](Backend& b, std::mt19937_64& rng) {
      CheckRmsNorm(b, rng, rows, cols, false, /*wide=*/true);
    });
    add(absl::StrCat("AddRmsNormF32Residual_", rows, "x", cols),
        [=](Backend& b, std::mt19937_64& rng) {
          CheckRmsNorm(b, rng, rows, cols, true, /*wide=*/true);
        });
  }
  for (auto [rows, cols] :
       std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {7, 33}, {40, 1000}, {3, 128256}}) {
    add(absl::StrCat("GreedyRows_", rows, "x", cols),
        [=](Backend& b, std::mt19937_64& rng) { CheckGreedyRows(b, rng, rows, cols); });
  }
  for (auto [rows, cols] : std::vector<std::pair<int64_t, int64_t>>{
           {1, 1}, {16, 33}, {40, 1000}, {20, 5000}, {3, 128256}}) {
    add(absl::StrCat("PenalizeRows_", rows, "x", cols),
        [=](Backend& b, std::mt19937_64& rng) { CheckPenalizeRows(b, rng, rows, cols); });
    add(absl::StrCat("SampleRows_", rows, "x", cols),
        [=](Backend& b, std::mt19937_64& rng) { CheckSampleRows(b, rng, rows, cols); });
  }
  for (auto [rows, in, out, rank, slots, run] :
       std::vector<std::tuple<int64_t, int64_t, int64_t, int, int, int>>{{1, 64, 96, 8, 1, 0},
                                                                         {37, 129, 45, 16, 3, 0},
                                                                         {5, 768, 1000, 4, 2, 0},
                                                                         {300, 40, 24, 64, 4, 0},
                                                                         {37, 129, 45, 16, 3, 6},
                                                                         {21, 768, 1000, 4, 2, 6},
                                                                         {300, 40, 24, 64, 4, 6}}) {
    for (const bool wide : {false, true}) {
      add(absl::StrCat("AddLora_", rows, "x", in, "x", out, "_r", rank, "_s", slots,
                       run > 0 ? absl::StrCat("_runs", run) : "", wide ? "_f32out" : ""),
          [=](Backend& b, std::mt19937_64& rng) {
            CheckAddLora(b, rng, rows, in, out, rank, slots, wide, run);
          });
    }
  }
  add("GatherRows_37x50",
      [](Backend& b, std::mt19937_64& rng) { CheckGatherRows(b, rng, 37, 50); });
  for (auto& [name, check] : AttentionCases()) add(name, check);
  for (auto& [name, check] : LogprobCases()) add(name, check);
  return cases;
}

class KernelOpTest : public ::testing::TestWithParam<std::tuple<OpCase, std::string>> {};

TEST_P(KernelOpTest, MatchesFloat64Reference) {
  const auto& [op, variant] = GetParam();
  std::unique_ptr<Backend> backend = MakeBackend(variant);
  if (backend == nullptr) GTEST_SKIP() << variant << " is not available";
  uint64_t seed = 1469598103934665603ULL;  // FNV-1a of the case name: stable across runs
  for (char c : op.name) seed = (seed ^ static_cast<uint8_t>(c)) * 1099511628211ULL;
  std::mt19937_64 rng(seed);
  op.check(*backend, rng);
}

std::string OpTestName(const ::testing::TestParamInfo<KernelOpTest::ParamType>& info) {
  std::string name = std::get<0>(info.param).name + "_" + std::get<1>(info.param);
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return name;
}

INSTANTIATE_TEST_SUITE_P(AllOps, KernelOpTest,
                         ::testing::Combine(::testing::ValuesIn(AllCases()),
                                            ::testing::ValuesIn(BackendVariants())),
                         OpTestName);

// The tensor-core attention (BackendOptions::cuda_attention_kernel) changes the
// attention only: its cases, on the GPU and on the CPU emulation.
std::vector<OpCase> AttentionOnlyCases() {
  std::vector<OpCase> cases;
  for (auto& [name, check] : AttentionCases()) {
    if (name.starts_with("Attention_")) cases.push_back({name, check});
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(TensorCoreAttention, KernelOpTest,
                         ::testing::Combine(::testing::ValuesIn(AttentionOnlyCases()),
                                            ::testing::Values("cuda:0-tc", "cuda:0-tc-f16",
                                                              "cuda-emu-tc", "cuda-emu-tc-f16")),
                         OpTestName);

TEST(UploadWeightTest, RejectsUnsupportedDtypeAndShape) {
  for (const std::string& variant : BackendVariants()) {
    std::unique_ptr<Backend> backend = MakeBackend(variant);
    if (backend == nullptr) continue;
    const std::vector<int32_t> data(64, 1);
    EXPECT_EQ(backend->UploadWeight(DType::kI32, 2, 32, data.data()).status().code(),
              absl::StatusCode::kInvalidArgument)
        << variant;
    for (const DType blocks : kBlockDTypes) {
      EXPECT_EQ(backend->UploadWeight(blocks, 1, 48, data.data()).status().code(),
                absl::StatusCode::kInvalidArgument)
          << variant << " " << DTypeName(blocks);
    }
    EXPECT_EQ(backend->UploadWeight(DType::kF32, 0, 8, data.data()).status().code(),
              absl::StatusCode::kInvalidArgument)
        << variant;
  }
}

// The CPU has one attention kernel: it accepts that one and refuses the other by name,
// unchanged (the tools pass the message on to the user).
TEST(AttentionKernelTest, CpuRunsSimtAndRefusesTensorCore) {
  std::unique_ptr<Backend> cpu = MakeBackend("cpu");
  ASSERT_NE(cpu, nullptr);
  EXPECT_EQ(cpu->attention_kernel(), AttentionKernel::kSimt);
  EXPECT_TRUE(cpu->SetAttentionKernel(AttentionKernel::kSimt).ok());
  const absl::Status refused = cpu->SetAttentionKernel(AttentionKernel::kTensorCore);
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(refused.message(),
            "cpu has no tensor-core attention kernel (CUDA only); its attention runs on simt");
  EXPECT_EQ(cpu->attention_kernel(), AttentionKernel::kSimt);
}

// MatMul's algorithm choice (CUDA's cuBLASLt) does not exist on the CPU nor on the simple
// kernel the emulation runs: both say so by name and keep running their one kernel.
TEST(MatMulAlgoRowsTest, BackendsWithOneMatMulKernelRefuseAChoice) {
  for (const std::string variant : {"cpu", "cuda-emu"}) {
    std::unique_ptr<Backend> backend = MakeBackend(variant);
    if (backend == nullptr) continue;  // a build without the CUDA backend
    EXPECT_EQ(backend->matmul_algo_rows(), 0) << variant;
    const absl::Status refused = backend->SetMatMulAlgoRows(64);
    EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition) << variant;
    EXPECT_THAT(refused.message(), ::testing::HasSubstr(std::string(backend->name()))) << variant;
    EXPECT_EQ(backend->matmul_algo_rows(), 0) << variant;
  }
}

}  // namespace
}  // namespace ringserve::kernels::testing
