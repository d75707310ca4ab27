// CUDA-only checks beyond the shared op suites: start-up errors as statuses, no allocation
// on the step path, attention bit for bit against its host emulation and across split
// schedules, and MatMul batch invariance at real model shapes. Without a GPU the start-up
// tests and the "emu" cases (the same sources on the CPU emulation) run; the rest skip.
#include "kernels/cuda/cuda_backend.h"

#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/cuda/cuda_index.h"
#include "kernels/random_weights.h"
#include "tests/unit/kernels/attention_emulation.h"
#include "tests/unit/kernels/cuda_emu/cuda_emu_backend.h"
#include "tests/unit/kernels/kernel_test_util.h"

namespace ringserve::kernels::testing {
namespace {

using cuda::CudaBackend;
using cuda::SplitMode;
using ::testing::HasSubstr;

std::unique_ptr<Backend> MakeCuda(DType dtype, bool simple_matmul = false) {
  BackendOptions options;
  options.cuda_activation_dtype = dtype;
  options.cuda_simple_matmul = simple_matmul;
  auto backend = CreateBackend("cuda:0", options);
  return backend.ok() ? *std::move(backend) : nullptr;
}

bool SameBits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(CudaBackendStartTest, MissingDeviceOrBadOptionsAreStatusesNotCrashes) {
  const auto far = CreateBackend("cuda:99");
  ASSERT_FALSE(far.ok());
  EXPECT_TRUE(far.status().code() == absl::StatusCode::kNotFound ||
              far.status().code() == absl::StatusCode::kFailedPrecondition)
      << far.status();
  BackendOptions options;
  options.cuda_activation_dtype = DType::kQ8_0;
  EXPECT_EQ(CreateBackend("cuda:0", options).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CreateBackend("cuda:x").status().code(), absl::StatusCode::kInvalidArgument);
}

// On the GPU machine (deploy/gpu/check.sh sets RINGSERVE_EXPECT_GPU) a backend that cannot
// start would turn every device case into a skip and leave the run green: fail here instead,
// with the reason.
TEST(CudaBackendStartTest, StartsWhereAGpuIsExpected) {
  if (std::getenv("RINGSERVE_EXPECT_GPU") == nullptr) GTEST_SKIP() << "RINGSERVE_EXPECT_GPU unset";
  for (const DType dtype : {DType::kBF16, DType::kF16, DType::kF32}) {
    BackendOptions options;
    options.cuda_activation_dtype = dtype;
    const auto backend = CreateBackend("cuda:0", options);
    EXPECT_TRUE(backend.ok()) << DTypeName(dtype) << ": " << backend.status();
  }
}

// Every step's batch metadata goes up and its logits come down through AllocateHost's
// memory: on the GPU it must be page-locked, so those copies run at bus speed and an upload
// needs no staging copy. On the emulation, only the round trip.
TEST(CudaHostMemoryTest, HostBuffersArePageLockedAndRoundTrip) {
  int ran = 0;
  for (const bool emulated : {false, true}) {
    const std::unique_ptr<Backend> backend =
        emulated ? MakeEmulatedCudaBackend(DType::kBF16) : MakeCuda(DType::kBF16);
    if (backend == nullptr) continue;
    ++ran;
    constexpr size_t kFloats = 1000;
    auto host = backend->AllocateHost(kFloats * sizeof(float));
    auto device = backend->Allocate(kFloats * sizeof(float));
    ASSERT_TRUE(host.ok() && device.ok());
    auto* values = host->as<float>();
    for (size_t i = 0; i < kFloats; ++i) values[i] = static_cast<float>(i) * 0.5F;
    backend->CopyToDevice(device->data(), host->data(), kFloats * sizeof(float));
    backend->Synchronize();  // the upload is asynchronous from page-locked memory
    std::memset(host->data(), 0, kFloats * sizeof(float));
    backend->CopyToHost(host->data(), device->data(), kFloats * sizeof(float));
    for (size_t i = 0; i < kFloats; ++i) ASSERT_EQ(values[i], static_cast<float>(i) * 0.5F) << i;
    if (!emulated) {
      cudaPointerAttributes attributes{};
      ASSERT_EQ(cudaPointerGetAttributes(&attributes, host->data()), cudaSuccess);
      EXPECT_EQ(attributes.type, cudaMemoryTypeHost) << "not page-locked";
    }
  }
  if (ran == 0) GTEST_SKIP() << "no GPU and no CUDA emulation in this build";
}

// The strided copies a KV block in every layer takes (KvStorage): four rows of 96 bytes
// between pitches of 256 (device) and 96 (host), each direction, and device to device; the
// bytes between the rows stay as they were. On the CPU (the row-by-row defaults), the
// emulation (cudaMemcpy2DAsync's) and a GPU.
TEST(CudaHostMemoryTest, StridedCopiesMoveEveryRowAndNothingBetween) {
  constexpr size_t kRows = 4, kWidth = 96, kDevicePitch = 256, kHostPitch = kWidth;
  constexpr size_t kDeviceBytes = kRows * kDevicePitch;
  int ran = 0;
  for (const std::string kind : {"cpu", "emu", "cuda"}) {
    SCOPED_TRACE(kind);
    std::unique_ptr<Backend> backend;
    if (kind == "cpu") backend = *CreateBackend("cpu");
    if (kind == "emu") backend = MakeEmulatedCudaBackend(DType::kBF16);
    if (kind == "cuda") backend = MakeCuda(DType::kBF16);
    if (backend == nullptr) continue;
    ++ran;
    auto host = backend->AllocateHost(kRows * kHostPitch);
    auto back = backend->AllocateHost(kDeviceBytes);
    auto a = backend->Allocate(kDeviceBytes);
    auto b = backend->Allocate(kDeviceBytes);
    ASSERT_TRUE(host.ok() && back.ok() && a.ok() && b.ok());
    auto* rows = host->as<uint8_t>();
    for (size_t i = 0; i < kRows * kHostPitch; ++i) rows[i] = static_cast<uint8_t>(i * 7 + 1);
    backend->Fill(a->data(), kDeviceBytes, 0xAB);
    backend->Fill(b->data(), kDeviceBytes, 0xCD);
    // Host rows into a's rows, a's rows into b's (offset by 16 bytes), back to the host.
    backend->CopyToDevice2D(a->data(), kDevicePitch, host->data(), kHostPitch, kWidth, kRows);
    backend->CopyOnDevice2D(b->as<uint8_t>() + 16, kDevicePitch, a->data(), kDevicePitch, kWidth,
                            kRows);
    std::vector<uint8_t> rows_back(kRows * kHostPitch, 0);
    auto staging = backend->AllocateHost(kRows * kHostPitch);
    ASSERT_TRUE(staging.ok());
    backend->CopyToHostQueued2D(staging->data(), kHostPitch, b->as<uint8_t>() + 16, kDevicePitch,
                                kWidth, kRows);
    backend->CopyToHost(back->data(), b->data(), kDeviceBytes);  // waits for the queued copy
    std::memcpy(rows_back.data(), staging->data(), rows_back.size());
    EXPECT_EQ(std::memcmp(rows_back.data(), rows, rows_back.size()), 0);
    const auto* b_bytes = back->as<uint8_t>();
    for (size_t i = 0; i < kDeviceBytes; ++i) {
      const size_t column = i % kDevicePitch;
      const bool copied = column >= 16 && column < 16 + kWidth;
      const uint8_t expected = copied ? rows[(i / kDevicePitch) * kHostPitch + column - 16] : 0xCD;
      ASSERT_EQ(b_bytes[i], expected) << "byte " << i;
    }
  }
  EXPECT_GT(ran, 0);
}

// On the GPU ("cuda") and on the CPU emulation of the same sources ("emu").
class CudaDtypeTest : public ::testing::TestWithParam<std::tuple<std::string, DType>> {
 protected:
  void SetUp() override {
    const auto& [kind, dtype] = GetParam();
    emulated_ = kind == "emu";
    backend_ = emulated_ ? MakeEmulatedCudaBackend(dtype) : MakeCuda(dtype);
    if (backend_ == nullptr) GTEST_SKIP() << kind << " is not available";
  }
  void SetSplitMode(SplitMode mode) {
    if (emulated_) {
      SetEmulatedSplitMode(*backend_, static_cast<int>(mode));
    } else {
      static_cast<CudaBackend&>(*backend_).set_attention_split_mode(mode);
    }
  }
  // Through the Backend interface, as the tools switch it.
  void SetAttentionKernel(AttentionKernel kernel) {
    const absl::Status status = backend_->SetAttentionKernel(kernel);
    EXPECT_TRUE(status.ok()) << status;
    EXPECT_EQ(backend_->attention_kernel(), kernel);
  }
  std::unique_ptr<Backend> backend_;
  bool emulated_ = false;
};

// A small attention layer's worth of device state: K/V pool, qkv, batch.
struct AttentionFixture {
  static constexpr int kHq = 8, kHkv = 2, kHd = 128, kBlockSize = 16;
  static constexpr int kWidth = (kHq + 2 * kHkv) * kHd;
  PagedBatchHost batch;
  std::unique_ptr<ActivationArray> k, v, qkv;
  std::unique_ptr<DeviceBatch> batch_d;
  AttentionShape shape{kHq, kHkv, kHd, static_cast<float>(1.0 / std::sqrt(double{kHd}))};
  int num_blocks = 0;

  AttentionFixture(Backend& b, const std::vector<SeqSpec>& seqs, uint64_t seed) {
    std::mt19937_64 rng(seed);
    for (const SeqSpec& s : seqs) num_blocks += (s.context_len + kBlockSize - 1) / kBlockSize;
    batch = BuildBatch(seqs, kBlockSize, num_blocks, rng);
    const size_t kv_count = static_cast<size_t>(num_blocks) * kBlockSize * kHkv * kHd;
    k = std::make_unique<ActivationArray>(b, RandomFloats(rng, kv_count));
    v = std::make_unique<ActivationArray>(b, RandomFloats(rng, kv_count));
    qkv = std::make_unique<ActivationArray>(b, RandomFloats(rng, batch.num_tokens * kWidth, -3, 3));
    batch_d = std::make_unique<DeviceBatch>(b, batch);
  }
  KvLayerView Kv(Backend& b) const {
    return KvLayerView{k->data(), v->data(), b.activation_dtype(), num_blocks, kBlockSize,
                       kHkv,      kHd};
  }
  std::vector<float> Run(Backend& b, bool plan_reused = false) const {
    ActivationArray out(b, std::vector<float>(batch.num_tokens * kHq * kHd));
    AttentionBatch view = batch_d->view();
    view.plan_reused = plan_reused;
    b.PagedAttention(qkv->AsTensor(batch.num_tokens, kWidth), shape, view, Kv(b),
                     out.AsTensor(batch.num_tokens, kHq * kHd));
    return out.Download();
  }
  // The host emulation of every row, rounded as the device stores it.
  std::vector<float> Emulate(DType dtype) const {
    std::vector<float> out(static_cast<size_t>(batch.num_tokens) * kHq * kHd);
    for (int t = 0; t < batch.num_tokens; ++t) {
      const int32_t* table = &batch.block_tables[batch.token_seq[t] * batch.max_blocks_per_seq];
      for (int h = 0; h < kHq; ++h) {
        const int kv_head = h / (kHq / kHkv);
        auto at = [&, kv_head](const std::vector<float>& cache, int key) {
          return &cache[cuda::KvOffset(table, kBlockSize, key, kHkv, kHd, kv_head)];
        };
        EmulatedRow row;
        row.q = &qkv->host()[static_cast<size_t>(t) * kWidth + h * kHd];
        row.head_dim = kHd;
        row.scale = shape.scale;
        row.position = batch.positions[t];
        row.k = [&, at](int key) { return at(k->host(), key); };
        row.v = [&, at](int key) { return at(v->host(), key); };
        const std::vector<float> o = EmulateAttentionRow(row, {row.position + 1, false});
        std::copy(o.begin(), o.end(), out.begin() + (static_cast<size_t>(t) * kHq + h) * kHd);
      }
    }
    return RoundTo(dtype, out);
  }
};

const std::vector<SeqSpec> kMixedBatch = {{1200, 1}, {700, 1}, {33, 1}, {300, 37}, {2, 2}};

TEST_P(CudaDtypeTest, AttentionSplitSchedulesGiveTheSameBits) {
  Backend& b = *backend_;
  const AttentionFixture f(b, kMixedBatch, 5);
  SetSplitMode(SplitMode::kNever);
  const std::vector<float> in_block = f.Run(b);
  SetSplitMode(SplitMode::kAlways);
  const std::vector<float> split = f.Run(b);
  SetSplitMode(SplitMode::kAuto);
  const std::vector<float> automatic = f.Run(b);
  EXPECT_TRUE(SameBits(in_block, split)) << "split-parallel decode vs merged in the block";
  EXPECT_TRUE(SameBits(in_block, automatic));
}

// A batch marked plan_reused keeps the previous call's work items only when it is that call's
// batch (LlamaModel's layers after the first); another batch so marked is planned anew.
TEST_P(CudaDtypeTest, AttentionKeepsItsPlanOnlyForTheSameBatch) {
  Backend& b = *backend_;
  const AttentionFixture f(b, kMixedBatch, 5);
  const AttentionFixture g(b, {{40, 3}, {7, 1}, {300, 1}}, 6);
  const std::vector<float> fresh_f = f.Run(b);
  const std::vector<float> fresh_g = g.Run(b);
  EXPECT_TRUE(SameBits(g.Run(b, true), fresh_g)) << "the same batch, its plan kept";
  EXPECT_TRUE(SameBits(f.Run(b, true), fresh_f)) << "another batch must be planned";
}

// The tensor-core attention, switched on and off through Backend::SetAttentionKernel:
// split-parallel decode merges to the same bits as in-block merging; f32 refuses it and
// keeps the SIMT kernel, f16 and bf16 take the tensor-core kernel (whose rounded softmax
// weights give other bits); switching back gives the SIMT bits again. Its accuracy is
// checked by the op suite (kernel_ops_test.cc, TensorCoreAttention) and its batch
// invariance by batch_invariance_test.cc.
TEST_P(CudaDtypeTest, TensorCoreAttentionSplitSchedulesGiveTheSameBits) {
  Backend& b = *backend_;
  const AttentionFixture f(b, kMixedBatch, 5);
  const std::vector<float> simt = f.Run(b);
  if (b.activation_dtype() == DType::kF32) {
    const absl::Status refused = b.SetAttentionKernel(AttentionKernel::kTensorCore);
    EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition) << refused;
    EXPECT_THAT(refused.message(), HasSubstr("tensor-core attention needs f16 or bf16"));
    EXPECT_EQ(b.attention_kernel(), AttentionKernel::kSimt);
    EXPECT_TRUE(SameBits(f.Run(b), simt)) << "a refused switch must change nothing";
    return;
  }
  SetAttentionKernel(AttentionKernel::kTensorCore);
  SetSplitMode(SplitMode::kNever);
  const std::vector<float> in_block = f.Run(b);
  SetSplitMode(SplitMode::kAlways);
  const std::vector<float> split = f.Run(b);
  EXPECT_TRUE(SameBits(in_block, split)) << "split-parallel decode vs merged in the block";
  SetAttentionKernel(AttentionKernel::kSimt);
  EXPECT_TRUE(SameBits(f.Run(b), simt)) << "switching back must bring back the SIMT kernel";
  EXPECT_FALSE(SameBits(in_block, simt)) << "SetAttentionKernel did not reach the kernel";
}

// BackendOptions::cuda_attention_kernel at creation and SetAttentionKernel later select the
// same kernel: same bits (and not the SIMT ones, checked above).
TEST(CudaAttentionKernelTest, OptionAndSwitchRunTheSameKernel) {
  std::unique_ptr<Backend> chosen =
      MakeEmulatedCudaBackend(DType::kBF16, AttentionKernel::kTensorCore);
  std::unique_ptr<Backend> switched = MakeEmulatedCudaBackend(DType::kBF16);
  if (chosen == nullptr || switched == nullptr) GTEST_SKIP() << "emulation is not available";
  EXPECT_EQ(chosen->attention_kernel(), AttentionKernel::kTensorCore);
  EXPECT_EQ(switched->attention_kernel(), AttentionKernel::kSimt);
  ASSERT_TRUE(switched->SetAttentionKernel(AttentionKernel::kTensorCore).ok());
  const std::vector<SeqSpec> batch = {{300, 1}, {40, 9}};
  const std::vector<float> want = AttentionFixture(*chosen, batch, 3).Run(*chosen);
  EXPECT_TRUE(SameBits(AttentionFixture(*switched, batch, 3).Run(*switched), want));
}

// f32 activations have no tensor-core kernel: the option is refused at creation as the
// switch is refused later (CudaDtypeTest above), rather than running SIMT under its name.
TEST(CudaAttentionKernelTest, F32RefusesTheTensorCoreKernelAtCreation) {
  if (MakeEmulatedCudaBackend(DType::kF32) == nullptr) GTEST_SKIP() << "no emulation";
  EXPECT_EQ(MakeEmulatedCudaBackend(DType::kF32, AttentionKernel::kTensorCore), nullptr);
  EXPECT_NE(MakeEmulatedCudaBackend(DType::kF16, AttentionKernel::kTensorCore), nullptr);
}

TEST_P(CudaDtypeTest, AttentionMatchesHostEmulationBitForBit) {
  Backend& b = *backend_;
  const AttentionFixture f(b, kMixedBatch, 9);
  const std::vector<float> got = f.Run(b);
  const std::vector<float> want = f.Emulate(b.activation_dtype());
  ASSERT_EQ(got.size(), want.size());
  size_t mismatches = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::memcmp(&got[i], &want[i], sizeof(float)) != 0 && mismatches++ < 5) {
      ADD_FAILURE() << "element " << i << " (token " << i / (f.kHq * f.kHd) << "): device "
                    << got[i] << " emulation " << want[i];
    }
  }
  EXPECT_EQ(mismatches, 0U);
}

// A layer's ops over several decode steps of changing batch size: after the first step (which
// may plan cuBLASLt algorithms), no step allocates device memory.
TEST_P(CudaDtypeTest, StepPathDoesNotAllocate) {
  Backend& b = *backend_;
  std::mt19937_64 rng(1);
  const int dim = 256, hidden = 512, vocab = 1000, max_tokens = 64;
  auto Upload = [&](int64_t rows, int64_t cols) {
    const std::vector<float> w = RandomFloats(rng, rows * cols, -0.1F, 0.1F);
    return *b.UploadWeight(DType::kF32, rows, cols, w.data());
  };
  const Weight embed = Upload(vocab, dim), norm = Upload(1, dim),
               wqkv = Upload(AttentionFixture::kWidth, dim),
               wo = Upload(dim, AttentionFixture::kHq * AttentionFixture::kHd),
               w_gate_up = Upload(2 * hidden, dim), w_down = Upload(dim, hidden);
  ActivationArray residual(b, std::vector<float>(max_tokens * dim)),
      normed(b, std::vector<float>(max_tokens * dim)),
      qkv(b, std::vector<float>(max_tokens * AttentionFixture::kWidth)),
      attn(b, std::vector<float>(max_tokens * AttentionFixture::kHq * AttentionFixture::kHd)),
      delta(b, std::vector<float>(max_tokens * dim)),
      gate_up(b, std::vector<float>(max_tokens * 2 * hidden)),
      act(b, std::vector<float>(max_tokens * hidden));
  DeviceArray<float> logits(b, std::vector<float>(max_tokens * vocab));
  std::vector<float> inv_freq(AttentionFixture::kHd / 2, 0.01F);
  DeviceArray<float> freq(b, inv_freq);
  const RopeParams rope{freq.data(), AttentionFixture::kHd, RopeLayout::kHalves};
  int64_t allocations = -1;
  for (int step = 0; step < 5; ++step) {
    // Decode batches of 1..8 sequences at long contexts (split-parallel attention).
    std::vector<SeqSpec> seqs;
    for (int s = 0; s <= step + (step % 2) * 3; ++s) seqs.push_back({600 + 97 * s, 1});
    const AttentionFixture f(b, seqs, step);  // its setup allocates; counted before the step
    const std::vector<int32_t> ids(f.batch.num_tokens, 7), rows(f.batch.num_tokens, 0);
    DeviceArray<int32_t> ids_d(b, ids), rows_d(b, rows);
    const int64_t before = b.num_allocations();
    const int n = f.batch.num_tokens;
    b.EmbeddingGather(embed, ids_d.data(), residual.AsTensor(n, dim));
    b.RmsNorm(residual.AsTensor(n, dim), norm, 1e-5F, normed.AsTensor(n, dim));
    b.MatMul(normed.AsTensor(n, dim), wqkv, qkv.AsTensor(n, AttentionFixture::kWidth));
    b.RopeAndWriteKv(qkv.AsTensor(n, AttentionFixture::kWidth), f.shape, rope, f.batch_d->view(),
                     f.Kv(b));
    b.PagedAttention(qkv.AsTensor(n, AttentionFixture::kWidth), f.shape, f.batch_d->view(), f.Kv(b),
                     attn.AsTensor(n, AttentionFixture::kHq * AttentionFixture::kHd));
    b.MatMul(attn.AsTensor(n, AttentionFixture::kHq * AttentionFixture::kHd), wo,
             delta.AsTensor(n, dim));
    b.AddRmsNorm(residual.AsTensor(n, dim), delta.AsTensor(n, dim), norm, 1e-5F,
                 normed.AsTensor(n, dim));
    b.MatMul(normed.AsTensor(n, dim), w_gate_up, gate_up.AsTensor(n, 2 * hidden));
    b.SiluMul(gate_up.AsTensor(n, 2 * hidden), act.AsTensor(n, hidden));
    b.MatMul(act.AsTensor(n, hidden), w_down, residual.AsTensor(n, dim));
    b.GatherRows(residual.AsTensor(n, dim), rows_d.data(), normed.AsTensor(n, dim));
    b.MatMul(normed.AsTensor(n, dim), embed, logits.AsTensor(n, vocab));
    b.Synchronize();
    if (step > 0) {
      EXPECT_EQ(b.num_allocations(), before) << "step " << step;
    }
    allocations = b.num_allocations();
  }
  EXPECT_GT(allocations, 0);
}

// Made on the device, the values the host makes, converted as UploadWeight converts them;
// three streams at odd offsets, none a whole number of thread blocks.
TEST_P(CudaDtypeTest, RandomWeightIsTheHostValuesUploaded) {
  Backend& b = *backend_;
  constexpr int64_t kCols = 37;
  const RandomPart parts[] = {{0x1234, 3}, {~uint64_t{0}, 1}, {7, 9}};
  std::vector<float> values;
  for (const RandomPart& p : parts) {
    std::vector<float> part(p.rows * kCols);
    FillRandomUniform(p.state, 0.125F, part.data(), static_cast<int64_t>(part.size()));
    values.insert(values.end(), part.begin(), part.end());
  }
  auto want = b.UploadWeight(DType::kF32, 13, kCols, values.data());
  auto got = b.RandomWeight(parts, kCols, 0.125F);
  ASSERT_TRUE(want.ok() && got.ok()) << want.status() << got.status();
  EXPECT_EQ(got->dtype, b.activation_dtype());
  EXPECT_EQ(got->rows, 13);
  EXPECT_EQ(got->cols, kCols);
  ASSERT_EQ(got->buffer.bytes(), want->buffer.bytes());
  std::vector<uint8_t> got_bytes(got->buffer.bytes()), want_bytes(want->buffer.bytes());
  b.CopyToHost(got_bytes.data(), got->buffer.data(), got_bytes.size());
  b.CopyToHost(want_bytes.data(), want->buffer.data(), want_bytes.size());
  EXPECT_EQ(got_bytes, want_bytes);
}

INSTANTIATE_TEST_SUITE_P(Dtypes, CudaDtypeTest,
                         ::testing::Combine(::testing::Values("cuda", "emu"),
                                            ::testing::Values(DType::kBF16, DType::kF16,
                                                              DType::kF32)),
                         [](const ::testing::TestParamInfo<CudaDtypeTest::ParamType>& info) {
                           return std::get<0>(info.param) + "_" +
                                  std::string(DTypeName(std::get<1>(info.param)));
                         });

// MatMul rows bit for bit alone and in every batch size at the products LlamaModel runs at
// Llama-3-8B's shapes (each (m, k, output dtype) gets its own cuBLASLt algorithm), through
// cuBLASLt's fixed algorithms.
struct ModelShape {
  int64_t m, k;
  bool f32_out;
};

class CudaMatMulShapeTest : public ::testing::TestWithParam<ModelShape> {};

// A product of m x k random weights over 300 rows, then again over slices of every size at
// the start, at row 7 and at the end: each slice's bytes must be the full product's rows.
void ExpectRowsMatchAloneAndInEveryBatchSize(Backend& b, int64_t m, int64_t k, DType out_dtype) {
  constexpr int64_t kRows = 300;
  std::mt19937_64 rng(static_cast<uint64_t>(m * 31 + k));
  // Made on the device: the head's 128256 x 4096 would take seconds on the host.
  const RandomPart part{.state = static_cast<uint64_t>(m * 31 + k), .rows = m};
  auto w = b.RandomWeight({&part, 1}, k, 0.05F);
  ASSERT_TRUE(w.ok()) << w.status();
  ActivationArray x(b, RandomFloats(rng, kRows * k));
  auto buffer = b.Allocate(DTypeBytes(out_dtype, kRows * m));
  ASSERT_TRUE(buffer.ok());
  auto product = [&](int64_t first, int64_t rows) {
    b.MatMul(x.AsTensor(kRows, k).Rows(first, rows), *w,
             Tensor::Of(buffer->data(), out_dtype, rows, m));
    std::vector<uint8_t> bytes(DTypeBytes(out_dtype, rows * m));
    b.CopyToHost(bytes.data(), buffer->data(), bytes.size());
    return bytes;
  };
  const std::vector<uint8_t> all = product(0, kRows);
  const size_t row_bytes = DTypeBytes(out_dtype, m);
  for (const int64_t size : {1, 2, 3, 5, 8, 13, 16, 31, 32, 33, 64, 100, 128, 129, 256}) {
    for (const int64_t first : {int64_t{0}, int64_t{7}, kRows - size}) {
      const std::vector<uint8_t> got = product(first, size);
      EXPECT_EQ(std::memcmp(got.data(), all.data() + first * row_bytes, got.size()), 0)
          << size << " rows at " << first;
    }
  }
}

TEST_P(CudaMatMulShapeTest, RowsMatchAloneAndInEveryBatchSize) {
  const auto [m, k, f32_out] = GetParam();
  std::unique_ptr<Backend> backend = MakeCuda(DType::kBF16);
  if (backend == nullptr) GTEST_SKIP() << "no CUDA device";
  ExpectRowsMatchAloneAndInEveryBatchSize(*backend, m, k, f32_out ? DType::kF32 : DType::kBF16);
  EXPECT_EQ(static_cast<CudaBackend&>(*backend).num_simple_matmul_plans(), 0)
      << "no split-K-free cuBLASLt algorithm: this shape runs on the (slow) simple kernel";
}

// --matmul-algo-rows and the product bench's sweep choose cuBLASLt's algorithm for other row
// counts: each choice must keep rows batch invariant, at the decode-bound shapes (wo, w_down).
TEST(CudaMatMulTest, EveryAlgoRowsChoiceKeepsRowsBatchInvariant) {
  std::unique_ptr<Backend> backend = MakeCuda(DType::kBF16);
  if (backend == nullptr) GTEST_SKIP() << "no CUDA device";
  Backend& b = *backend;
  EXPECT_EQ(b.matmul_algo_rows(), 128);
  EXPECT_EQ(b.SetMatMulAlgoRows(0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(b.SetMatMulAlgoRows((1 << 16) + 1).code(), absl::StatusCode::kInvalidArgument);
  for (const int64_t rows : {16, 64, 256}) {
    ASSERT_TRUE(b.SetMatMulAlgoRows(rows).ok());
    EXPECT_EQ(b.matmul_algo_rows(), rows);
    SCOPED_TRACE(absl::StrCat("algorithm for ", rows, " rows"));
    ExpectRowsMatchAloneAndInEveryBatchSize(b, 4096, 4096, DType::kF32);
    ExpectRowsMatchAloneAndInEveryBatchSize(b, 4096, 14336, DType::kF32);
  }
  std::unique_ptr<Backend> simple = MakeCuda(DType::kBF16, /*simple_matmul=*/true);
  ASSERT_NE(simple, nullptr);
  EXPECT_EQ(simple->matmul_algo_rows(), 0);
  EXPECT_EQ(simple->SetMatMulAlgoRows(64).code(), absl::StatusCode::kFailedPrecondition);
}

INSTANTIATE_TEST_SUITE_P(
    Llama3_8B, CudaMatMulShapeTest,
    // wqkv, wo and w_down write f32 (q/k/v and the residual stream), w_gate_up the
    // activation dtype, the head f32 logits; and the bf16-out shapes of other layouts.
    ::testing::Values(ModelShape{6144, 4096, true}, ModelShape{4096, 4096, true},
                      ModelShape{28672, 4096, false}, ModelShape{4096, 14336, true},
                      ModelShape{128256, 4096, true}, ModelShape{4096, 4096, false},
                      ModelShape{14336, 4096, false}, ModelShape{32000, 4096, true}),
    [](const ::testing::TestParamInfo<ModelShape>& info) {
      return absl::StrCat(info.param.m, "x", info.param.k, info.param.f32_out ? "_f32out" : "");
    });

// cuBLASLt and the simple kernel agree at a model shape (within f32 accumulation error).
TEST(CudaMatMulTest, CublasLtAgreesWithTheSimpleKernel) {
  std::unique_ptr<Backend> fast = MakeCuda(DType::kBF16), simple = MakeCuda(DType::kBF16, true);
  if (fast == nullptr || simple == nullptr) GTEST_SKIP() << "no CUDA device";
  const int64_t n = 37, m = 4096, k = 4096;
  std::mt19937_64 rng(2);
  const std::vector<float> w_host = RandomFloats(rng, m * k, -0.05F, 0.05F),
                           x_host = RandomFloats(rng, n * k);
  std::vector<std::vector<float>> results;
  for (Backend* b : {fast.get(), simple.get()}) {
    auto w = b->UploadWeight(DType::kF32, m, k, w_host.data());
    ASSERT_TRUE(w.ok());
    ActivationArray x(*b, x_host);
    DeviceArray<float> y(*b, std::vector<float>(n * m));
    b->MatMul(x.AsTensor(n, k), *w, y.AsTensor(n, m));
    results.push_back(y.Download());
  }
  for (size_t i = 0; i < results[0].size(); ++i) {
    ASSERT_NEAR(results[0][i], results[1][i], 1e-3) << i;  // |y| ~ 1, k = 4096
  }
}

}  // namespace
}  // namespace ringserve::kernels::testing
