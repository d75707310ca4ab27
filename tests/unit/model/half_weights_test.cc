// A bf16, f16 or Q8_0 checkpoint on the CPU keeps its matrices in that type (half, or about
// a quarter, of the memory and the bytes each decode step reads) and must give the logits of
// the same checkpoint converted to f32, bit for bit: the kernels make each weight's exact
// f32 value as they load it.
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "kernels/dtype.h"
#include "worker/model/checkpoint.h"
#include "worker/model/llama_model.h"
#include "worker/model/presets.h"
#include "worker/model/tiny_model.h"
#include "worker/model/weight_source.h"

namespace ringserve::model {
namespace {

// `half` with every tensor converted to f32 (the data owned by the copy).
std::unique_ptr<Checkpoint> ToF32(const Checkpoint& half) {
  auto f32 = std::make_unique<Checkpoint>();
  f32->config = half.config;
  f32->format = half.format;
  f32->source_path = half.source_path + " (as f32)";
  for (const HostTensor& t : half.tensors()) {
    HostTensor wide = t;
    const auto count = static_cast<size_t>(t.NumElements());
    auto* data = static_cast<float*>(f32->AllocateOwned(count * sizeof(float)));
    kernels::ConvertToFloat(t.dtype, t.data, count, data);
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

  size_t half_bytes = 0;
  size_t f32_bytes = 0;
  const std::vector<float> from_half = Logits(**half, **backend, &half_bytes);
  const std::vector<float> from_f32 = Logits(*f32, **backend, &f32_bytes);
  ASSERT_EQ(from_half.size(), static_cast<size_t>(config->vocab_size));
  ASSERT_EQ(from_f32.size(), from_half.size());
  EXPECT_EQ(std::memcmp(from_half.data(), from_f32.data(), from_half.size() * sizeof(float)), 0);
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

}  // namespace
}  // namespace ringserve::model
