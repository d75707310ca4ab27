// LlamaModel refuses options it cannot run before it allocates a KV pool: KV slots
// (block * block_size + offset) are int32 in every pass's metadata and kernel, so a pool with
// more slots than that would wrap them to negative (padding) and silently drop K/V; on the
// CPU, a pool that with the weights exceeds physical memory would be killed as it fills.
#include <unistd.h>

#include <cstdint>
#include <limits>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "kernels/cpu/host_memory.h"
#include "worker/model/checkpoint.h"
#include "worker/model/kv_storage.h"
#include "worker/model/llama_model.h"
#include "worker/model/presets.h"
#include "worker/model/tiny_model.h"

namespace ringserve::model {
namespace {

absl::StatusOr<std::unique_ptr<LlamaModel>> TinyModelWith(const ModelOptions& options,
                                                          kernels::Backend* backend) {
  return LlamaModel::CreateWithRandomWeights(TinyModelConfig(), 1, backend, options);
}

// A checkpoint too large for the machine is refused before any weight is written (the CPU
// backend's memory is backed as it is written: a 70B file loaded part-way and was killed).
// The checkpoint holds no tensors: the check comes first, and no machine has 4 TB free.
TEST(ModelOptionsTest, WeightsLargerThanTheFreeMemoryAreRefusedBeforeLoading) {
  auto backend = kernels::CreateBackend("cpu");
  ASSERT_TRUE(backend.ok()) << backend.status();
  if ((*backend)->FreeMemoryBytes() == 0) GTEST_SKIP() << "free memory unknown here";
  absl::StatusOr<ModelConfig> config = PresetConfig("llama-3-8b");
  ASSERT_TRUE(config.ok()) << config.status();
  config->num_layers *= 128;  // ~1T parameters
  Checkpoint checkpoint;
  checkpoint.config = *config;
  checkpoint.source_path = "huge.gguf";
  // Shapes only: nothing reads the data before the check.
  checkpoint.AddTensor({.name = "blk.0.ffn_down.weight",
                        .dtype = kernels::DType::kBF16,
                        .shape = {int64_t{1} << 20, int64_t{1} << 20}});
  for (auto* create : {+[](const Checkpoint&c, kernels::Backend*b) {
                         return LlamaModel::Create(c, b, ModelOptions{});
                       },
                       +[](const Checkpoint&c, kernels::Backend*b) {
                         return LlamaModel::CreateWithRandomWeights(c.config, 1, b, ModelOptions{});
                       }}) {
    const auto refused = create(checkpoint, backend->get());
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted) << refused.status();
    EXPECT_THAT(refused.status().message(),
                ::testing::AllOf(::testing::HasSubstr(" parameters) on cpu"),
                                 ::testing::HasSubstr(" MiB free")));
  }
}

TEST(ModelOptionsTest, AKvPoolWithMoreSlotsThanInt32IsRefused) {
  auto backend = kernels::CreateBackend("cpu");
  ASSERT_TRUE(backend.ok()) << backend.status();
  ModelOptions options;
  options.block_size = 16;
  options.num_kv_blocks = std::numeric_limits<int32_t>::max() / 16 + 1;
  const auto too_many = TinyModelWith(options, backend->get());
  EXPECT_EQ(too_many.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(too_many.status().message().find("int32 KV slots"), std::string_view::npos)
      << too_many.status();
  options.num_kv_blocks = 8;
  EXPECT_TRUE(TinyModelWith(options, backend->get()).ok());
}

TEST(ModelOptionsTest, ABlockSizeOfZeroIsRefused) {
  auto backend = kernels::CreateBackend("cpu");
  ASSERT_TRUE(backend.ok()) << backend.status();
  ModelOptions options;
  options.block_size = 0;
  options.num_kv_blocks = 8;
  EXPECT_EQ(TinyModelWith(options, backend->get()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// The CPU backend's allocations are backed only when written, so a pool larger than the
// machine "allocated" and the worker was killed for memory once it filled (--kv-memory
// 100GB on 24 GiB). One block more than physical memory holds is refused at start, naming
// the sizes; one that fits with the weights is not.
TEST(ModelOptionsTest, ACpuKvPoolBeyondPhysicalMemoryIsRefused) {
  auto backend = kernels::CreateBackend("cpu");
  ASSERT_TRUE(backend.ok()) << backend.status();
  const size_t physical = (*backend)->LazyMemoryLimitBytes();
  // Physical memory, or less under a container's memory limit.
  ASSERT_EQ(physical,
            kernels::cpu::HostMemoryLimitBytes(static_cast<uint64_t>(sysconf(_SC_PHYS_PAGES)) *
                                               static_cast<uint64_t>(sysconf(_SC_PAGE_SIZE))));
  ModelOptions options;
  options.block_size = 16;
  const size_t block_bytes =
      KvStorage::BytesPerBlock(TinyModelConfig(), options.block_size, kernels::DType::kF32);
  const size_t over = physical / block_bytes + 1;
  if (over > static_cast<size_t>(std::numeric_limits<int32_t>::max() / options.block_size)) {
    GTEST_SKIP() << "this machine's memory holds more blocks than int32 KV slots address";
  }
  options.num_kv_blocks = static_cast<int>(over);
  const auto too_large = TinyModelWith(options, backend->get());
  EXPECT_EQ(too_large.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(too_large.status().message(),
              ::testing::AllOf(
                  ::testing::HasSubstr(absl::StrCat(over, " blocks")),
                  ::testing::HasSubstr(absl::StrCat(physical >> 20, " MiB this process may"))));
  options.num_kv_blocks = 64;
  EXPECT_TRUE(TinyModelWith(options, backend->get()).ok());
}

// A 16-bit cache takes half an f32 block, so the same memory sizes twice the blocks; a cache
// type the backend cannot keep is refused before the weights load.
TEST(ModelOptionsTest, AKvCacheTypeSizesThePoolOrIsRefused) {
  auto backend = kernels::CreateBackend("cpu");
  ASSERT_TRUE(backend.ok()) << backend.status();
  const size_t f32_block = KvStorage::BytesPerBlock(TinyModelConfig(), 16, kernels::DType::kF32);
  for (const kernels::DType kv :
       {kernels::DType::kF32, kernels::DType::kF16, kernels::DType::kBF16}) {
    ModelOptions options;
    options.block_size = 16;
    options.kv_dtype = kv;
    size_t asked = 0;
    options.size_kv_pool = [&](size_t bytes_per_block) -> absl::StatusOr<int> {
      asked = bytes_per_block;
      return static_cast<int>((f32_block * 64) / bytes_per_block);
    };
    const auto model = TinyModelWith(options, backend->get());
    ASSERT_TRUE(model.ok()) << model.status();
    EXPECT_EQ(asked, kv == kernels::DType::kF32 ? f32_block : f32_block / 2);
    EXPECT_EQ((*model)->options().num_kv_blocks, kv == kernels::DType::kF32 ? 64 : 128);
    EXPECT_EQ((*model)->kv_storage().Layer(0).dtype, kv);
  }
  ModelOptions options;
  options.num_kv_blocks = 8;
  options.kv_dtype = kernels::DType::kQ8_0;
  const auto refused = TinyModelWith(options, backend->get());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(), ::testing::HasSubstr("KV cache in q8_0"));
}

}  // namespace
}  // namespace ringserve::model
