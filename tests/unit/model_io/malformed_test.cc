// Malformed corpora: every damaged file must give an error status that names the file
// (and the key or tensor where there is one) - never a crash, hang or bad_alloc. Runs
// under ASan+UBSan in the sanitizer build.
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <random>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/model_io/test_util.h"
#include "tests/unit/shared_dir.h"
#include "worker/model/checkpoint.h"
#include "worker/model/gguf_loader.h"
#include "worker/model/gguf_reader.h"
#include "worker/model/gguf_vocab.h"
#include "worker/model/llama2c_loader.h"
#include "worker/model/safetensors_loader.h"

namespace ringserve::model {
namespace {

using ::testing::HasSubstr;

// Parse + vocabulary + conversion, the whole GGUF path on an in-memory image.
absl::Status LoadGgufImage(std::span<const uint8_t> bytes, const std::string& name) {
  auto file = GgufFile::Parse(bytes, name);
  if (!file.ok()) return file.status();
  if ((*file)->Find("tokenizer.ggml.model") != nullptr) {
    if (auto v = VocabularyFromGguf(**file); !v.ok()) return v.status();
  }
  return CheckpointFromGguf(**file).status();
}

void ExpectGgufError(std::span<const uint8_t> bytes, const std::string& want) {
  const absl::Status s = LoadGgufImage(bytes, "bad.gguf");
  ASSERT_FALSE(s.ok()) << "expected an error mentioning " << want;
  EXPECT_THAT(s.message(), HasSubstr("bad.gguf"));
  EXPECT_THAT(s.message(), HasSubstr(want));
}

template <typename T>
void Patch(std::vector<uint8_t>* bytes, size_t offset, T value) {
  std::memcpy(bytes->data() + offset, &value, sizeof(T));
}

std::vector<uint8_t> SmallGguf() {
  return testing::SmallGgufWriter(testing::SmallConfig(), kernels::DType::kQ8_0).Build();
}

// Cuts `image` at every offset below `dense`, every `stride` bytes below `header_end`,
// then at about 50 points through the rest; `valid(size)` says which prefixes are still
// whole files. Each prefix is an exact-size copy so ASan sees any over-read.
template <typename Load, typename Valid>
void TruncationSweep(const std::vector<uint8_t>& image, size_t dense, size_t header_end,
                     size_t stride, Load load, Valid valid) {
  const size_t data_stride = std::max<size_t>(1, (image.size() - header_end) / 50);
  for (size_t cut = 0; cut < image.size();
       cut += cut < dense ? 1 : (cut < header_end ? stride : data_stride)) {
    std::vector<uint8_t> prefix(image.begin(), image.begin() + cut);
    const absl::Status s = load(prefix);
    if (valid(cut)) continue;
    ASSERT_FALSE(s.ok()) << "cut at " << cut;
    ASSERT_THAT(s.message(), HasSubstr("bad.")) << "cut at " << cut;
  }
}

// [first tensor byte, last tensor byte + 1) of a valid image.
std::pair<size_t, size_t> DataRange(std::span<const uint8_t> image) {
  auto file = GgufFile::Parse(image, "x");
  EXPECT_TRUE(file.ok()) << file.status();
  uint64_t start = image.size(), end = 0;
  for (const auto& t : (*file)->tensors()) {
    start = std::min(start, t.offset);
    end = std::max(end, t.offset + t.bytes);
  }
  return {start, end};
}

TEST(MalformedGguf, TruncatedAnywhere) {
  const std::vector<uint8_t> image = SmallGguf();
  ASSERT_TRUE(LoadGgufImage(image, "good.gguf").ok());
  const auto [start, end] = DataRange(image);
  TruncationSweep(
      image, /*dense=*/start + 64, /*header_end=*/end, /*stride=*/61,
      [](std::span<const uint8_t> b) { return LoadGgufImage(b, "bad.gguf"); },
      [&](size_t cut) { return cut >= end; });
}

TEST(MalformedGguf, SharedStoriesTruncated) {
  const std::string path = SharedDataDir() + "/models/stories260K-f32.gguf";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "no " << path;
  auto mapped = MappedFile::Open(path);
  ASSERT_TRUE(mapped.ok());
  const std::vector<uint8_t> image((*mapped)->data(), (*mapped)->data() + (*mapped)->size());
  const auto [start, end] = DataRange(image);
  TruncationSweep(
      image, /*dense=*/1500, /*header_end=*/start + 64, /*stride=*/23,
      [](std::span<const uint8_t> b) { return LoadGgufImage(b, "bad.gguf"); },
      [&](size_t cut) { return cut >= end; });
}

TEST(MalformedGguf, TruncatedFileOnDiskNamesThePath) {
  std::vector<uint8_t> image = SmallGguf();
  image.resize(image.size() / 2);
  const std::string path = testing::MakeTempDir() + "/half.gguf";
  testing::WriteBytes(path, image);
  auto ckpt = OpenCheckpoint(path);
  ASSERT_FALSE(ckpt.ok());
  EXPECT_THAT(ckpt.status().message(), HasSubstr(path));
  EXPECT_THAT(ckpt.status().message(), HasSubstr("lies outside the file"));
}

TEST(MalformedGguf, HeaderFields) {
  const std::vector<uint8_t> good = SmallGguf();
  std::vector<uint8_t> b = good;
  b[0] ^= 0xFF;
  ExpectGgufError(b, "bad magic");
  for (uint32_t version : {0U, 1U, 4U, 0xFFFFFFFFU}) {
    b = good;
    Patch<uint32_t>(&b, 4, version);
    ExpectGgufError(b, "unsupported version");
  }
  b = good;
  Patch<uint64_t>(&b, 8, uint64_t{1} << 60);
  ExpectGgufError(b, "tensor count");
  b = good;
  Patch<uint64_t>(&b, 16, uint64_t{1} << 60);
  ExpectGgufError(b, "metadata count");
  b = good;
  Patch<uint64_t>(&b, 16, 1000);  // more keys than there are: runs into the tensor infos
  EXPECT_FALSE(LoadGgufImage(b, "bad.gguf").ok());
  b = good;
  Patch<uint64_t>(&b, 8, 200);  // more tensors than there are
  ExpectGgufError(b, "bad.gguf");
  b = good;
  Patch<uint64_t>(&b, 24, uint64_t{1} << 40);  // first key's length
  ExpectGgufError(b, "string length");
  b = good;
  Patch<uint64_t>(&b, 24, ~uint64_t{0});
  ExpectGgufError(b, "string length");
}

TEST(MalformedGguf, AbsurdArrayAndStringLengths) {
  GgufWriter w;
  w.SetStringArray("tokenizer.ggml.tokens", {"a", "b"});
  std::vector<uint8_t> b = w.Build();
  const size_t count_at = 24 + 8 + std::strlen("tokenizer.ggml.tokens") + 4 + 4;
  ASSERT_EQ(b[count_at], 2);
  Patch<uint64_t>(&b, count_at, uint64_t{1} << 60);
  ExpectGgufError(b, "'tokenizer.ggml.tokens' array count");
  b = w.Build();
  Patch<uint64_t>(&b, count_at + 8, uint64_t{1} << 40);  // first element's length
  ExpectGgufError(b, "string length");
  b = w.Build();
  Patch<uint32_t>(&b, count_at - 4, 9);  // array of arrays
  ExpectGgufError(b, "nested arrays");
  b = w.Build();
  Patch<uint32_t>(&b, count_at - 4, 77);
  ExpectGgufError(b, "unknown array element type 77");
  b = w.Build();
  Patch<uint32_t>(&b, count_at - 8, 13);
  ExpectGgufError(b, "unknown value type 13");
}

GgufWriter SmallModelWriter() {
  return testing::SmallGgufWriter(testing::SmallConfig(), kernels::DType::kF32);
}

TEST(MalformedGguf, TensorInfos) {
  const std::vector<uint8_t> four(4 * 4);
  auto raw = [&](std::vector<uint64_t> ne, uint32_t type, std::vector<uint8_t> data,
                 std::optional<uint64_t> offset, const std::string& want) {
    GgufWriter w;
    w.SetString("general.architecture", "llama");
    w.AddRawTensor("blk.0.attn_q.weight", type, std::move(ne), std::move(data), offset);
    const std::vector<uint8_t> b = w.Build();
    ExpectGgufError(b, want);
    ExpectGgufError(b, "blk.0.attn_q.weight");
  };
  raw({uint64_t{1} << 20, uint64_t{1} << 20}, 0, four, {}, "lies outside the file");
  raw({uint64_t{1} << 32, uint64_t{1} << 32, 1U << 31}, 0, four, {}, "invalid dimension");
  raw({4, 0}, 0, four, {}, "invalid dimension");
  raw({1, 1, 1, 1, 4}, 0, four, {}, "5 dimensions");
  raw({4}, 0, four, uint64_t{1} << 40, "lies outside the file");
  raw({4}, 0, four, ~uint64_t{0} - 31, "lies outside the file");
  raw({4}, 0, four, 1, "not a multiple of the alignment");
  raw({4}, 200, four, {}, "unknown ggml type 200");
  raw({33}, 8, std::vector<uint8_t>(68), {}, "not whole Q8_0 blocks");
  raw({48, 2}, 8, std::vector<uint8_t>(102), {}, "block size");
}

TEST(MalformedGguf, DuplicatesAndAlignment) {
  GgufWriter keys = SmallModelWriter();
  keys.SetUint32("llama.block_count", 2);
  ExpectGgufError(keys.Build(), "duplicate metadata key 'llama.block_count'");
  GgufWriter tensors = SmallModelWriter();
  ASSERT_TRUE(
      tensors.AddTensor("output_norm.weight", {32}, kernels::DType::kF32, std::vector<float>(32))
          .ok());
  ExpectGgufError(tensors.Build(), "duplicate tensor 'output_norm.weight'");
  GgufWriter align = SmallModelWriter();
  align.SetUint32("general.alignment", 24);
  ExpectGgufError(align.Build(), "general.alignment");
}

// A small model whose tensor `name` is replaced by (shape, type) or dropped.
std::vector<uint8_t> ModelWithTensor(const std::string& name, std::vector<int64_t> shape,
                                     uint32_t ggml_type, bool drop = false) {
  const ModelConfig c = testing::SmallConfig();
  GgufWriter w;
  w.SetString("general.architecture", "llama");
  w.SetUint32("llama.context_length", c.max_seq_len);
  w.SetUint32("llama.embedding_length", c.dim);
  w.SetUint32("llama.feed_forward_length", c.hidden_dim);
  w.SetUint32("llama.block_count", c.num_layers);
  w.SetUint32("llama.attention.head_count", c.num_heads);
  w.SetUint32("llama.attention.head_count_kv", c.num_kv_heads);
  for (auto [n, s] : testing::CanonicalShapes(c)) {
    if (n == name && drop) continue;
    uint32_t type = 0;
    if (n == name) {
      s = shape;
      type = ggml_type;
    }
    int64_t count = 1;
    for (int64_t d : s) count *= d;
    std::vector<uint64_t> ne(s.rbegin(), s.rend());
    auto bytes = GgmlTypeBytes(type, static_cast<uint64_t>(count));
    w.AddRawTensor(n, type, ne, std::vector<uint8_t>(bytes.value_or(16)));
  }
  return w.Build();
}

TEST(MalformedGguf, MissingTensorShapeMismatchUnsupportedType) {
  ASSERT_TRUE(LoadGgufImage(ModelWithTensor("", {}, 0), "ok.gguf").ok());
  ExpectGgufError(ModelWithTensor("blk.1.ffn_up.weight", {}, 0, true),
                  "missing tensor 'blk.1.ffn_up.weight'");
  ExpectGgufError(ModelWithTensor("blk.0.attn_k.weight", {32, 32}, 0),
                  "tensor 'blk.0.attn_k.weight' has shape [32, 32], expected [16, 32]");
  ExpectGgufError(ModelWithTensor("blk.0.ffn_gate.weight", {64, 256}, 16),
                  "tensor 'blk.0.ffn_gate.weight' has unsupported type IQ2_XXS (16); ringserve "
                  "reads F32");
  ExpectGgufError(ModelWithTensor("token_embd.weight", {40}, 0),
                  "'token_embd.weight' is not a [vocab, dim] matrix");
}

// Random byte damage in the header region; any outcome but a crash is fine.
TEST(MalformedGguf, RandomHeaderDamage) {
  const std::vector<uint8_t> good = SmallGguf();
  const size_t header = DataRange(good).first;
  std::mt19937 rng(1234);
  for (int iter = 0; iter < 3000; ++iter) {
    std::vector<uint8_t> b = good;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) b[rng() % header] = static_cast<uint8_t>(rng());
    (void)LoadGgufImage(b, "bad.gguf");
  }
}

TEST(MalformedLlama2c, TruncatedAnywhereAndBadHeaders) {
  ModelConfig c = testing::SmallConfig();
  for (bool version1 : {false, true}) {
    for (bool tied : {true, false}) {
      c.tied_embeddings = tied;
      const std::vector<uint8_t> image = testing::Llama2cImage(c, version1, true);
      const std::vector<uint8_t> no_rope = testing::Llama2cImage(c, version1, false);
      Checkpoint ok;
      ASSERT_TRUE(ParseLlama2c(image, "good.bin", &ok).ok());
      TruncationSweep(
          image, 600, image.size() / 2, 13,
          [](std::span<const uint8_t> b) {
            Checkpoint ckpt;
            return ParseLlama2c(b, "bad.bin", &ckpt);
          },
          [&](size_t cut) { return tied && !version1 && cut == no_rope.size(); });
    }
  }
  auto header_error = [&](int field, int32_t value, const std::string& want) {
    std::vector<uint8_t> b = testing::Llama2cImage(testing::SmallConfig(), false);
    Patch<int32_t>(&b, 4 * field, value);
    Checkpoint ckpt;
    const absl::Status s = ParseLlama2c(b, "bad.bin", &ckpt);
    ASSERT_FALSE(s.ok()) << field;
    EXPECT_THAT(s.message(), HasSubstr("bad.bin"));
    EXPECT_THAT(s.message(), HasSubstr(want));
  };
  header_error(0, -5, "dim");
  header_error(0, 33, "dim");  // not a multiple of num_heads
  header_error(4, 3, "num_kv_heads");
  header_error(5, INT32_MIN, "vocab_size");
  header_error(5, 41, "does not match");
  header_error(6, 1 << 30, "does not match");
  header_error(1, 1 << 30, "truncated");
  header_error(0, 1 << 30, "truncated");
  std::vector<uint8_t> v2 = testing::Llama2cImage(testing::SmallConfig(), true);
  Patch<int32_t>(&v2, 4, 2);
  Checkpoint ckpt;
  EXPECT_THAT(ParseLlama2c(v2, "bad.bin", &ckpt).message(), HasSubstr("version 2"));
  std::vector<uint8_t> longer = testing::Llama2cImage(testing::SmallConfig(), false);
  longer.push_back(0);
  EXPECT_THAT(ParseLlama2c(longer, "bad.bin", &ckpt).message(), HasSubstr("does not match"));
}

TEST(MalformedSafetensors, TruncatedAnywhere) {
  const std::vector<uint8_t> image =
      testing::SafetensorsImage(testing::HfTensors(testing::SmallConfig(), "F16"));
  uint64_t header = 0;
  std::memcpy(&header, image.data(), 8);
  TruncationSweep(
      image, 8 + header + 8, image.size(), 29,
      [](std::span<const uint8_t> b) { return ParseSafetensors(b, "bad.st").status(); },
      [](size_t) { return false; });
}

TEST(MalformedSafetensors, HeaderDamage) {
  auto expect = [](std::vector<uint8_t> b, const std::string& want) {
    const absl::Status s = ParseSafetensors(b, "bad.st").status();
    ASSERT_FALSE(s.ok()) << want;
    EXPECT_THAT(s.message(), HasSubstr("bad.st"));
    EXPECT_THAT(s.message(), HasSubstr(want));
  };
  const std::vector<uint8_t> one = {1, 2, 3, 4};
  std::vector<uint8_t> b = testing::SafetensorsImage({{"w", "U8", {4}, one}});
  ASSERT_TRUE(ParseSafetensors(b, "ok.st").ok());
  Patch<uint64_t>(&b, 0, uint64_t{1} << 62);
  expect(b, "header length");
  expect(testing::SafetensorsImage({{"w", "F32", {4}, one}}), "tensor 'w'");
  expect(testing::SafetensorsImage({{"w", "F32", {int64_t{1} << 61, 1 << 30}, one}}), "tensor 'w'");
  expect(testing::SafetensorsImage({{"w", "Q9", {4}, one}}), "unknown dtype Q9");
  expect(testing::SafetensorsImage({{"w", "U8", {-4}, one}}), "invalid shape");
  b = testing::SafetensorsImage({{"w", "U8", {4}, one}});
  b[9] = '[';
  expect(b, "not a JSON object");
}

TEST(MalformedSafetensors, DirectoryErrors) {
  ModelConfig c = testing::SmallConfig();
  c.tied_embeddings = false;
  auto load = [&](std::vector<testing::StTensor> tensors, const std::string& config) {
    const std::string dir = testing::MakeTempDir();
    testing::WriteText(dir + "/config.json", config);
    testing::WriteBytes(dir + "/model.safetensors", testing::SafetensorsImage(tensors));
    return OpenCheckpoint(dir).status();
  };
  const std::string config = testing::HfConfigJson(c);
  std::vector<testing::StTensor> t = testing::HfTensors(c, "F32");
  EXPECT_TRUE(load(t, config).ok());
  auto drop = t;
  drop.erase(drop.begin() + 5);
  EXPECT_THAT(load(drop, config).message(), HasSubstr("missing tensor"));
  auto no_head = t;
  no_head.erase(std::remove_if(no_head.begin(), no_head.end(),
                               [](const auto& x) { return x.name == "lm_head.weight"; }),
                no_head.end());
  EXPECT_THAT(load(no_head, config).message(), HasSubstr("lm_head.weight"));
  auto wrong_dtype = t;
  wrong_dtype[3].dtype = "I32";
  EXPECT_THAT(load(wrong_dtype, config).message(), HasSubstr("unsupported dtype I32"));
  auto wrong_shape = t;
  std::swap(wrong_shape[5].shape[0], wrong_shape[5].shape[1]);
  EXPECT_THAT(load(wrong_shape, config).message(), HasSubstr("has shape"));
  auto extra_layer = t;
  extra_layer.push_back({"model.layers.7.mlp.up_proj.weight", "F32", {1}, {0, 0, 0, 0}});
  EXPECT_THAT(load(extra_layer, config).message(), HasSubstr("layer 7"));
  const std::string empty = testing::MakeTempDir();
  testing::WriteText(empty + "/config.json", config);
  EXPECT_EQ(OpenCheckpoint(empty).status().code(), absl::StatusCode::kNotFound);
  testing::WriteText(empty + "/model.safetensors.index.json",
                     R"({"weight_map": {"a": "../../etc/passwd"}})");
  EXPECT_THAT(OpenCheckpoint(empty).status().message(), HasSubstr("plain file name"));
}

}  // namespace
}  // namespace ringserve::model
