// Greedy generation against reference outputs of independent implementations (llama2.c's
// run.c, checked against llama.cpp): /work/shared/vectors/stories260K-greedy.json. Every
// case, both model files: the tokens on every f32 test device (test_devices.h), prompts run
// one at a time and all together in one batch; the first step's logits on the GPU and the
// emulation, f32 and bf16, against the CPU's; the model quantized as llama.cpp's Q8_0 and
// Q4_0 files hold it, on the CPU, against the same values in f32.
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <numeric>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/unit/model/offline_batch.h"
#include "tests/unit/model/test_devices.h"
#include "tests/unit/shared_dir.h"
#include "worker/model/checkpoint.h"
#include "worker/model/gguf_blocks.h"
#include "worker/model/llama_model.h"
#include "worker/tokenizer/stream_decoder.h"
#include "worker/tokenizer/tokenizer.h"

namespace ringserve::model {
namespace {

namespace fs = std::filesystem;
using ringserve::testing::TestDevice;

struct GoldenCase {
  std::string prompt;
  std::vector<int32_t> prompt_ids;
  std::vector<int32_t> generated_ids;
  std::string text;
};

std::vector<GoldenCase> LoadCases() {
  std::ifstream in(fs::path(SharedDataDir()) / "vectors/stories260K-greedy.json");
  const auto doc = nlohmann::json::parse(in, nullptr, false);
  std::vector<GoldenCase> cases;
  if (doc.is_discarded()) return cases;
  for (const auto& c : doc["cases"]) {
    cases.push_back({c["prompt"], c["prompt_ids"], c["generated_ids"], c["text"]});
  }
  return cases;
}

struct ModelFile {
  std::string name;
  std::string path;
  std::string tokenizer;
};
void PrintTo(const ModelFile& file, std::ostream* os) { *os << file.name; }

const ModelFile kFiles[] = {
    {"llama2c", SharedDataDir() + "/models/stories260K.bin",
     SharedDataDir() + "/models/tok512.bin"},
    {"gguf", SharedDataDir() + "/models/stories260K-f32.gguf", ""},
};

absl::StatusOr<std::unique_ptr<Checkpoint>> Open(const ModelFile& file) {
  if (!fs::exists(file.path)) return absl::NotFoundError(file.path + " not present");
  return OpenCheckpoint(file.path, file.tokenizer);
}

class GoldenPromptTest : public ::testing::TestWithParam<ModelFile> {};

TEST_P(GoldenPromptTest, PromptIdsMatch) {
  auto checkpoint = Open(GetParam());
  if (absl::IsNotFound(checkpoint.status())) GTEST_SKIP() << checkpoint.status();
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  ASSERT_TRUE((*checkpoint)->vocabulary.has_value());
  auto tokenizer = tokenizer::Tokenizer::Create(*(*checkpoint)->vocabulary);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  const std::vector<GoldenCase> cases = LoadCases();
  ASSERT_FALSE(cases.empty());
  for (const GoldenCase& c : cases) {
    EXPECT_EQ((*tokenizer)->Encode(c.prompt, {}), c.prompt_ids) << "prompt: " << c.prompt;
  }
}

INSTANTIATE_TEST_SUITE_P(SharedVectors, GoldenPromptTest, ::testing::ValuesIn(kFiles),
                         [](const auto& info) { return info.param.name; });

class GoldenTest : public ::testing::TestWithParam<std::tuple<ModelFile, TestDevice>> {
 protected:
  void SetUp() override {
    const auto& [file, device] = GetParam();
    auto checkpoint = Open(file);
    if (absl::IsNotFound(checkpoint.status())) GTEST_SKIP() << checkpoint.status();
    ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
    checkpoint_ = *std::move(checkpoint);
    cases_ = LoadCases();
    ASSERT_FALSE(cases_.empty());
    auto backend = device.create();
    if (!backend.ok()) GTEST_SKIP() << device.name << ": " << backend.status();
    backend_ = *std::move(backend);
    ASSERT_TRUE(checkpoint_->vocabulary.has_value());
    auto tok = tokenizer::Tokenizer::Create(*checkpoint_->vocabulary);
    ASSERT_TRUE(tok.ok()) << tok.status();
    tokenizer_ = *std::move(tok);
  }

  std::vector<testing::OfflineRequest> Requests() const {
    std::vector<testing::OfflineRequest> requests;
    for (const GoldenCase& c : cases_) {
      testing::OfflineRequest r;
      r.prompt_ids = c.prompt_ids;
      r.max_tokens = static_cast<int>(c.generated_ids.size());
      r.sampling.temperature = 0;
      requests.push_back(r);
    }
    return requests;
  }

  // 64 tokens a pass force chunked prefill of the longer prompts.
  static std::unique_ptr<LlamaModel> MakeModel(const Checkpoint& checkpoint,
                                               kernels::Backend& backend,
                                               const std::vector<testing::OfflineRequest>& requests,
                                               int max_batch_tokens = 64) {
    ModelOptions options;
    options.num_kv_blocks = static_cast<int>(testing::OfflineKvBlocks(requests, 16));
    options.max_seqs = static_cast<int>(requests.size());
    options.max_batch_tokens = max_batch_tokens;
    auto model = LlamaModel::Create(checkpoint, &backend, options);
    EXPECT_TRUE(model.ok()) << model.status();
    return model.ok() ? *std::move(model) : nullptr;
  }
  std::unique_ptr<LlamaModel> MakeModel(const std::vector<testing::OfflineRequest>& requests) {
    return MakeModel(*checkpoint_, *backend_, requests);
  }

  std::vector<GoldenCase> cases_;
  std::unique_ptr<kernels::Backend> backend_;
  std::unique_ptr<Checkpoint> checkpoint_;
  std::unique_ptr<tokenizer::Tokenizer> tokenizer_;
};

// Every (file, device) pair for which keep(file, device) holds.
std::vector<GoldenTest::ParamType> Pairs(
    const std::function<bool(const ModelFile&, const TestDevice&)>& keep) {
  std::vector<GoldenTest::ParamType> pairs;
  for (const ModelFile& file : kFiles) {
    for (const TestDevice& device : ringserve::testing::TestDevices()) {
      if (keep(file, device)) pairs.emplace_back(file, device);
    }
  }
  return pairs;
}

std::string DeviceCaseName(const ::testing::TestParamInfo<GoldenTest::ParamType>& info) {
  return std::get<0>(info.param).name + "_" + std::get<1>(info.param).name;
}

// The references' tokens come from f32 implementations; an f32 device must give exactly them.
// The emulation (35 ms a step) runs the batch of all prompts on one file only: the files hold
// the same f32 weights, and the loaders do not depend on the device.
class GoldenTokensTest : public GoldenTest {};
class GoldenTokensOneAtATimeTest : public GoldenTest {};

TEST_P(GoldenTokensOneAtATimeTest, GreedyTokensMatchOneAtATime) {
  const auto requests = Requests();
  auto model = MakeModel(requests);
  ASSERT_NE(model, nullptr);
  for (size_t i = 0; i < requests.size(); ++i) {
    auto result = testing::RunOfflineBatch(*model, std::span(&requests[i], 1));
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ((*result)[0].generated_ids, cases_[i].generated_ids)
        << "prompt: " << cases_[i].prompt;
  }
}

TEST_P(GoldenTokensTest, GreedyTokensAndTextMatchAllInOneBatch) {
  const auto requests = Requests();
  auto model = MakeModel(requests);
  ASSERT_NE(model, nullptr);
  auto results = testing::RunOfflineBatch(*model, requests);
  ASSERT_TRUE(results.ok()) << results.status();
  for (size_t i = 0; i < requests.size(); ++i) {
    EXPECT_EQ((*results)[i].generated_ids, cases_[i].generated_ids)
        << "prompt: " << cases_[i].prompt;
    tokenizer::StreamDecoder decoder(*tokenizer_, requests[i].prompt_ids.back());
    std::string text;
    for (int32_t id : (*results)[i].generated_ids) text += decoder.Push(id);
    text += decoder.Flush();
    EXPECT_EQ(text, cases_[i].text) << "prompt: " << cases_[i].prompt;
  }
}

INSTANTIATE_TEST_SUITE_P(SharedVectors, GoldenTokensOneAtATimeTest,
                         ::testing::ValuesIn(Pairs([](const ModelFile&, const TestDevice& d) {
                           return d.exact_tokens() && !d.emulated;
                         })),
                         DeviceCaseName);
INSTANTIATE_TEST_SUITE_P(SharedVectors, GoldenTokensTest,
                         ::testing::ValuesIn(Pairs([](const ModelFile& f, const TestDevice& d) {
                           return d.exact_tokens() && (!d.emulated || f.name == "llama2c");
                         })),
                         DeviceCaseName);

// The GPU acceptance criterion: the logits after each vector's prompt (all prompts prefilled
// in one pass) within the device's tolerance of the CPU's f32 logits, as LogitsError
// measures: 2e-2 of the largest logit in bf16.
class GoldenFirstStepTest : public GoldenTest {
 protected:
  std::vector<float> FirstStepLogits(kernels::Backend& backend) {
    const auto requests = Requests();
    auto model = MakeModel(*checkpoint_, backend, requests, /*max_batch_tokens=*/256);
    if (model == nullptr) return {};
    const int block_size = model->options().block_size;
    std::vector<std::vector<int32_t>> tables;
    std::vector<model::SequenceChunk> chunks;
    int32_t next_block = 0;
    for (const GoldenCase& c : cases_) {
      const auto blocks = static_cast<int32_t>((c.prompt_ids.size() + block_size - 1) / block_size);
      tables.emplace_back(blocks);
      std::iota(tables.back().begin(), tables.back().end(), next_block);
      next_block += blocks;
    }
    for (size_t i = 0; i < cases_.size(); ++i) {
      chunks.push_back({cases_[i].prompt_ids, 0, tables[i], /*sample=*/true});
    }
    std::vector<float> logits;
    const absl::Status status = model->Forward(chunks, &logits);
    EXPECT_TRUE(status.ok()) << status;
    return logits;
  }
};

TEST_P(GoldenFirstStepTest, LogitsAfterEachPromptMatchTheCpuInF32) {
  const TestDevice& device = std::get<1>(GetParam());
  auto cpu = kernels::CreateBackend("cpu");
  ASSERT_TRUE(cpu.ok()) << cpu.status();
  const std::vector<float> want = FirstStepLogits(**cpu);
  const std::vector<float> got = FirstStepLogits(*backend_);
  const size_t vocab = checkpoint_->config.vocab_size;
  ASSERT_EQ(want.size(), cases_.size() * vocab);
  ASSERT_EQ(got.size(), want.size());
  double worst = 0;
  for (size_t i = 0; i < cases_.size(); ++i) {
    const double error = ringserve::testing::LogitsError(std::span(got).subspan(i * vocab, vocab),
                                                         std::span(want).subspan(i * vocab, vocab));
    EXPECT_LE(error, device.logits_tolerance) << "prompt: " << cases_[i].prompt;
    worst = std::max(worst, error);
  }
  std::cout << device.name << ": worst first-step logits error " << worst << "\n";
}

INSTANTIATE_TEST_SUITE_P(SharedVectors, GoldenFirstStepTest,
                         ::testing::ValuesIn(Pairs([](const ModelFile&, const TestDevice& d) {
                           return d.name != "cpu_f32";
                         })),
                         DeviceCaseName);

// `source` with every f32 matrix of whole 32-value rows quantized to `packing` (kAsStored:
// Q8_0) as llama.cpp's files hold them; with `widened`, those values back in f32.
std::unique_ptr<Checkpoint> Quantized(const Checkpoint& source, Packing packing, bool widened) {
  auto out = std::make_unique<Checkpoint>();
  out->config = source.config;
  out->vocabulary = source.vocabulary;
  out->format = source.format;
  out->source_path = source.source_path + (widened ? " (quantized, in f32)" : " (quantized)");
  const bool q8 = packing == Packing::kAsStored;
  for (const HostTensor& t : source.tensors()) {
    if (t.shape.size() != 2 || t.shape[1] % 32 != 0 || t.dtype != kernels::DType::kF32) {
      out->AddTensor(t);
      continue;
    }
    const int64_t count = t.NumElements();
    const auto* values = static_cast<const float*>(t.data);
    std::vector<uint8_t> blocks(q8 ? kernels::DTypeBytes(kernels::DType::kQ8_0, count)
                                   : static_cast<size_t>(PackedBytes(packing, count)));
    if (q8) {
      for (int64_t b = 0; b < count / 32; ++b) {
        QuantizeQ8_0Block(values + b * 32, blocks.data() + b * kernels::kQ8_0BlockBytes);
      }
    } else {
      Pack(packing, values, count, blocks.data());
    }
    HostTensor q = t;
    if (widened) {
      auto* wide = static_cast<float*>(out->AllocateOwned(count * sizeof(float)));
      if (q8) {
        kernels::ConvertToFloat(kernels::DType::kQ8_0, blocks.data(), count, wide);
      } else {
        Unpack(packing, blocks.data(), count, wide);
      }
      q.data = wide;
    } else {
      void* data = out->AllocateOwned(blocks.size());
      std::memcpy(data, blocks.data(), blocks.size());
      q.data = data;
      q.bytes = blocks.size();
      q.dtype = kernels::DType::kQ8_0;
      q.packing = packing;
    }
    out->AddTensor(std::move(q));
  }
  return out;
}

// The logits after each token of a case's text from its prompt's last on, the reference's
// continuation fed back whatever the model would pick (teacher forcing).
std::vector<std::vector<float>> TeacherForcedLogits(const Checkpoint& checkpoint,
                                                    kernels::Backend& backend,
                                                    const GoldenCase& c) {
  const size_t length = c.prompt_ids.size() + c.generated_ids.size();
  ModelOptions options;
  options.block_size = 16;
  options.num_kv_blocks = static_cast<int>(length / 16 + 1);
  auto model = LlamaModel::Create(checkpoint, &backend, options);
  EXPECT_TRUE(model.ok()) << model.status();
  if (!model.ok()) return {};
  std::vector<int32_t> table(static_cast<size_t>(options.num_kv_blocks));
  std::iota(table.begin(), table.end(), 0);
  std::vector<std::vector<float>> rows(1);
  const SequenceChunk prompt{c.prompt_ids, 0, table, true};
  EXPECT_TRUE((*model)->Forward({&prompt, 1}, &rows[0]).ok());
  for (size_t t = 0; t + 1 < c.generated_ids.size(); ++t) {
    const SequenceChunk next{std::span(c.generated_ids).subspan(t, 1),
                             static_cast<int32_t>(c.prompt_ids.size() + t), table, true};
    rows.emplace_back();
    EXPECT_TRUE((*model)->Forward({&next, 1}, &rows.back()).ok());
  }
  return rows;
}

// Quantized matrices multiply quantized activations on the CPU (kernels/cpu/quant_matmul.h).
// Along every vector's text, that picks the same next token as the exact products of the
// same quantized values nearly everywhere (the rest are near-ties), with logits close to
// theirs, and agrees with the unquantized model as often as they do.
class QuantizedGoldenTest : public ::testing::TestWithParam<Packing> {};

TEST_P(QuantizedGoldenTest, NextTokensMatchTheQuantizedValuesInF32) {
  auto checkpoint = Open(kFiles[1]);
  if (absl::IsNotFound(checkpoint.status())) GTEST_SKIP() << checkpoint.status();
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  const std::vector<GoldenCase> cases = LoadCases();
  ASSERT_FALSE(cases.empty());
  auto cpu = kernels::CreateBackend("cpu", {.num_threads = 2});
  ASSERT_TRUE(cpu.ok()) << cpu.status();
  const auto served = Quantized(**checkpoint, GetParam(), /*widened=*/false);
  const auto exact = Quantized(**checkpoint, GetParam(), /*widened=*/true);
  const auto argmax = [](const std::vector<float>& v) {
    return std::max_element(v.begin(), v.end()) - v.begin();
  };
  int positions = 0, same = 0, same_unquantized = 0, exact_unquantized = 0;
  double worst = 0;
  for (const GoldenCase& c : cases) {
    const auto got = TeacherForcedLogits(*served, **cpu, c);
    const auto want = TeacherForcedLogits(*exact, **cpu, c);
    const auto original = TeacherForcedLogits(**checkpoint, **cpu, c);
    ASSERT_EQ(got.size(), c.generated_ids.size());
    ASSERT_EQ(want.size(), got.size());
    ASSERT_EQ(original.size(), got.size());
    for (size_t t = 0; t < got.size(); ++t) {
      ++positions;
      same += argmax(got[t]) == argmax(want[t]);
      same_unquantized += argmax(got[t]) == argmax(original[t]);
      exact_unquantized += argmax(want[t]) == argmax(original[t]);
      worst = std::max(worst, ringserve::testing::LogitsError(got[t], want[t]));
    }
  }
  std::cout << (GetParam() == Packing::kAsStored ? "q8_0" : InfoOf(GetParam()).name)
            << ": next token as the quantized values' in f32 at " << same << " of " << positions
            << " positions (largest logits error " << worst
            << "); as the unquantized model's: served " << same_unquantized << ", in f32 "
            << exact_unquantized << "\n";
  // Measured: 510 (Q8_0) and 507 (Q4_0) of 512 positions, errors up to 2.7e-2; against the
  // unquantized model the served Q8_0 model agrees at 508 positions as its f32 values do,
  // Q4_0 at 434 against 432.
  EXPECT_GE(same, positions * 97 / 100);
  EXPECT_LE(worst, 4e-2);
  EXPECT_GE(same_unquantized, exact_unquantized - positions / 100);
}

INSTANTIATE_TEST_SUITE_P(SharedVectors, QuantizedGoldenTest,
                         ::testing::Values(Packing::kAsStored, Packing::kQ4_0),
                         [](const auto& info) {
                           return info.param == Packing::kAsStored ? "q8_0" : "q4_0";
                         });

}  // namespace
}  // namespace ringserve::model
