// CPU kernel benchmarks at the shapes of a 110M Llama (dim 768, hidden 2048, vocab 32000,
// 12 heads of 64): MatMul at decode (n = 1, reported as GB/s of weights streamed) and
// prefill (n = 512, GFLOP/s) beside cblas_sgemm on the same shapes and the machine's
// threaded read bandwidth; a whole decode step's matrices in each weight type, and its
// quantized products on AVX2 beside the best ISA; paged attention decode at 1k and 4k
// contexts.
//
// Weights are cold: each iteration uses the next of several copies that together exceed
// the last-level cache, as in a real decode step that streams the whole model.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <numeric>
#include <random>
#include <vector>

#include "benchmark/benchmark.h"
#include "kernels/backend.h"
#include "kernels/cpu/cpu_attention.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/cpu_isa.h"
#include "kernels/cpu/cpu_matmul.h"
#include "kernels/cpu/roofline.h"
#include "kernels/dtype.h"
#include "tests/support/block_encoding.h"

namespace ringserve::kernels {
namespace {

using ::ringserve::testing::EncodeBlocks;

constexpr size_t kColdBytes = size_t{256} << 20;  // > 8x a 32 MiB L3
// Products with at most this many rows are decode steps: they stream cold weights.
constexpr int64_t kMaxDecodeRows = 32;

std::unique_ptr<Backend> MakeCpu(bool use_blas = false) {
  BackendOptions options;
  options.cpu_use_blas = use_blas;
  return *CreateBackend("cpu", options);
}

std::vector<float> Random(size_t count, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(-1, 1);
  std::vector<float> v(count);
  for (float& f : v) f = dist(rng);
  return v;
}

// Enough copies of a [m, k] weight to defeat the caches (at least 2).
std::vector<Weight> ColdWeights(Backend& b, int64_t m, int64_t k, bool cold) {
  const std::vector<float> host = Random(m * k, 1);
  const size_t bytes = static_cast<size_t>(m * k) * sizeof(float);
  const size_t copies = cold ? std::max<size_t>(2, kColdBytes / bytes + 1) : 1;
  std::vector<Weight> weights;
  for (size_t i = 0; i < copies; ++i)
    weights.push_back(*b.UploadWeight(DType::kF32, m, k, host.data()));
  return weights;
}

void RunMatMul(benchmark::State& state, bool use_blas) {
  const int64_t n = state.range(0), m = state.range(1), k = state.range(2);
  auto backend = MakeCpu(use_blas);
  std::vector<Weight> weights = ColdWeights(*backend, m, k, /*cold=*/n <= kMaxDecodeRows);
  DeviceBuffer x = *backend->Allocate(n * k * sizeof(float));
  DeviceBuffer y = *backend->Allocate(n * m * sizeof(float));
  const std::vector<float> x_host = Random(n * k, 2);
  backend->CopyToDevice(x.data(), x_host.data(), x_host.size() * sizeof(float));
  size_t next = 0;
  for (auto _ : state) {
    backend->MatMul(Tensor::Of(x.data(), DType::kF32, n, k), weights[next],
                    Tensor::Of(y.data(), DType::kF32, n, m));
    next = (next + 1) % weights.size();
    benchmark::ClobberMemory();
  }
  const double iters = static_cast<double>(state.iterations());
  state.counters["GB/s"] = benchmark::Counter(iters * m * k * 4 / 1e9, benchmark::Counter::kIsRate);
  state.counters["GFLOP/s"] =
      benchmark::Counter(iters * 2.0 * n * m * k / 1e9, benchmark::Counter::kIsRate);
}

// Our batch-invariant MatMul.
void BM_MatMul(benchmark::State& state) { RunMatMul(state, false); }
// Our MatMul forced onto the AVX2 kernels, to compare with BM_MatMul where BestIsa() is
// AVX-512.
void BM_MatMulAvx2(benchmark::State& state) {
  const int64_t n = state.range(0), m = state.range(1), k = state.range(2);
  auto backend = MakeCpu();
  cpu::ThreadPool& pool = static_cast<cpu::CpuBackend&>(*backend).pool();
  std::vector<Weight> weights = ColdWeights(*backend, m, k, /*cold=*/n <= kMaxDecodeRows);
  const std::vector<float> x = Random(n * k, 2);
  std::vector<float> y(n * m);
  size_t next = 0;
  for (auto _ : state) {
    const cpu::MatMulArgs args{
        x.data(), k, n, weights[next].buffer.as<const float>(), cpu::PanelLayout{false, m, k},
        y.data(), m};
    cpu::MatMul(pool, args, cpu::Isa::kAvx2);
    next = (next + 1) % weights.size();
    benchmark::ClobberMemory();
  }
  const double iters = static_cast<double>(state.iterations());
  state.counters["GB/s"] = benchmark::Counter(iters * m * k * 4 / 1e9, benchmark::Counter::kIsRate);
  state.counters["GFLOP/s"] =
      benchmark::Counter(iters * 2.0 * n * m * k / 1e9, benchmark::Counter::kIsRate);
}

// The same call on a cpu_use_blas backend: cblas_sgemm for n >= 16.
void BM_MatMulBlasBackend(benchmark::State& state) { RunMatMul(state, true); }

// One decode step's matrices of the whole 110M model (12 layers + classifier, 438 MB of
// f32) for a batch of n sequences: at n = 1 the figure to hold against BM_ReadBandwidth,
// at larger n the weights still stream once per step while the FLOPs grow n-fold.
// bits:16 uploads them as a bf16 checkpoint's (kept bf16: half the bytes, the same products),
// bits:8 as Q8_0 blocks (1.125 bytes a value), bits:5 as kQ5Affine ones (0.875: a Q5_0,
// Q5_1 or Q5_K file's), bits:4 as kQ4Affine ones (0.75: a Q4_0, Q4_1 or Q4_K file's),
// bits:-4 as kIQ4 ones (0.625: an IQ4_NL or IQ4_XS file's), bits:6 as kQ6 ones (0.875: a
// Q6_K file's), each written by tests/support/block_encoding.h.
// The quantized dtype BM_DecodeStep110M's `bits` names.
DType QuantDTypeOfBits(int64_t bits) {
  switch (bits) {
    case 8:
      return DType::kQ8_0;
    case 6:
      return DType::kQ6;
    case 5:
      return DType::kQ5Affine;
    case -4:
      return DType::kIQ4;
    default:
      return DType::kQ4Affine;
  }
}

// The [m, k] matrices of one 110M decode step: 12 layers' QKV, output, gate-up and down
// projections, and the classifier.
std::vector<std::pair<int64_t, int64_t>> DecodeStepShapes110M() {
  std::vector<std::pair<int64_t, int64_t>> shapes;
  for (int layer = 0; layer < 12; ++layer) {
    shapes.insert(shapes.end(), {{2304, 768}, {768, 768}, {4096, 768}, {768, 2048}});
  }
  shapes.emplace_back(32000, 768);
  return shapes;
}

void SetDecodeStepCounters(benchmark::State& state, int64_t n, double bytes, double params) {
  const double iters = static_cast<double>(state.iterations());
  state.counters["GB/s"] = benchmark::Counter(iters * bytes / 1e9, benchmark::Counter::kIsRate);
  state.counters["GFLOP/s"] =
      benchmark::Counter(iters * params * 2 * n / 1e9, benchmark::Counter::kIsRate);
  state.counters["tok/s"] = benchmark::Counter(iters * n, benchmark::Counter::kIsRate);
}

void BM_DecodeStep110M(benchmark::State& state) {
  const int64_t n = state.range(0);
  const int64_t bits = state.range(1);
  auto backend = MakeCpu();
  std::vector<Weight> weights;
  double bytes = 0;
  double params = 0;
  for (auto [m, k] : DecodeStepShapes110M()) {
    const std::vector<float> host = Random(m * k, 1);
    if (bits == 16) {
      std::vector<uint16_t> half(host.size());
      for (size_t i = 0; i < host.size(); ++i) half[i] = FloatToBFloat16(host[i]);
      weights.push_back(*backend->UploadWeight(DType::kBF16, m, k, half.data()));
    } else if (bits == 32) {
      weights.push_back(*backend->UploadWeight(DType::kF32, m, k, host.data()));
    } else {
      const DType dtype = QuantDTypeOfBits(bits);
      weights.push_back(*backend->UploadWeight(dtype, m, k, EncodeBlocks(dtype, host).data()));
    }
    bytes += static_cast<double>(weights.back().buffer.bytes());
    params += static_cast<double>(m * k);
  }
  DeviceBuffer x = *backend->Allocate(n * 2048 * sizeof(float));
  DeviceBuffer y = *backend->Allocate(n * 32000 * sizeof(float));
  // Real activations: the products on quantized weights quantize them first.
  const std::vector<float> x_host = Random(n * 2048, 2);
  backend->CopyToDevice(x.data(), x_host.data(), x_host.size() * sizeof(float));
  for (auto _ : state) {
    for (const Weight& w : weights) {
      backend->MatMul(Tensor::Of(x.data(), DType::kF32, n, w.cols), w,
                      Tensor::Of(y.data(), DType::kF32, n, w.rows));
    }
    benchmark::ClobberMemory();
  }
  SetDecodeStepCounters(state, n, bytes, params);
}

// The quantized products of BM_DecodeStep110M (bits 8: Q8_0, 6: kQ6, 5: kQ5Affine,
// 4: kQ4Affine, -4: kIQ4) on one ISA: isa 0 is AVX2, 1 the best this CPU has (avx512-vnni where it
// has VNNI), in one run.
void BM_QuantDecodeStep110M(benchmark::State& state) {
  const int64_t n = state.range(0);
  const DType dtype = QuantDTypeOfBits(state.range(1));
  const cpu::Isa isa = state.range(2) == 0 ? cpu::Isa::kAvx2 : cpu::BestIsa();
  const cpu::PanelType type = cpu::PanelTypeOf(dtype);
  auto backend = MakeCpu();
  cpu::ThreadPool& pool = static_cast<cpu::CpuBackend&>(*backend).pool();
  struct Packed {
    cpu::PanelLayout layout;
    std::vector<uint8_t> quants;
    std::vector<float> params;
  };
  std::vector<Packed> weights;
  double bytes = 0;
  double params = 0;
  for (auto [m, k] : DecodeStepShapes110M()) {
    const std::vector<uint8_t> blocks = EncodeBlocks(dtype, Random(m * k, 1));
    Packed w{{false, m, k}, std::vector<uint8_t>(cpu::QuantBytes(type, m, k)), {}};
    const cpu::PanelLayout params_layout = cpu::BlockParamLayout(type, w.layout);
    w.params.resize(static_cast<size_t>(params_layout.rows * params_layout.cols));
    for (int64_t p = 0; p < w.layout.num_panels(); ++p) {
      const int64_t r0 = p * cpu::kPanelWidth;
      cpu::PackBlockRows(w.layout, type, blocks.data() + DTypeBytes(dtype, r0 * k), r0,
                         w.layout.width(p), w.quants.data(), w.params.data());
    }
    bytes += static_cast<double>(cpu::PanelBytes(type, m, k));
    params += static_cast<double>(m * k);
    weights.push_back(std::move(w));
  }
  const std::vector<float> x = Random(n * 2048, 2);
  std::vector<float> y(n * 32000);
  for (auto _ : state) {
    for (const Packed& w : weights) {
      cpu::MatMul(pool,
                  {x.data(), w.layout.cols, n, w.quants.data(), w.layout, y.data(), w.layout.rows,
                   type, w.params.data()},
                  isa);
    }
    benchmark::ClobberMemory();
  }
  state.SetLabel(cpu::IsaName(isa));
  SetDecodeStepCounters(state, n, bytes, params);
}

// Raw cblas_sgemm, y = x W^T with W row-major [m, k], as the baseline.
void BM_Sgemm(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0)), m = static_cast<int>(state.range(1)),
            k = static_cast<int>(state.range(2));
  auto backend = MakeCpu();  // sets OpenBLAS's thread count to the pool size
  const size_t bytes = static_cast<size_t>(m) * k * sizeof(float);
  const size_t copies = n <= kMaxDecodeRows ? std::max<size_t>(2, kColdBytes / bytes + 1) : 1;
  std::vector<std::vector<float>> w(copies, Random(static_cast<size_t>(m) * k, 1));
  const std::vector<float> x = Random(static_cast<size_t>(n) * k, 2);
  std::vector<float> y(static_cast<size_t>(n) * m);
  size_t next = 0;
  for (auto _ : state) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, m, k, 1.0F, x.data(), k, w[next].data(),
                k, 0.0F, y.data(), m);
    next = (next + 1) % copies;
    benchmark::ClobberMemory();
  }
  const double iters = static_cast<double>(state.iterations());
  state.counters["GB/s"] = benchmark::Counter(iters * bytes / 1e9, benchmark::Counter::kIsRate);
  state.counters["GFLOP/s"] =
      benchmark::Counter(iters * 2.0 * n * m * k / 1e9, benchmark::Counter::kIsRate);
}

void BM_ReadBandwidth(benchmark::State& state) {
  double best = 0;
  for (auto _ : state) best = std::max(best, cpu::MeasureReadBandwidth(kColdBytes, 0));
  state.counters["GB/s"] = best / 1e9;
}

// `values` as a KV cache of `bits` (32: f32, 16: f16, 8: fp8 E4M3) holds them.
std::vector<uint8_t> KvBytes(const std::vector<float>& values, int bits) {
  std::vector<uint8_t> bytes(values.size() * bits / 8);
  if (bits == 32) {
    std::memcpy(bytes.data(), values.data(), bytes.size());
    return bytes;
  }
  if (bits == 8) {
    for (size_t i = 0; i < values.size(); ++i) bytes[i] = FloatToFloat8E4M3(values[i]);
    return bytes;
  }
  for (size_t i = 0; i < values.size(); ++i) {
    const uint16_t h = FloatToHalf(values[i]);
    std::memcpy(bytes.data() + 2 * i, &h, 2);
  }
  return bytes;
}

DType KvDtype(int bits) {
  return bits == 32 ? DType::kF32 : (bits == 16 ? DType::kF16 : DType::kF8E4M3);
}

// Decode attention: `seqs` sequences each with one token at position ctx - 1, over `layers`
// layers' KV (one decode step of the 110M model has 12: the cache is then read cold), in an
// f32, f16 or fp8 cache (`kv_bits`), attending to the last `window` keys (0: all of them).
// KV GB/s counts the keys read.
void AttentionDecode(benchmark::State& state, int window) {
  const int ctx = static_cast<int>(state.range(0)), seqs = static_cast<int>(state.range(1)),
            layers = static_cast<int>(state.range(2)), kv_bits = static_cast<int>(state.range(3));
  const int hq = 12, hkv = 12, hd = 64, block_size = 16;
  const int blocks_per_seq = (ctx + block_size - 1) / block_size,
            num_blocks = blocks_per_seq * seqs;
  auto b = MakeCpu();
  const size_t kv_count = static_cast<size_t>(num_blocks) * block_size * hkv * hd;
  std::vector<DeviceBuffer> k, v;
  const std::vector<uint8_t> kv_host = KvBytes(Random(kv_count, 3), kv_bits);
  for (int l = 0; l < layers; ++l) {
    k.push_back(*b->Allocate(kv_host.size()));
    v.push_back(*b->Allocate(kv_host.size()));
    b->CopyToDevice(k.back().data(), kv_host.data(), kv_host.size());
    b->CopyToDevice(v.back().data(), kv_host.data(), kv_host.size());
  }
  std::vector<int32_t> tables(num_blocks), positions(seqs, ctx - 1), token_seq(seqs),
      query_start(seqs + 1), lens(seqs, ctx), slots(seqs);
  std::iota(tables.begin(), tables.end(), 0);
  std::shuffle(tables.begin(), tables.end(), std::mt19937_64(4));
  std::iota(token_seq.begin(), token_seq.end(), 0);
  std::iota(query_start.begin(), query_start.end(), 0);
  const int width = (hq + 2 * hkv) * hd;
  const std::vector<float> qkv = Random(static_cast<size_t>(seqs) * width, 5);
  std::vector<float> out(static_cast<size_t>(seqs) * hq * hd);
  // Host vectors are valid CPU "device" memory.
  AttentionBatch batch{seqs,
                       seqs,
                       blocks_per_seq,
                       ctx,
                       positions.data(),
                       slots.data(),
                       token_seq.data(),
                       query_start.data(),
                       lens.data(),
                       tables.data()};
  const AttentionShape shape{hq, hkv, hd, 0.125F, window};
  const int64_t keys = ctx - FirstAttendedKey(ctx - 1, window);
  for (auto _ : state) {
    for (int l = 0; l < layers; ++l) {
      const KvLayerView kv{k[l].data(), v[l].data(), KvDtype(kv_bits), num_blocks, block_size,
                           hkv,         hd};
      b->PagedAttention(Tensor::Of(const_cast<float*>(qkv.data()), DType::kF32, seqs, width), shape,
                        batch, kv, Tensor::Of(out.data(), DType::kF32, seqs, hq * hd));
    }
    benchmark::ClobberMemory();
  }
  state.counters["KV GB/s"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * layers * seqs * keys * hkv * hd * kv_bits / 4 / 1e9,
      benchmark::Counter::kIsRate);
}
void BM_AttentionDecode(benchmark::State& state) { AttentionDecode(state, 0); }
// The same with a sliding window of range(4) keys (Mistral 7B v0.1's 4096).
void BM_SlidingWindowDecode(benchmark::State& state) {
  AttentionDecode(state, static_cast<int>(state.range(4)));
}

// Causal prefill attention of one `ctx`-token prompt (the 110M model's 12 heads of 64), on
// AVX2 (isa 0) or the best ISA (isa 1), over an f32, f16 or fp8 cache (`kv_bits`), each query
// attending to its last `window` keys (0: all). GFLOP/s counts the QK and PV products done.
void AttentionPrefill(benchmark::State& state, int window) {
  const int ctx = static_cast<int>(state.range(0)), kv_bits = static_cast<int>(state.range(2));
  const cpu::Isa isa = state.range(1) == 0 ? cpu::Isa::kAvx2 : cpu::BestIsa();
  const int hq = 12, hkv = 12, hd = 64, block_size = 16;
  const int num_blocks = (ctx + block_size - 1) / block_size;
  auto b = MakeCpu();
  const size_t kv_count = static_cast<size_t>(num_blocks) * block_size * hkv * hd;
  std::vector<uint8_t> k = KvBytes(Random(kv_count, 3), kv_bits),
                       v = KvBytes(Random(kv_count, 4), kv_bits);
  std::vector<int32_t> tables(num_blocks), positions(ctx), slots(ctx), token_seq(ctx, 0),
      query_start = {0, ctx}, lens = {ctx};
  std::iota(tables.begin(), tables.end(), 0);
  std::shuffle(tables.begin(), tables.end(), std::mt19937_64(4));
  std::iota(positions.begin(), positions.end(), 0);
  for (int p = 0; p < ctx; ++p) slots[p] = tables[p / block_size] * block_size + p % block_size;
  const int width = (hq + 2 * hkv) * hd;
  std::vector<float> qkv = Random(static_cast<size_t>(ctx) * width, 5);
  std::vector<float> out(static_cast<size_t>(ctx) * hq * hd);
  const AttentionBatch batch{ctx,
                             1,
                             num_blocks,
                             ctx,
                             positions.data(),
                             slots.data(),
                             token_seq.data(),
                             query_start.data(),
                             lens.data(),
                             tables.data()};
  const KvLayerView kv{k.data(), v.data(), KvDtype(kv_bits), num_blocks, block_size, hkv, hd};
  const AttentionShape shape{hq, hkv, hd, 0.125F, window};
  cpu::ThreadPool& pool = static_cast<cpu::CpuBackend&>(*b).pool();
  for (auto _ : state) {
    cpu::PagedAttentionOp(pool, Tensor::Of(qkv.data(), DType::kF32, ctx, width), shape, batch, kv,
                          Tensor::Of(out.data(), DType::kF32, ctx, hq * hd), {isa});
    benchmark::ClobberMemory();
  }
  double pairs = 0;  // (query, key) products
  for (int p = 0; p < ctx; ++p) pairs += p + 1 - FirstAttendedKey(p, window);
  const double flops = 4.0 * hq * hd * pairs;
  state.counters["GFLOP/s"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * flops / 1e9, benchmark::Counter::kIsRate);
}
void BM_AttentionPrefill(benchmark::State& state) { AttentionPrefill(state, 0); }
void BM_SlidingWindowPrefill(benchmark::State& state) {
  AttentionPrefill(state, static_cast<int>(state.range(3)));
}

// {n, m, k}: the 110M model's fused QKV, attention output, fused gate/up, down, classifier.
void Shapes(benchmark::internal::Benchmark* bench, int64_t n) {
  for (auto [m, k] : std::vector<std::pair<int64_t, int64_t>>{
           {2304, 768}, {768, 768}, {4096, 768}, {768, 2048}, {32000, 768}}) {
    bench->Args({n, m, k});
  }
  bench->ArgNames({"n", "m", "k"})->UseRealTime()->Unit(benchmark::kMicrosecond);
}

// One projection's LoRA term (Backend::AddLora) for `rows` rows all on one adapter of rank
// `rank` (a prefill chunk: rows > 1), or spread over `slots` adapters (a decode batch), at
// Llama-110M's 768 -> 768 shape and Llama-3-8B's 4096 -> 4096.
void BM_AddLora(benchmark::State& state) {
  const int64_t rows = state.range(0), rank = state.range(1), dim = state.range(2);
  const int32_t slots = static_cast<int32_t>(state.range(3));
  auto b = MakeCpu();
  const std::vector<float> a = Random(static_cast<size_t>(slots * rank * dim), 6);
  const std::vector<float> b_t = Random(static_cast<size_t>(slots * rank * dim), 7);
  const std::vector<float> x = Random(static_cast<size_t>(rows * dim), 8);
  std::vector<float> y(static_cast<size_t>(rows * dim));
  std::vector<float> scratch(static_cast<size_t>(rows * rank));
  std::vector<int32_t> row_slots(static_cast<size_t>(rows));
  for (int64_t i = 0; i < rows; ++i) row_slots[i] = static_cast<int32_t>(i % slots);
  const LoraStack stack{a.data(), b_t.data(), slots, static_cast<int>(rank), dim, dim};
  for (auto _ : state) {
    b->AddLora(Tensor::Of(const_cast<float*>(x.data()), DType::kF32, rows, dim), stack,
               row_slots.data(), scratch.data(), Tensor::Of(y.data(), DType::kF32, rows, dim));
    benchmark::ClobberMemory();
  }
  state.counters["GFLOP/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * 4.0 * rows * rank * dim / 1e9,
                         benchmark::Counter::kIsRate);
}

BENCHMARK(BM_ReadBandwidth)->Iterations(1)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_AddLora)
    ->ArgNames({"rows", "rank", "dim", "slots"})
    ->Args({128, 16, 768, 1})
    ->Args({128, 64, 768, 1})
    ->Args({32, 16, 768, 4})
    ->Args({512, 16, 4096, 1})
    ->Args({512, 64, 4096, 1})
    ->Args({64, 16, 4096, 4})
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_DecodeStep110M)
    ->ArgsProduct({{1, 2, 4, 8, 16, 32, 128}, {32, 16, 8, 6, 5, 4, -4}})
    ->ArgNames({"n", "bits"})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_QuantDecodeStep110M)
    ->ArgsProduct({{1, 4, 8, 16, 64, 512}, {8, 6, 5, 4, -4}, {0, 1}})
    ->ArgNames({"n", "bits", "isa"})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_MatMul)->Apply([](auto* b) { Shapes(b, 1); });
BENCHMARK(BM_MatMulAvx2)->Apply([](auto* b) { Shapes(b, 1); });
BENCHMARK(BM_Sgemm)->Apply([](auto* b) { Shapes(b, 1); });
BENCHMARK(BM_MatMul)->Apply([](auto* b) { Shapes(b, 4); });
BENCHMARK(BM_MatMul)->Apply([](auto* b) { Shapes(b, 8); });
BENCHMARK(BM_MatMul)->Apply([](auto* b) { Shapes(b, 16); });
BENCHMARK(BM_MatMulAvx2)->Apply([](auto* b) { Shapes(b, 16); });
BENCHMARK(BM_Sgemm)->Apply([](auto* b) { Shapes(b, 16); });
BENCHMARK(BM_MatMul)->Apply([](auto* b) { Shapes(b, 32); });
BENCHMARK(BM_MatMul)->Apply([](auto* b) { Shapes(b, 48); });
BENCHMARK(BM_MatMul)->Apply([](auto* b) { Shapes(b, 64); });
BENCHMARK(BM_MatMul)->Apply([](auto* b) { Shapes(b, 128); });
BENCHMARK(BM_MatMul)->Apply([](auto* b) { Shapes(b, 2048); });
BENCHMARK(BM_MatMul)->Apply([](auto* b) { Shapes(b, 512); });
BENCHMARK(BM_MatMulAvx2)->Apply([](auto* b) { Shapes(b, 512); });
BENCHMARK(BM_Sgemm)->Apply([](auto* b) { Shapes(b, 512); });
BENCHMARK(BM_MatMulBlasBackend)
    ->Args({512, 2304, 768})
    ->ArgNames({"n", "m", "k"})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_AttentionDecode)
    ->Args({1024, 1, 1, 32})
    ->Args({4096, 1, 1, 32})
    ->Args({1024, 8, 1, 32})
    ->Args({96, 1, 12, 32})
    ->Args({96, 16, 12, 32})
    ->Args({96, 32, 12, 32})
    ->Args({1024, 1, 1, 16})
    ->Args({4096, 1, 1, 16})
    ->Args({1024, 8, 1, 16})
    ->Args({96, 32, 12, 16})
    ->Args({1024, 1, 1, 8})
    ->Args({4096, 1, 1, 8})
    ->Args({1024, 8, 1, 8})
    ->Args({96, 32, 12, 8})
    ->ArgNames({"ctx", "seqs", "layers", "kv_bits"})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_AttentionPrefill)
    ->ArgsProduct({{512, 2048}, {0, 1}, {32, 16, 8}})
    ->ArgNames({"ctx", "best_isa", "kv_bits"})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
// A window costs the keys it covers: 16k contexts, Mistral's 4096-key window against none.
BENCHMARK(BM_SlidingWindowDecode)
    ->Args({16384, 1, 1, 16, 4096})
    ->Args({16384, 1, 1, 16, 0})
    ->Args({16384, 8, 1, 16, 4096})
    ->Args({16384, 8, 1, 16, 0})
    ->ArgNames({"ctx", "seqs", "layers", "kv_bits", "window"})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_SlidingWindowPrefill)
    ->ArgsProduct({{8192}, {1}, {16}, {0, 1024}})
    ->ArgNames({"ctx", "best_isa", "kv_bits", "window"})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace ringserve::kernels

BENCHMARK_MAIN();
