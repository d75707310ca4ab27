// A bf16, f16 or quantized checkpoint on the CPU keeps its matrices in that type (half, or
// about a quarter, of the memory and the bytes each decode step reads) and must give the
// logits of the same checkpoint converted to f32: bf16 and f16 bit for bit (the kernels make
// each weight's exact f32 value as they load it), quantized ones within what quantizing the
// activations for the integer products moves them.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <iostream>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "kernels/dtype.h"
#include "tests/unit/model/test_devices.h"
#include "worker/model/checkpoint.h"
#include "worker/model/gguf_blocks.h"
#include "worker/model/llama_model.h"
#include "worker/model/presets.h"
#include "worker/model/tiny_model.h"
#include "worker/model/weight_source.h"

namespace ringserve::model {
namespace {

// Whether every device serves packed tensor `t` as the file's own values: it has a compact
// dtype, and its stack is kept apart (StackKeptApart) or joins as a compact dtype; else the
// Q8_0 blocks it widens to.
bool ServedAsFileValues(const Checkpoint& c, const HostTensor& t) {
  const auto compact = [](const HostTensor& part) {
    return part.packing == Packing::kAsStored ? std::nullopt : CompactDTypeOf(part.packing);
  };
  if (!compact(t).has_value()) return false;
  std::vector<kernels::DType> stack;
  for (const std::string& name : StackedWith(t.name)) {
    const absl::StatusOr<const HostTensor*> part = c.Find(name);
    if (!part.ok()) continue;  // a stack the model does not make
    const std::optional<kernels::DType> dtype = compact(**part);
    stack.push_back(dtype.value_or((*part)->dtype));
  }
  if (StackKeptApart(stack)) return true;
  kernels::DType joined = stack.front();
  for (const kernels::DType dtype : stack) joined = JoinedDType(joined, dtype);
  return joined != kernels::DType::kQ8_0 && kernels::IsBlockDType(joined);
}

enum class Values { kAsServedOnCpu, kInTheFile };

// `half` with every tensor converted to f32 (the data owned by the copy): packed tensors
// with the values the CPU serves, or the file's own values.
std::unique_ptr<Checkpoint> ToF32(const Checkpoint& half, Values values = Values::kAsServedOnCpu) {
  auto f32 = std::make_unique<Checkpoint>();
  f32->config = half.config;
  f32->format = half.format;
  f32->source_path = half.source_path + " (as f32)";
  for (const HostTensor& t : half.tensors()) {
    HostTensor wide = t;
    const auto count = static_cast<size_t>(t.NumElements());
    auto* data = static_cast<float*>(f32->AllocateOwned(count * sizeof(float)));
    const auto* packed = static_cast<const uint8_t*>(t.data);
    if (t.packing == Packing::kAsStored) {
      kernels::ConvertToFloat(t.dtype, t.data, count, data);
    } else if (values == Values::kInTheFile || ServedAsFileValues(half, t)) {
      Unpack(t.packing, packed, t.NumElements(), data);
    } else {
      std::vector<uint8_t> widened(kernels::DTypeBytes(t.dtype, count));
      WidenToQ8_0(t.packing, packed, t.NumElements(), widened.data());
      kernels::ConvertToFloat(t.dtype, widened.data(), count, data);
    }
    wide.packing = Packing::kAsStored;
    wide.dtype = kernels::DType::kF32;
    wide.data = data;
    wide.bytes = count * sizeof(float);
    f32->AddTensor(std::move(wide));
  }
  return f32;
}

std::vector<float> Logits(const Checkpoint& checkpoint, kernels::Backend& backend,
                          size_t* weight_bytes) {
  ModelOptions options;
  options.block_size = 16;
  options.num_kv_blocks = 8;
  auto model = LlamaModel::Create(checkpoint, &backend, options);
  EXPECT_TRUE(model.ok()) << model.status();
  if (!model.ok()) return {};
  *weight_bytes = (*model)->weight_bytes();
  const std::vector<int32_t> prompt = {1, 17, 300, 42, 9, 250, 77, 3, 128, 64, 200};
  const std::vector<int32_t> table = {0, 1};
  std::vector<float> logits;
  const SequenceChunk chunk{.tokens = prompt, .block_table = table, .sample = true};
  EXPECT_TRUE((*model)->Forward({&chunk, 1}, &logits).ok());
  return logits;
}

// The CPU multiplies quantized matrices by activations quantized to int8 per 32 values
// (kernels/cpu/quant_matmul.h): a quantized checkpoint's logits sit this close to those of
// its values in f32 (testing::LogitsError, relative to the largest logit, which random
// weights keep small: these models measure 0.9e-2 to 3.6e-2). quant_matmul_test holds the
// products to their arithmetic bit for bit; here a matrix served with the wrong values, or
// in the wrong place, misses by far more.
constexpr double kQuantizedActivations = 5e-2;

// How close two checkpoints' logits must be.
enum class Match {
  kBitForBit,          // a's matrices hold b's values in another type (bf16, f16)
  kWithinQuantization  // a's matrices are quantized: x is too (kQuantizedActivations)
};

// Runs both checkpoints (the same model's values, stored two ways) and requires the logits
// `match` names; returns each one's weight bytes on `backend`.
std::pair<size_t, size_t> ExpectSameLogits(const Checkpoint& a, const Checkpoint& b,
                                           kernels::Backend& backend, int32_t vocab, Match match) {
  std::pair<size_t, size_t> bytes;
  const std::vector<float> from_a = Logits(a, backend, &bytes.first);
  const std::vector<float> from_b = Logits(b, backend, &bytes.second);
  EXPECT_EQ(from_a.size(), static_cast<size_t>(vocab));
  EXPECT_EQ(from_a.size(), from_b.size());
  if (from_a.size() != from_b.size()) return bytes;
  if (match == Match::kBitForBit) {
    EXPECT_EQ(std::memcmp(from_a.data(), from_b.data(), from_a.size() * sizeof(float)), 0)
        << a.source_path << " against " << b.source_path;
    return bytes;
  }
  const double error = testing::LogitsError(from_a, from_b);
  std::cout << a.source_path << ": logits within " << error << " of its values in f32\n";
  EXPECT_LE(error, kQuantizedActivations) << a.source_path << " against " << b.source_path;
  EXPECT_GT(error, 0.0) << "quantized activations change the logits";
  return bytes;
}

class HalfWeightsTest : public ::testing::TestWithParam<kernels::DType> {};

TEST_P(HalfWeightsTest, GiveTheLogitsOfTheirF32Conversion) {
  const std::string path =
      ::testing::TempDir() + "half_" + std::string(kernels::DTypeName(GetParam())) + ".gguf";
  absl::StatusOr<ModelConfig> config = PresetConfig("tiny");
  ASSERT_TRUE(config.ok());
  config->tied_embeddings = false;  // the output head as a matrix of its own, too
  config->hidden_dim = 192;         // rows of whole Q8_0 blocks
  ASSERT_TRUE(WriteRandomModel(path, *config, GetParam()).ok());
  auto half = OpenCheckpoint(path);
  ASSERT_TRUE(half.ok()) << half.status();
  const std::unique_ptr<Checkpoint> f32 = ToF32(**half);
  auto backend = kernels::CreateBackend("cpu", {.num_threads = 2});
  ASSERT_TRUE(backend.ok());

  const auto [half_bytes, f32_bytes] = ExpectSameLogits(
      **half, *f32, **backend, config->vocab_size,
      kernels::IsBlockDType(GetParam()) ? Match::kWithinQuantization : Match::kBitForBit);
  // Norm gains stay f32; every matrix is half (Q8_0: a byte and 1/8 of a scale a value).
  const size_t most =
      GetParam() == kernels::DType::kQ8_0 ? f32_bytes * 29 / 100 : f32_bytes * 51 / 100;
  EXPECT_LT(half_bytes, most) << half_bytes << " against " << f32_bytes;
  EXPECT_EQ(CheckpointWeightSource(**half).BytesOn(**backend), half_bytes);
}

INSTANTIATE_TEST_SUITE_P(Dtypes, HalfWeightsTest,
                         ::testing::Values(kernels::DType::kBF16, kernels::DType::kF16,
                                           kernels::DType::kQ8_0),
                         [](const auto& info) {
                           return std::string(kernels::DTypeName(info.param));
                         });

// GGUF files of Q4_0 or Q5_0 matrices (ringserve-model make-random --dtype q4_0) load as
// such, a CPU model holds them as kQ4Affine (0.75 bytes a value) or kQ5Affine (0.875), and its
// logits are those of the file's f32 conversion (within kQuantizedActivations).
TEST(PackedWeightsTest, Q4_0AndQ5_0FilesGiveTheLogitsOfTheirF32Conversion) {
  absl::StatusOr<ModelConfig> config = PresetConfig("tiny");
  ASSERT_TRUE(config.ok());
  config->tied_embeddings = false;
  config->hidden_dim = 192;
  auto backend = kernels::CreateBackend("cpu", {.num_threads = 2});
  ASSERT_TRUE(backend.ok());
  for (const Packing packing : {Packing::kQ4_0, Packing::kQ5_0}) {
    const std::string path =
        ::testing::TempDir() + "packed_" + (packing == Packing::kQ4_0 ? "q4_0" : "q5_0") + ".gguf";
    ASSERT_TRUE(WriteRandomModel(path, *config, kernels::DType::kQ8_0, {packing}).ok());
    auto packed = OpenCheckpoint(path);
    ASSERT_TRUE(packed.ok()) << packed.status();
    const HostTensor* q = *(*packed)->Find("blk.0.attn_q.weight");
    EXPECT_EQ(q->packing, packing);
    EXPECT_EQ(q->dtype, kernels::DType::kQ8_0);
    EXPECT_EQ(q->bytes, static_cast<size_t>(PackedBytes(packing, q->NumElements())));
    const std::unique_ptr<Checkpoint> f32 = ToF32(**packed);
    const auto [packed_bytes, f32_bytes] =
        ExpectSameLogits(**packed, *f32, **backend, config->vocab_size, Match::kWithinQuantization);
    EXPECT_LT(packed_bytes, f32_bytes * (packing == Packing::kQ4_0 ? 20 : 23) / 100);
  }
}

// A checkpoint whose matrices are Q4_0 or Q5_0 blocks (GGUF's packings) gives the logits of
// the same values held as f32: each block is served as an affine block of the same values.
TEST(PackedWeightsTest, Q4_0AndQ5_0GiveTheLogitsOfTheirValuesInF32) {
  const std::string path = ::testing::TempDir() + "packed_base.gguf";
  absl::StatusOr<ModelConfig> config = PresetConfig("tiny");
  ASSERT_TRUE(config.ok());
  config->tied_embeddings = false;
  config->hidden_dim = 192;  // rows of whole blocks
  ASSERT_TRUE(WriteRandomModel(path, *config, kernels::DType::kF32).ok());
  auto base = OpenCheckpoint(path);
  ASSERT_TRUE(base.ok()) << base.status();
  auto backend = kernels::CreateBackend("cpu", {.num_threads = 2});
  ASSERT_TRUE(backend.ok());
  std::mt19937 rng(12);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> scale(0.002F, 0.02F);
  for (const Packing packing : {Packing::kQ4_0, Packing::kQ5_0}) {
    Checkpoint packed;
    Checkpoint wide;
    for (Checkpoint* c : {&packed, &wide}) {
      c->config = (*base)->config;
      c->format = "test";
    }
    for (const HostTensor& t : (*base)->tensors()) {
      if (t.shape.size() != 2) {  // norm gains stay f32 in both
        packed.AddTensor(t);
        wide.AddTensor(t);
        continue;
      }
      const int64_t count = t.NumElements();
      const int64_t bytes = PackedBytes(packing, count);
      const int block = BlockBytes(packing);
      auto* blocks = static_cast<uint8_t*>(packed.AllocateOwned(static_cast<size_t>(bytes)));
      for (int64_t b = 0; b < count / 32; ++b) {
        const uint16_t d = kernels::FloatToHalf(scale(rng));
        std::memcpy(blocks + b * block, &d, 2);
        for (int i = 2; i < block; ++i) blocks[b * block + i] = static_cast<uint8_t>(byte(rng));
      }
      HostTensor p = t;
      p.dtype = kernels::DType::kQ8_0;
      p.data = blocks;
      p.bytes = static_cast<size_t>(bytes);
      p.packing = packing;
      packed.AddTensor(p);
      // The same values in f32, through the Q8_0 blocks the packing widens to.
      std::vector<uint8_t> q8(kernels::DTypeBytes(kernels::DType::kQ8_0, count));
      WidenToQ8_0(packing, blocks, count, q8.data());
      auto* values = static_cast<float*>(wide.AllocateOwned(count * sizeof(float)));
      kernels::ConvertToFloat(kernels::DType::kQ8_0, q8.data(), count, values);
      HostTensor w = t;
      w.data = values;
      w.bytes = count * sizeof(float);
      wide.AddTensor(w);
    }
    const auto [packed_bytes, wide_bytes] =
        ExpectSameLogits(packed, wide, **backend, config->vocab_size, Match::kWithinQuantization);
    const bool affine = (*backend)->TakesCompactWeights();
    EXPECT_TRUE(affine);
    EXPECT_EQ(CheckpointWeightSource(packed, affine).BytesOn(**backend), packed_bytes);
    EXPECT_LT(packed_bytes, wide_bytes * (packing == Packing::kQ4_0 ? 20 : 29) / 100);
  }
}

// A small model whose matrices' rows are whole 256-value K-quant super-blocks; vocab 0 keeps
// the preset's.
absl::StatusOr<ModelConfig> KQuantConfig(int layers, int vocab) {
  absl::StatusOr<ModelConfig> config = PresetConfig("tiny");
  if (!config.ok()) return config;
  config->dim = 256;
  config->hidden_dim = 512;
  config->num_heads = 4;
  config->num_kv_heads = 2;
  config->head_dim = 64;
  config->num_layers = layers;
  if (vocab > 0) config->vocab_size = vocab;
  config->tied_embeddings = false;
  return config;
}

// Files of K-quants, as llama.cpp's Q4_K_M and Q5_K_M mix them (ringserve-model make-random
// --dtype q4_k_m: Q4_K matrices, Q6_K for output, attn_v and ffn_down), load; a CPU model
// holds Q4_K and Q5_K matrices as their affine dtype and the Q6_K ones as kQ6, the file's
// own values (Q and K too: their stack with a Q6_K V is kept apart), and gives the logits of
// those values in f32. Serving them (multiplied by quantized activations) moves the logits
// by a fraction of what quantizing the f32 weights to the file's format did.
TEST(PackedWeightsTest, KQuantMixesStayCloseToTheFileValues) {
  // 2^18 values a head: widened on two threads or more.
  const absl::StatusOr<ModelConfig> config = KQuantConfig(/*layers=*/2, /*vocab=*/1024);
  ASSERT_TRUE(config.ok());
  auto backend = kernels::CreateBackend("cpu", {.num_threads = 2});
  ASSERT_TRUE(backend.ok());
  const std::string f32_path = ::testing::TempDir() + "kquant_f32.gguf";
  ASSERT_TRUE(WriteRandomModel(f32_path, *config, kernels::DType::kF32).ok());
  auto original = OpenCheckpoint(f32_path);  // the same random values, unquantized
  ASSERT_TRUE(original.ok()) << original.status();
  size_t bytes = 0;
  const std::vector<float> exact = Logits(**original, **backend, &bytes);
  std::vector<size_t> mix_bytes;
  for (const MatrixPacking mix : {MatrixPacking{Packing::kQ4_K, Packing::kQ6_K},
                                  MatrixPacking{Packing::kQ5_K, Packing::kQ6_K}}) {
    const std::string name(InfoOf(mix.packing).name);
    const std::string path = ::testing::TempDir() + "kquant_" + name + ".gguf";
    ASSERT_TRUE(WriteRandomModel(path, *config, kernels::DType::kQ8_0, mix).ok());
    auto packed = OpenCheckpoint(path);
    ASSERT_TRUE(packed.ok()) << packed.status();
    EXPECT_EQ((*(*packed)->Find("blk.1.attn_q.weight"))->packing, mix.packing);
    EXPECT_EQ((*(*packed)->Find("blk.1.ffn_down.weight"))->packing, Packing::kQ6_K);
    EXPECT_EQ((*(*packed)->Find("output.weight"))->packing, Packing::kQ6_K);
    const auto [packed_bytes, f32_bytes] = ExpectSameLogits(
        **packed, *ToF32(**packed), **backend, config->vocab_size, Match::kWithinQuantization);
    EXPECT_LT(packed_bytes, f32_bytes * 29 / 100);
    mix_bytes.push_back(packed_bytes);
    // What `ringserve-model info` and the memory check before the upload count.
    EXPECT_EQ(CheckpointWeightSource(**packed, true).BytesOn(**backend), packed_bytes) << name;

    const std::vector<float> in_file =
        Logits(*ToF32(**packed, Values::kInTheFile), **backend, &bytes);
    const std::vector<float> served = Logits(**packed, **backend, &bytes);
    ASSERT_EQ(in_file.size(), exact.size());
    ASSERT_EQ(served.size(), exact.size());
    double requantized = 0;  // served against the file's values
    double quantized = 0;    // the file's values against the f32 weights
    for (size_t i = 0; i < exact.size(); ++i) {
      requantized = std::max(requantized, double{std::fabs(served[i] - in_file[i])});
      quantized = std::max(quantized, double{std::fabs(in_file[i] - exact[i])});
    }
    EXPECT_GT(quantized, 0.0) << name;
    EXPECT_LT(requantized, 0.25 * quantized) << name;
    std::cout << name << "_m: largest logit change from serving the file " << requantized
              << ", from quantizing f32 to the file " << quantized << "\n";
  }
  // Q4_K_M's 4-bit matrices take 0.75 bytes a value, Q5_K_M's 5-bit ones 0.875: the mixes
  // differ by an eighth of a byte for each value of the matrices held affine (not re-rounded
  // to Q8_0's 1.0625), and by nothing else.
  ASSERT_EQ(mix_bytes.size(), 2U);
  // attn_q and attn_k (kept apart from the Q6_K attn_v), attn_output, ffn_gate, ffn_up;
  // token_embd.
  const int64_t q_dim = int64_t{config->num_heads} * config->head_dim;
  const int64_t kv_dim = int64_t{config->num_kv_heads} * config->head_dim;
  const int64_t affine_values =
      config->num_layers * ((q_dim + kv_dim) * config->dim + config->dim * q_dim +
                            2 * config->hidden_dim * config->dim) +
      int64_t{config->vocab_size} * config->dim;
  EXPECT_EQ(static_cast<int64_t>(mix_bytes[1] - mix_bytes[0]), affine_values / 8);
}

// IQ4_NL, IQ4_XS and Q6_K files (ringserve-model make-random --dtype iq4_nl, iq4_xs, q6_k)
// load; a CPU model holds their matrices as kIQ4 (the file's own values at 0.625 bytes a
// value) or kQ6 (0.875, where Q8_0 would take 1.125), and gives the logits of those values
// in f32.
TEST(PackedWeightsTest, CompactFilesGiveTheLogitsOfTheirServedValues) {
  const absl::StatusOr<ModelConfig> config = KQuantConfig(/*layers=*/1, /*vocab=*/512);
  ASSERT_TRUE(config.ok());
  auto backend = kernels::CreateBackend("cpu", {.num_threads = 2});
  ASSERT_TRUE(backend.ok());
  for (const Packing packing :
       {Packing::kIQ4_NL, Packing::kIQ4_XS, Packing::kQ3_K, Packing::kQ6_K}) {
    const std::string name(InfoOf(packing).name);
    const std::string path = ::testing::TempDir() + "packed_" + name + ".gguf";
    ASSERT_TRUE(WriteRandomModel(path, *config, kernels::DType::kQ8_0, {packing}).ok());
    auto packed = OpenCheckpoint(path);
    ASSERT_TRUE(packed.ok()) << packed.status();
    const HostTensor* q = *(*packed)->Find("blk.0.attn_q.weight");
    EXPECT_EQ(q->packing, packing) << name;
    EXPECT_EQ(q->bytes, static_cast<size_t>(PackedBytes(packing, q->NumElements()))) << name;
    const auto [packed_bytes, f32_bytes] = ExpectSameLogits(
        **packed, *ToF32(**packed), **backend, config->vocab_size, Match::kWithinQuantization);
    const bool six_bit = packing == Packing::kQ3_K || packing == Packing::kQ6_K;
    EXPECT_LT(packed_bytes, f32_bytes * (six_bit ? 23 : 17) / 100) << name;
    EXPECT_EQ(CheckpointWeightSource(**packed, true).BytesOn(**backend), packed_bytes) << name;
  }
}

// Rows that are not whole 256-value super-blocks fall back as llama.cpp's quantizer does
// (Q4_K to Q5_0, Q6_K to Q8_0), and the file still gives its Q8_0 values' logits.
TEST(PackedWeightsTest, KQuantRowsOfPartialSuperBlocksFallBack) {
  absl::StatusOr<ModelConfig> config = KQuantConfig(/*layers=*/1, /*vocab=*/0);
  ASSERT_TRUE(config.ok());
  config->dim = 288;  // 9 blocks of 32, not a whole super-block
  config->head_dim = 72;
  const std::string path = ::testing::TempDir() + "kquant_fallback.gguf";
  ASSERT_TRUE(
      WriteRandomModel(path, *config, kernels::DType::kQ8_0, {Packing::kQ4_K, Packing::kQ6_K})
          .ok());
  auto packed = OpenCheckpoint(path);
  ASSERT_TRUE(packed.ok()) << packed.status();
  EXPECT_EQ((*(*packed)->Find("blk.0.attn_q.weight"))->packing, Packing::kQ5_0);
  EXPECT_EQ((*(*packed)->Find("blk.0.attn_v.weight"))->packing, Packing::kAsStored);  // Q8_0
  EXPECT_EQ((*(*packed)->Find("blk.0.ffn_down.weight"))->packing, Packing::kQ6_K);    // 512 cols
  auto backend = kernels::CreateBackend("cpu", {.num_threads = 2});
  ASSERT_TRUE(backend.ok());
  ExpectSameLogits(**packed, *ToF32(**packed), **backend, config->vocab_size,
                   Match::kWithinQuantization);
}

// Every device serves a packed file's values alike: the CPU keeps the compact matrices as
// they are and CUDA converts them (kQ4Affine, kQ5Affine, kIQ4) to its activation dtype on
// the device, each with the stacks the CPU joins as Q8_0. So every device gives the logits
// of those values in f32, within its tolerance (the CPU's: kQuantizedActivations); a GPU
// given re-rounded 4- or 5-bit values, or misreading a format, would miss them.
class PackedDeviceTest : public ::testing::TestWithParam<testing::TestDevice> {};

TEST_P(PackedDeviceTest, PackedFilesGiveTheLogitsOfTheServedValues) {
  auto backend = GetParam().create();
  if (!backend.ok()) GTEST_SKIP() << backend.status();
  EXPECT_TRUE((*backend)->TakesCompactWeights());
  const absl::StatusOr<ModelConfig> config = KQuantConfig(/*layers=*/1, /*vocab=*/512);
  ASSERT_TRUE(config.ok());
  auto cpu = kernels::CreateBackend("cpu", {.num_threads = 2});
  ASSERT_TRUE(cpu.ok());
  for (const MatrixPacking mix :
       {MatrixPacking{Packing::kQ4_K, Packing::kQ6_K},
        MatrixPacking{Packing::kQ5_K, Packing::kQ6_K},
        MatrixPacking{Packing::kQ3_K, Packing::kQ4_K}, MatrixPacking{Packing::kIQ4_XS}}) {
    const std::string name(InfoOf(mix.packing).name);
    const std::string path =
        ::testing::TempDir() + "packed_device_" + name + "_" + GetParam().name + ".gguf";
    ASSERT_TRUE(WriteRandomModel(path, *config, kernels::DType::kQ8_0, mix).ok());
    auto packed = OpenCheckpoint(path);
    ASSERT_TRUE(packed.ok()) << packed.status();
    size_t bytes = 0;
    const std::vector<float> want = Logits(*ToF32(**packed), **cpu, &bytes);
    const std::vector<float> got = Logits(**packed, **backend, &bytes);
    // The CPU's products quantize activations; the GPU's convert the weights instead.
    const bool quantizes = (*backend)->name() == "cpu";
    EXPECT_LE(testing::LogitsError(got, want),
              quantizes ? kQuantizedActivations : GetParam().logits_tolerance)
        << name;
  }
}

INSTANTIATE_TEST_SUITE_P(Devices, PackedDeviceTest, ::testing::ValuesIn(testing::TestDevices()),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace ringserve::model
