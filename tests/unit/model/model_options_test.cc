// LlamaModel refuses options it cannot run before it allocates a KV pool: KV slots
// (block * block_size + offset) are int32 in every pass's metadata and kernel, so a pool with
// more slots than that would wrap them to negative (padding) and silently drop K/V.
#include <cstdint>
#include <limits>

#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "worker/model/llama_model.h"
#include "worker/model/tiny_model.h"

namespace ringserve::model {
namespace {

absl::StatusOr<std::unique_ptr<LlamaModel>> TinyModelWith(const ModelOptions& options,
                                                          kernels::Backend* backend) {
  return LlamaModel::CreateWithRandomWeights(TinyModelConfig(), 1, backend, options);
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

}  // namespace
}  // namespace ringserve::model
