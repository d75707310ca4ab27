// tools/common/model_setup: the --attention and --step-attention values, which tokenizer
// --tokenizer may name, and --rope-scaling / --context-length.
#include "tools/common/model_setup.h"

#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_replace.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/scoped_temp_dir.h"
#include "worker/model/presets.h"
#include "worker/model/tiny_model.h"

namespace ringserve::tools {
namespace {

using kernels::AttentionKernel;
using ::testing::HasSubstr;

TEST(ParseAttentionKernelTest, ReadsTheNamesTheBackendsGive) {
  for (const AttentionKernel kernel : {AttentionKernel::kSimt, AttentionKernel::kTensorCore}) {
    const auto parsed = ParseAttentionKernel(kernels::AttentionKernelName(kernel), "attention");
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(*parsed, kernel);
  }
  EXPECT_EQ(kernels::AttentionKernelName(AttentionKernel::kTensorCore), "tensor-core");
}

TEST(ParseAttentionKernelTest, RefusesOtherNamesNamingTheFlag) {
  for (const char* name : {"", "SIMT", "tensor_core", "tc", "simt "}) {
    const auto parsed = ParseAttentionKernel(name, "step-attention");
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << name;
    EXPECT_THAT(parsed.status().message(), HasSubstr("--step-attention: expected simt or "
                                                     "tensor-core, got '" +
                                                     std::string(name) + "'"));
  }
}

TEST(OpenModelTest, RefusesAnUnknownAttentionKernel) {
  ModelFlags flags;
  flags.dummy_weights = true;
  flags.preset = "tiny";
  flags.attention = "mma";
  const auto loaded = OpenModel(flags);
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(loaded.status().message(), HasSubstr("--attention:"));
}

// --lora adapters beyond --max-loras wait in host memory (the generator's); --max-cpu-loras
// needs --max-loras and room for its slots and every --lora adapter.
TEST(OpenModelTest, LoraAdaptersBeyondTheSlotsGoToHostMemory) {
  ModelFlags flags;
  flags.dummy_weights = true;
  flags.preset = "tiny";
  flags.lora = {"a=random:4", "b=random:4", "c=random:32"};  // room 16 by default
  flags.max_loras = 2;
  auto loaded = OpenModel(flags);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(LoraAdaptersInSlots(*loaded, flags), 2U);
  const auto host = LoraAdaptersInHostMemory(*loaded, flags);
  ASSERT_EQ(host.size(), 1U);
  EXPECT_EQ(host[0]->name, "c");
  // The slots keep room for the largest rank of all, the one in host memory included.
  {  // the model goes before the backend it runs on
    model::ModelOptions options;
    options.num_kv_blocks = 4;
    auto model = CreateModel(*loaded, flags, options);
    ASSERT_TRUE(model.ok()) << model.status();
    EXPECT_EQ((*model)->lora_slots().size(), 2U);
    EXPECT_TRUE((*model)->PrepareLoraAdapter(*host[0]).ok());
  }

  flags.max_loras = 0;  // a fixed set: every adapter in a slot of its own
  loaded = OpenModel(flags);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(LoraAdaptersInSlots(*loaded, flags), 3U);
  EXPECT_TRUE(LoraAdaptersInHostMemory(*loaded, flags).empty());

  for (const auto& [max_loras, max_cpu_loras] : {std::pair{0, 4}, std::pair{2, 2}}) {
    flags.max_loras = max_loras;
    flags.max_cpu_loras = max_cpu_loras;
    const auto refused = OpenModel(flags);
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument) << max_cpu_loras;
    EXPECT_THAT(refused.status().message(), HasSubstr("--max-cpu-loras"));
  }
}

// A worker started with --attention tensor-core on the CPU must fail at start, not serve
// with another kernel than the one asked for.
TEST(OpenModelTest, RefusesAKernelTheBackendDoesNotHave) {
  ModelFlags flags;
  flags.dummy_weights = true;
  flags.preset = "tiny";
  flags.device = "cpu";
  flags.attention = "tensor-core";
  const auto refused = OpenModel(flags);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.status().message(),
              HasSubstr("--attention: cpu has no tensor-core attention kernel"));
  flags.attention = "simt";
  const auto opened = OpenModel(flags);
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ((*opened).backend->attention_kernel(), AttentionKernel::kSimt);
}

// --matmul-algo-rows is a CUDA choice: on the CPU the worker fails at start, naming the flag.
TEST(OpenModelTest, RefusesAMatMulAlgoRowsChoiceTheBackendDoesNotHave) {
  ModelFlags flags;
  flags.dummy_weights = true;
  flags.preset = "tiny";
  flags.device = "cpu";
  flags.matmul_algo_rows = 64;
  const auto refused = OpenModel(flags);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.status().message(),
              HasSubstr("--matmul-algo-rows: cpu's MatMul has one kernel"));
  flags.matmul_algo_rows = 0;
  EXPECT_TRUE(OpenModel(flags).ok());
}

// --kv-dtype: the CPU keeps f32, f16 and bf16 caches, and the model made from the flags uses
// the type asked for; auto picks f16 for a checkpoint of narrow matrices, f32 otherwise;
// anything else fails at start.
TEST(OpenModelTest, KvDtypeNamesTheCacheTypeOrIsRefused) {
  ModelFlags flags;
  flags.dummy_weights = true;
  flags.preset = "tiny";
  for (const auto& [name, dtype] :
       std::vector<std::pair<std::string, kernels::DType>>{{"auto", kernels::DType::kF32},
                                                           {"f32", kernels::DType::kF32},
                                                           {"f16", kernels::DType::kF16},
                                                           {"bf16", kernels::DType::kBF16},
                                                           {"fp8", kernels::DType::kF8E4M3},
                                                           {"fp8_e4m3", kernels::DType::kF8E4M3}}) {
    flags.kv_dtype = name;
    const auto opened = OpenModel(flags);
    ASSERT_TRUE(opened.ok()) << name << ": " << opened.status();
    EXPECT_EQ(opened->kv_dtype, dtype) << name;
    model::ModelOptions options;
    options.num_kv_blocks = 4;
    const auto model = CreateModel(*opened, flags, options);
    ASSERT_TRUE(model.ok()) << name << ": " << model.status();
    EXPECT_EQ((*model)->kv_storage().Layer(0).dtype, dtype) << name;
  }
  // auto: f16 on the CPU for a checkpoint of 16-bit (or 8-bit) matrices, else f32.
  ringserve::testing::ScopedTempDir dir;
  ModelFlags from_file;
  for (const kernels::DType weights :
       {kernels::DType::kF32, kernels::DType::kBF16, kernels::DType::kQ8_0}) {
    from_file.model_path = dir.File(std::string(kernels::DTypeName(weights)) + ".gguf");
    auto config = model::PresetConfig("tiny");
    ASSERT_TRUE(config.ok());
    config->hidden_dim = 192;  // rows of whole Q8_0 blocks
    ASSERT_TRUE(model::WriteRandomModel(from_file.model_path, *config, weights).ok());
    const auto opened = OpenModel(from_file);
    ASSERT_TRUE(opened.ok()) << opened.status();
    EXPECT_EQ(opened->kv_dtype,
              weights == kernels::DType::kF32 ? kernels::DType::kF32 : kernels::DType::kF16)
        << kernels::DTypeName(weights);
  }
  for (const char* name : {"q8_0", "F16", "fp8_e5m2", ""}) {
    flags.kv_dtype = name;
    const auto refused = OpenModel(flags);
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument) << name;
    EXPECT_THAT(refused.status().message(),
                HasSubstr("--kv-dtype: expected auto, f32, f16, bf16 or fp8, got '" +
                          std::string(name) + "'"));
  }
}

// --rope-scaling replaces a checkpoint's scaling and --context-length its context, in the
// config the model is built from: YaRN serves factor times the original context.
TEST(OpenModelTest, RopeScalingAndContextLengthFlags) {
  ringserve::testing::ScopedTempDir dir;
  ModelFlags flags;
  flags.model_path = dir.File("tiny.gguf");
  ASSERT_TRUE(model::WriteTinyModel(flags.model_path).ok());
  const auto plain = OpenModel(flags);
  ASSERT_TRUE(plain.ok()) << plain.status();
  const int trained = plain->config.max_seq_len;

  flags.rope_scaling = R"({"rope_type": "yarn", "factor": 4})";
  const auto yarn = OpenModel(flags);
  ASSERT_TRUE(yarn.ok()) << yarn.status();
  EXPECT_EQ(yarn->config.rope_scaling.type, model::RopeType::kYarn);
  EXPECT_EQ(yarn->config.rope_scaling.original_max_position, trained);
  EXPECT_EQ(yarn->config.max_seq_len, 4 * trained);
  model::ModelOptions options;
  options.num_kv_blocks = 4 * trained / options.block_size;
  const auto model = CreateModel(*yarn, flags, options);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->config().rope_scaling.type, model::RopeType::kYarn);
  EXPECT_EQ((*model)->max_context_len(), 4 * trained);

  flags.context_length = trained / 2;
  const auto capped = OpenModel(flags);
  ASSERT_TRUE(capped.ok()) << capped.status();
  EXPECT_EQ(capped->config.max_seq_len, trained / 2);
  const auto capped_model = CreateModel(*capped, flags, options);
  ASSERT_TRUE(capped_model.ok()) << capped_model.status();
  EXPECT_EQ((*capped_model)->max_context_len(), trained / 2);

  // Longer than the model's: allowed (a warning on stderr). Dummy weights take both too.
  flags.rope_scaling.clear();
  flags.context_length = 3 * trained;
  EXPECT_EQ(OpenModel(flags)->config.max_seq_len, 3 * trained);
  ModelFlags dummy;
  dummy.dummy_weights = true;
  dummy.preset = "tiny";
  dummy.rope_scaling = R"({"rope_type": "linear", "factor": 2})";
  const auto linear = OpenModel(dummy);
  ASSERT_TRUE(linear.ok()) << linear.status();
  EXPECT_EQ(linear->config.rope_scaling.type, model::RopeType::kLinear);

  struct Refused {
    const char* json;
    absl::StatusCode code;
    const char* says;
  };
  for (const Refused& r :
       {Refused{"yarn", absl::StatusCode::kInvalidArgument, "--rope-scaling: not JSON"},
        Refused{R"({"rope_type": "dynamic", "factor": 2})", absl::StatusCode::kUnimplemented,
                "--rope-scaling: rope type 'dynamic' is not supported"},
        Refused{R"({"rope_type": "yarn", "factor": -2})", absl::StatusCode::kInvalidArgument,
                "--rope-scaling: model config: rope scaling 'yarn' needs a factor > 0"}}) {
    flags.rope_scaling = r.json;
    const auto refused = OpenModel(flags);
    EXPECT_EQ(refused.status().code(), r.code) << r.json;
    EXPECT_THAT(refused.status().message(), HasSubstr(r.says)) << r.json;
  }
}

// `pieces` as a llama2.c tokenizer.bin (BOS and EOS spelled as run.c writes them, U+2581 as a
// space).
void WriteLlama2cTokenizer(const std::string& path, const std::vector<std::string>& pieces) {
  std::ofstream out(path, std::ios::binary);
  const int32_t max_length = 64;
  out.write(reinterpret_cast<const char*>(&max_length), sizeof(max_length));
  for (size_t id = 0; id < pieces.size(); ++id) {
    const std::string piece = id == 1   ? "\n<s>\n"
                              : id == 2 ? "\n</s>\n"
                                        : absl::StrReplaceAll(pieces[id], {{"\xE2\x96\x81", " "}});
    const float score = 0;
    const auto length = static_cast<int32_t>(piece.size());
    out.write(reinterpret_cast<const char*>(&score), sizeof(score));
    out.write(reinterpret_cast<const char*>(&length), sizeof(length));
    out.write(piece.data(), length);
  }
}

// <unk>, <s>, </s>, then "3", "4", ...
std::vector<std::string> NumberPieces(int n) {
  std::vector<std::string> pieces = {"<unk>", "<s>", "</s>"};
  for (int id = 3; id < n; ++id) pieces.push_back(std::to_string(id));
  return pieces;
}

// The tiny preset has 512 embedding rows; a bigger tokenizer's ids would be refused on
// every request with text, so the model must not start with it.
TEST(OpenModelTest, RefusesATokenizerLargerThanTheDummyModelsVocabulary) {
  ringserve::testing::ScopedTempDir dir;
  ModelFlags flags;
  flags.dummy_weights = true;
  flags.preset = "tiny";
  flags.tokenizer_path = dir.File("big.bin");
  WriteLlama2cTokenizer(flags.tokenizer_path, NumberPieces(600));
  const auto refused = OpenModel(flags);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(),
              HasSubstr("tokenizer has 600 tokens but the model has a vocabulary of 512"));

  flags.tokenizer_path = dir.File("fits.bin");
  WriteLlama2cTokenizer(flags.tokenizer_path, NumberPieces(512));
  const auto opened = OpenModel(flags);
  ASSERT_TRUE(opened.ok()) << opened.status();
  ASSERT_NE(opened->tokenizer, nullptr);
}

// A GGUF with its own tokenizer ignored --tokenizer without a word, even a missing file or
// another model's tokenizer. The same tokens (a script passing one tokenizer for a .bin and
// a .gguf of one model) are fine.
TEST(OpenModelTest, ATokenizerFileBesideAModelThatCarriesOneMustBeTheSame) {
  ringserve::testing::ScopedTempDir dir;
  ModelFlags flags;
  flags.model_path = dir.File("tiny.gguf");
  ASSERT_TRUE(model::WriteTinyModel(flags.model_path).ok());
  flags.tokenizer_path = dir.File("absent.bin");
  EXPECT_EQ(OpenModel(flags).status().code(), absl::StatusCode::kNotFound);

  flags.tokenizer_path = dir.File("other.bin");
  WriteLlama2cTokenizer(flags.tokenizer_path, NumberPieces(512));
  const auto refused = OpenModel(flags);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(), HasSubstr("is not the tokenizer"));

  flags.tokenizer_path = dir.File("same.bin");
  WriteLlama2cTokenizer(flags.tokenizer_path, model::TinyVocabulary().tokens);
  const auto opened = OpenModel(flags);
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_NE(opened->tokenizer, nullptr);
}

}  // namespace
}  // namespace ringserve::tools
