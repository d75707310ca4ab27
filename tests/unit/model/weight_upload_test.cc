// The fused QKV and gate/up weights: stacked matrices must multiply exactly like their parts
// side by side, whatever dtypes the checkpoint stores them in, and even when the source
// hands every tensor out of one reused buffer.
#include "worker/model/weight_upload.h"

#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "kernels/dtype.h"
#include "tests/unit/model/test_devices.h"

namespace ringserve::model {
namespace {

using kernels::DType;

// Serves named matrices of the given dtype, each copied into one shared buffer on Get, as
// RandomWeightSource does.
class ReusedBufferSource final : public WeightSource {
 public:
  void Add(const std::string& name, DType dtype, int64_t rows, int64_t cols,
           const std::vector<float>& values) {
    std::vector<uint8_t> bytes(kernels::DTypeBytes(dtype, values.size()));
    if (kernels::IsBlockDType(dtype)) {
      EncodeBlocks(dtype, values, bytes.data());
      tensors_[name] = {dtype, rows, cols, std::move(bytes)};
      return;
    }
    for (size_t i = 0; i < values.size(); ++i) {
      if (dtype == DType::kF32) {
        reinterpret_cast<float*>(bytes.data())[i] = values[i];
      } else if (dtype == DType::kF16) {
        reinterpret_cast<uint16_t*>(bytes.data())[i] = kernels::FloatToHalf(values[i]);
      } else {
        reinterpret_cast<uint16_t*>(bytes.data())[i] = kernels::FloatToBFloat16(values[i]);
      }
    }
    tensors_[name] = {dtype, rows, cols, std::move(bytes)};
  }
  absl::StatusOr<HostMatrix> Get(const std::string& name,
                                 const std::vector<int64_t>& shape) override {
    const auto it = tensors_.find(name);
    if (it == tensors_.end()) return absl::NotFoundError(name);
    const Stored& t = it->second;
    if (shape != std::vector<int64_t>{t.rows, t.cols}) return absl::InvalidArgumentError(name);
    buffer_ = t.bytes;
    return HostMatrix{t.dtype, t.rows, t.cols, buffer_.data()};
  }
  bool Has(const std::string& name) const override { return tensors_.contains(name); }
  std::optional<DType> ServedDTypeOf(const std::string& name) const override {
    if (!tell_dtypes_) return std::nullopt;
    const auto it = tensors_.find(name);
    return it == tensors_.end() ? std::nullopt : std::optional<DType>(it->second.dtype);
  }
  bool tell_dtypes_ = false;

 private:
  // Blocks of step 0.25 (f16-exact): Q8_0's quants v / 0.25; kQ4Affine's (v + 2) / 0.25
  // under offset -2, the form of Q4_0's blocks. Exact for multiples of 0.25 in range.
  static void EncodeBlocks(DType dtype, const std::vector<float>& values, uint8_t* out) {
    constexpr float kStep = 0.25F;
    const bool q8 = dtype == DType::kQ8_0;
    const bool five = dtype == DType::kQ5Affine;
    const auto block_bytes = static_cast<int>(kernels::DTypeBytes(dtype, 32));
    for (size_t b = 0; b < values.size() / 32; ++b, out += block_bytes) {
      const float* v = values.data() + b * 32;
      if (q8) {
        const uint16_t d = kernels::FloatToHalf(kStep);
        std::memcpy(out, &d, 2);
        for (int i = 0; i < 32; ++i)
          out[2 + i] = static_cast<uint8_t>(static_cast<int8_t>(v[i] / kStep));
        continue;
      }
      const float offset = (five ? -16 : -8) * kStep;  // Q5_0's or Q4_0's form
      std::memcpy(out, &kStep, 4);
      std::memcpy(out + 4, &offset, 4);
      std::memset(out + 8, 0, block_bytes - 8);
      uint32_t high = 0;
      for (int i = 0; i < 32; ++i) {
        const auto q = static_cast<int>((v[i] - offset) / kStep);
        EXPECT_TRUE(q >= 0 && q < (five ? 32 : 16)) << v[i];
        out[8 + i % 16] |= static_cast<uint8_t>((q & 0x0F) << (i < 16 ? 0 : 4));
        high |= static_cast<uint32_t>(q >> 4) << i;
      }
      if (five) std::memcpy(out + 24, &high, 4);
    }
  }

  struct Stored {
    DType dtype;
    int64_t rows, cols;
    std::vector<uint8_t> bytes;
  };
  std::map<std::string, Stored> tensors_;
  std::vector<uint8_t> buffer_;
};

// Values exact in bf16 and f16, so every dtype carries them unchanged.
std::vector<float> Values(int64_t count, float start) {
  std::vector<float> v(count);
  for (int64_t i = 0; i < count; ++i) v[i] = start + 0.25F * static_cast<float>(i % 13);
  return v;
}

// w as the backend multiplies it: row j of I * w^T is column j of w, so the product with the
// identity gives w^T.
std::vector<float> ReadBack(kernels::Backend& backend, const kernels::Weight& w) {
  std::vector<float> identity(w.cols * w.cols, 0.0F);
  for (int64_t i = 0; i < w.cols; ++i) identity[i * w.cols + i] = 1.0F;
  auto x = backend.Allocate(identity.size() * sizeof(float));
  auto y = backend.Allocate(w.cols * w.rows * sizeof(float));
  EXPECT_TRUE(x.ok() && y.ok());
  backend.CopyToDevice(x->data(), identity.data(), identity.size() * sizeof(float));
  backend.MatMul(kernels::Tensor::Of(x->data(), DType::kF32, w.cols, w.cols), w,
                 kernels::Tensor::Of(y->data(), DType::kF32, w.cols, w.rows));
  std::vector<float> transposed(w.cols * w.rows);
  std::vector<float> out(w.cols * w.rows);
  backend.CopyToHost(transposed.data(), y->data(), transposed.size() * sizeof(float));
  for (int64_t r = 0; r < w.rows; ++r) {
    for (int64_t c = 0; c < w.cols; ++c) out[r * w.cols + c] = transposed[c * w.rows + r];
  }
  return out;
}

struct Case {
  const char* name;
  DType q, k, v;
};

class StackedUploadTest : public ::testing::TestWithParam<Case> {};

TEST_P(StackedUploadTest, RowsComeOutInOrderWithTheirValues) {
  const Case& c = GetParam();
  constexpr int64_t kCols = 8;
  ReusedBufferSource source;
  const std::vector<float> q = Values(4 * kCols, -1.0F);
  const std::vector<float> k = Values(2 * kCols, 2.0F);
  const std::vector<float> v = Values(2 * kCols, -3.0F);
  source.Add("q", c.q, 4, kCols, q);
  source.Add("k", c.k, 2, kCols, k);
  source.Add("v", c.v, 2, kCols, v);
  auto backend = kernels::CreateBackend("cpu");
  ASSERT_TRUE(backend.ok());
  size_t bytes = 0;
  auto w = UploadStackedMatrices(source, backend->get(), {"q", "k", "v"}, {4, 2, 2}, kCols, &bytes);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->rows, 8);
  EXPECT_EQ(w->cols, kCols);
  EXPECT_EQ(bytes, w->buffer.bytes());
  std::vector<float> want = q;
  want.insert(want.end(), k.begin(), k.end());
  want.insert(want.end(), v.begin(), v.end());
  EXPECT_EQ(ReadBack(**backend, *w), want);
}

INSTANTIATE_TEST_SUITE_P(
    Dtypes, StackedUploadTest,
    ::testing::Values(Case{"f32", DType::kF32, DType::kF32, DType::kF32},
                      Case{"f16", DType::kF16, DType::kF16, DType::kF16},
                      Case{"mixed", DType::kBF16, DType::kF16, DType::kF32},
                      Case{"f32_first", DType::kF32, DType::kBF16, DType::kF16},
                      Case{"last_differs", DType::kF16, DType::kF16, DType::kBF16}),
    [](const auto& info) { return std::string(info.param.name); });

// 4-bit parts stack as kQ4Affine, 5-bit ones (or both) as kQ5Affine; beside Q8_0 parts (a
// K-quant mix's Q4_K attn_q and its Q6_K attn_v) the stack is Q8_0, in whichever order they
// come; beside a float part, f32. Each keeps its values: these blocks have Q4_0's or Q5_0's
// form, which Q8_0 holds exactly, and the 5-bit ones use their fifth bits.
TEST(StackedUploadTest, FourBitPartsJoinAsTheirCommonDtype) {
  constexpr int64_t kCols = 32;
  const std::vector<float> q = Values(4 * kCols, -2.0F);
  const std::vector<float> k = Values(2 * kCols, -1.5F);
  std::vector<float> want = q;
  want.insert(want.end(), k.begin(), k.end());
  auto backend = kernels::CreateBackend("cpu");
  ASSERT_TRUE(backend.ok());
  for (const auto& [first, second, joined] : std::vector<std::tuple<DType, DType, DType>>{
           {DType::kQ4Affine, DType::kQ4Affine, DType::kQ4Affine},
           {DType::kQ4Affine, DType::kQ8_0, DType::kQ8_0},
           {DType::kQ8_0, DType::kQ4Affine, DType::kQ8_0},
           {DType::kQ5Affine, DType::kQ5Affine, DType::kQ5Affine},
           {DType::kQ4Affine, DType::kQ5Affine, DType::kQ5Affine},
           {DType::kQ5Affine, DType::kQ4Affine, DType::kQ5Affine},
           {DType::kQ8_0, DType::kQ5Affine, DType::kQ8_0},
           {DType::kQ5Affine, DType::kF16, DType::kF32},
           {DType::kQ4Affine, DType::kF16, DType::kF32}}) {
    ReusedBufferSource source;
    source.Add("q", first, 4, kCols, q);
    source.Add("k", second, 2, kCols, k);
    size_t bytes = 0;
    auto w = UploadStackedMatrices(source, backend->get(), {"q", "k"}, {4, 2}, kCols, &bytes);
    ASSERT_TRUE(w.ok()) << w.status();
    EXPECT_EQ(w->dtype, joined) << DTypeName(first) << " + " << DTypeName(second);
    EXPECT_EQ(ReadBack(**backend, *w), want) << DTypeName(first) << " + " << DTypeName(second);
  }
}

// A stack whose join would re-round compact parts to Q8_0 (a Q4_K_M file's Q4_K attn_q and
// attn_k beside a Q6_K attn_v) is uploaded one weight a part, each in its own dtype and with
// its own values; every other stack is one weight, as UploadStackedMatrices joins it. A
// source that cannot tell its dtypes without fetching gets the join.
TEST(StackedUploadTest, CompactPartsBesideOthersAreKeptApart) {
  constexpr int64_t kCols = 32;
  const std::vector<float> q = Values(4 * kCols, -2.0F);
  const std::vector<float> k = Values(2 * kCols, -1.5F);
  const std::vector<float> v = Values(2 * kCols, -1.0F);
  auto backend = kernels::CreateBackend("cpu");
  ASSERT_TRUE(backend.ok());
  struct Case {
    DType q, k, v;
    std::vector<DType> held;  // the weights' dtypes
  };
  for (const Case& c :
       std::vector<Case>{{DType::kQ4Affine,
                          DType::kQ4Affine,
                          DType::kQ8_0,
                          {DType::kQ4Affine, DType::kQ4Affine, DType::kQ8_0}},
                         {DType::kQ5Affine,
                          DType::kQ5Affine,
                          DType::kQ8_0,
                          {DType::kQ5Affine, DType::kQ5Affine, DType::kQ8_0}},
                         {DType::kQ4Affine, DType::kQ4Affine, DType::kQ5Affine, {DType::kQ5Affine}},
                         {DType::kQ8_0, DType::kQ8_0, DType::kQ8_0, {DType::kQ8_0}},
                         {DType::kQ4Affine, DType::kQ4Affine, DType::kF16, {DType::kF32}}}) {
    for (const bool tell : {true, false}) {
      ReusedBufferSource source;
      source.tell_dtypes_ = tell;
      source.Add("q", c.q, 4, kCols, q);
      source.Add("k", c.k, 2, kCols, k);
      source.Add("v", c.v, 2, kCols, v);
      size_t bytes = 0;
      auto stack = UploadStack(source, backend->get(), {"q", "k", "v"}, {4, 2, 2}, kCols, &bytes);
      ASSERT_TRUE(stack.ok()) << stack.status();
      const std::string what =
          absl::StrCat(std::string(DTypeName(c.q)), " + ", std::string(DTypeName(c.k)), " + ",
                       std::string(DTypeName(c.v)), tell ? "" : ", dtypes untold");
      const std::vector<DType> held =
          tell ? c.held : std::vector<DType>{c.held.size() > 1 ? DType::kQ8_0 : c.held[0]};
      ASSERT_EQ(stack->size(), held.size()) << what;
      std::vector<float> got;
      size_t weight_bytes = 0;
      for (size_t i = 0; i < held.size(); ++i) {
        EXPECT_EQ((*stack)[i].dtype, held[i]) << what << ", part " << i;
        const std::vector<float> rows = ReadBack(**backend, (*stack)[i]);
        got.insert(got.end(), rows.begin(), rows.end());
        weight_bytes += (*stack)[i].buffer.bytes();
      }
      std::vector<float> want = q;
      want.insert(want.end(), k.begin(), k.end());
      want.insert(want.end(), v.begin(), v.end());
      EXPECT_EQ(got, want) << what;
      EXPECT_EQ(bytes, weight_bytes) << what;
    }
  }
}

TEST(StackedUploadTest, AMissingOrMisshapedPartIsAnErrorNamingIt) {
  ReusedBufferSource source;
  source.Add("gate", DType::kF32, 2, 4, Values(8, 0.0F));
  auto backend = kernels::CreateBackend("cpu");
  ASSERT_TRUE(backend.ok());
  size_t bytes = 0;
  auto missing = UploadStackedMatrices(source, backend->get(), {"gate", "up"}, {2, 2}, 4, &bytes);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), ::testing::HasSubstr("up"));
  auto misshaped = UploadStackedMatrices(source, backend->get(), {"gate"}, {3}, 4, &bytes);
  EXPECT_EQ(misshaped.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bytes, 0U);
}

// RandomWeightSource's values fetched with Get and uploaded: the path every source but a
// random one takes.
class HostPathSource final : public WeightSource {
 public:
  explicit HostPathSource(RandomWeightSource& source) : source_(source) {}
  absl::StatusOr<HostMatrix> Get(const std::string& name,
                                 const std::vector<int64_t>& shape) override {
    return source_.Get(name, shape);
  }
  bool Has(const std::string& name) const override { return source_.Has(name); }

 private:
  RandomWeightSource& source_;
};

std::vector<uint8_t> Bytes(kernels::Backend& backend, const kernels::Weight& w) {
  std::vector<uint8_t> bytes(w.buffer.bytes());
  backend.CopyToHost(bytes.data(), w.buffer.data(), bytes.size());
  return bytes;
}

class RandomUploadTest : public ::testing::TestWithParam<testing::TestDevice> {};

// Random models are the same bits whether the backend makes their matrices (on the device
// for CUDA) or the host does: the benchmarks' models do not change with the device.
TEST_P(RandomUploadTest, BackendMadeMatricesEqualTheHostPath) {
  auto backend = GetParam().create();
  if (!backend.ok()) GTEST_SKIP() << backend.status();
  ModelConfig config;
  RandomWeightSource random(config, 5);
  HostPathSource host(random);
  const std::vector<std::string> names = {"blk.0.attn_q.weight", "blk.0.attn_k.weight",
                                          "blk.0.attn_v.weight"};
  const std::vector<int64_t> rows = {6, 3, 3};
  size_t made_bytes = 0;
  size_t host_bytes = 0;
  auto made = UploadStackedMatrices(random, backend->get(), names, rows, 17, &made_bytes);
  auto uploaded = UploadStackedMatrices(host, backend->get(), names, rows, 17, &host_bytes);
  ASSERT_TRUE(made.ok() && uploaded.ok()) << made.status() << uploaded.status();
  EXPECT_EQ(made->rows, 12);
  EXPECT_EQ(made_bytes, host_bytes);
  EXPECT_EQ(Bytes(**backend, *made), Bytes(**backend, *uploaded));

  auto made_one = UploadMatrix(random, backend->get(), "token_embd.weight", {5, 9}, &made_bytes);
  auto uploaded_one = UploadMatrix(host, backend->get(), "token_embd.weight", {5, 9}, &host_bytes);
  ASSERT_TRUE(made_one.ok() && uploaded_one.ok());
  EXPECT_EQ(Bytes(**backend, *made_one), Bytes(**backend, *uploaded_one));
  // Another name is another stream.
  auto other = UploadMatrix(random, backend->get(), "output.weight", {5, 9}, &made_bytes);
  ASSERT_TRUE(other.ok());
  EXPECT_NE(Bytes(**backend, *other), Bytes(**backend, *made_one));
}

INSTANTIATE_TEST_SUITE_P(Devices, RandomUploadTest, ::testing::ValuesIn(testing::TestDevices()),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace ringserve::model
