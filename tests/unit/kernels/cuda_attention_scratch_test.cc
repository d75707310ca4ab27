// The CUDA attention's scratch: the capacities AttentionScratchFor asks for, and
// CudaBackend::ReserveAttention, which allocates them before the step path, on the CPU
// emulation. The model's reserve is tested in tests/unit/model/attention_limits_test.cc.
#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/cuda/cuda_index.h"
#include "kernels/cuda/cuda_ops.h"
#include "tests/unit/kernels/cuda_emu/cuda_emu_backend.h"
#include "tests/unit/kernels/kernel_test_util.h"

namespace ringserve::kernels::testing {
namespace {

constexpr int64_t kGiB = int64_t{1} << 30;

TEST(AttentionScratchForTest, ItemsOfEitherKernelAndPartialsOfEverySplit) {
  // 4 query heads per kv head: 4 tokens per SIMT item (the more items), 16 per tensor-core
  // one; 10 sequences of ceil(t / 4) items hold at most (1000 + 10 * 3) / 4.
  const cuda::AttentionScratchSize size = cuda::AttentionScratchFor({8, 2, 64, 0}, 1000, 10, 4097);
  EXPECT_EQ(size.items, (1000 + 10 * 3) / 4);
  EXPECT_EQ(size.partial_floats, int64_t{10} * 8 * 17 * (64 + 2));  // 17 splits of 256 keys
  // 32 query heads per kv head: a token per SIMT item, so an item per token.
  EXPECT_EQ(cuda::AttentionScratchFor({32, 1, 64, 0}, 100, 3, 1).items, 100);
}

// Llama-3-8B's heads at 256 sequences: at 8k context the partials of all 32 split slots
// (136 MiB; a fixed 64 MiB held 15), at 128k the 1 GiB cap (252 of 512 slots).
TEST(AttentionScratchForTest, EverySplitUpToOneGiBOfPartials) {
  const cuda::HeadArgs llama{32, 8, 128, 0};
  const int64_t floats_per_split = int64_t{256} * 32 * (128 + 2);
  const cuda::AttentionScratchSize at_8k = cuda::AttentionScratchFor(llama, 8192, 256, 8192);
  EXPECT_EQ(at_8k.items, (8192 + 256 * 3) / 4);
  EXPECT_EQ(at_8k.partial_floats, floats_per_split * 32);
  EXPECT_EQ((int64_t{64} << 20) / 4 / floats_per_split, 15);
  const cuda::AttentionScratchSize at_128k = cuda::AttentionScratchFor(llama, 8192, 256, 131072);
  EXPECT_EQ(at_128k.partial_floats * 4, kGiB);
  EXPECT_EQ(at_128k.partial_floats / floats_per_split, 252);
}

class CudaReserveAttentionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    backend_ = MakeEmulatedCudaBackend(DType::kF32);
    if (backend_ == nullptr) GTEST_SKIP() << "the CUDA emulation does not run here";
  }
  std::unique_ptr<Backend> backend_;
};

TEST_F(CudaReserveAttentionTest, GrowsToExactlyTheLimitsAndNeverShrinks) {
  Backend& b = *backend_;
  const int64_t allocations = b.num_allocations();
  const EmulatedAttentionScratch floor = EmulatedAttention(b);
  const AttentionLimits small{64, 4, 512, 8, 2, 64};
  ASSERT_TRUE(b.ReserveAttention(small).ok());
  EXPECT_EQ(b.num_allocations(), allocations) << "within what the backend starts with";

  const AttentionLimits large{8000, 256, 8192, 8, 2, 64};
  ASSERT_TRUE(b.ReserveAttention(large).ok());
  const cuda::AttentionScratchSize want = cuda::AttentionScratchFor({8, 2, 64, 0}, 8000, 256, 8192);
  ASSERT_GT(want.items, floor.item_capacity);
  ASSERT_GT(want.partial_floats, floor.partial_floats);
  EXPECT_EQ(b.num_allocations(), allocations + 2);
  EXPECT_EQ(EmulatedAttention(b).item_capacity, want.items);
  EXPECT_EQ(EmulatedAttention(b).partial_floats, want.partial_floats);

  // Another model's smaller limits keep what the larger one needs.
  ASSERT_TRUE(b.ReserveAttention(small).ok());
  EXPECT_EQ(b.num_allocations(), allocations + 2);
  EXPECT_EQ(EmulatedAttention(b).item_capacity, want.items);
  EXPECT_EQ(EmulatedAttention(b).partial_floats, want.partial_floats);

  for (const AttentionLimits& bad :
       {AttentionLimits{0, 4, 512, 8, 2, 64}, AttentionLimits{64, 4, 0, 8, 2, 64},
        AttentionLimits{64, 4, 512, 8, 3, 64}}) {
    EXPECT_EQ(b.ReserveAttention(bad).code(), absl::StatusCode::kInvalidArgument);
  }
  EXPECT_TRUE(CreateBackend("cpu").value()->ReserveAttention(large).ok()) << "nothing to reserve";
}

// 1100 sequences of one token at one query head per kv head: up to 1100 / 16 + 1100 work
// items, past the 1024 the backend starts with. Unreserved, the launch stops the process
// before it runs anything; reserved, it runs (a single key: the output is its value).
// 64 query heads per kv head at head_dim 256: a SIMT prefill item of 64 rows needs about
// 257 KiB of shared memory, past the 227 KiB an H100 (and the emulation) lets a block have.
// The model is refused at its reserve, by name, instead of ending the process at its first
// pass; Llama-3-8B's heads need 58 KB.
TEST_F(CudaReserveAttentionTest, HeadsNeedingMoreSharedMemoryThanTheDeviceAllowsAreRefused) {
  constexpr int64_t kOptinBytes = int64_t{227} << 10;
  const cuda::HeadArgs wide{64, 1, 256, 0};
  ASSERT_GT(cuda::AttentionSharedBytesFor(wide, DType::kF32), kOptinBytes);
  const absl::Status refused = backend_->ReserveAttention({16, 1, 64, 64, 1, 256});
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument) << refused;
  EXPECT_THAT(refused.message(), ::testing::HasSubstr("64 query heads per kv head"));
  EXPECT_THAT(refused.message(), ::testing::HasSubstr("shared memory"));

  const cuda::HeadArgs llama{32, 8, 128, 0};
  EXPECT_LT(cuda::AttentionSharedBytesFor(llama, DType::kBF16), 60000);
  EXPECT_TRUE(backend_->ReserveAttention({16, 1, 64, 32, 8, 128}).ok());
}

TEST_F(CudaReserveAttentionTest, ABatchPastTheReservedItemsStopsTheProcess) {
  Backend& b = *backend_;
  constexpr int kSeqs = 1100;
  constexpr int kHeadDim = 8;
  constexpr int kBlockSize = 16;
  constexpr size_t kRows = kSeqs;
  std::mt19937_64 rng(4);
  const PagedBatchHost batch =
      BuildBatch(std::vector<SeqSpec>(kSeqs, SeqSpec{1, 1}), kBlockSize, kSeqs, rng);
  const DeviceBatch batch_d(b, batch);
  const size_t kv_count = static_cast<size_t>(kSeqs) * kBlockSize * kHeadDim;
  const ActivationArray qkv(b, RandomFloats(rng, kRows * 3 * kHeadDim));
  const ActivationArray k(b, RandomFloats(rng, kv_count));
  const ActivationArray v(b, RandomFloats(rng, kv_count));
  ActivationArray out(b, std::vector<float>(kRows * kHeadDim));
  const AttentionShape shape{1, 1, kHeadDim, 0.5F};
  const KvLayerView kv{k.data(), v.data(), DType::kF32, kSeqs, kBlockSize, 1, kHeadDim};
  auto attend = [&] {
    b.PagedAttention(qkv.AsTensor(kSeqs, int64_t{3} * kHeadDim), shape, batch_d.view(), kv,
                     out.AsTensor(kSeqs, kHeadDim));
  };
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(attend(), "reserved work items");

  ASSERT_TRUE(b.ReserveAttention({kSeqs, kSeqs, 1, 1, 1, kHeadDim}).ok());
  attend();
  const std::vector<float> got = out.Download();
  for (size_t t = 0; t < kRows; ++t) {
    const int64_t key = cuda::KvOffset(&batch.block_tables[t * batch.max_blocks_per_seq],
                                       kBlockSize, 0, 1, kHeadDim, 0);
    for (int d = 0; d < kHeadDim; ++d) {
      ASSERT_EQ(got[t * kHeadDim + d], v.host()[key + d]) << "token " << t;
    }
  }
}

}  // namespace
}  // namespace ringserve::kernels::testing
