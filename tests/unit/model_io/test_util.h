// Fixture builders for the model I/O tests: small checkpoints in every format, with
// tensor values that are a pure function of (canonical name, index) so any loader's
// output can be checked element by element.
#ifndef RINGSERVE_TESTS_UNIT_MODEL_IO_TEST_UTIL_H_
#define RINGSERVE_TESTS_UNIT_MODEL_IO_TEST_UTIL_H_

#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "kernels/dtype.h"
#include "tests/support/safetensors_image.h"
#include "worker/model/gguf_writer.h"
#include "worker/model/model_config.h"

namespace ringserve::model::testing {

using ::ringserve::testing::SafetensorsImage;
using ::ringserve::testing::StTensor;
using ShapeList = std::vector<std::pair<std::string, std::vector<int64_t>>>;

// A fresh directory under the test temp dir, unique per call.
std::string MakeTempDir();
void WriteBytes(const std::string& path, std::span<const uint8_t> bytes);
void WriteText(const std::string& path, const std::string& text);

// dim 32, hidden 64, 2 layers, 4 heads, 2 KV heads, vocab 40, seq 16 (Q8_0-friendly).
ModelConfig SmallConfig();
// Canonical tensors of `c` (output.weight only when untied).
ShapeList CanonicalShapes(const ModelConfig& c);
float TestValue(const std::string& canonical_name, int64_t index);
std::vector<float> TestValues(const std::string& canonical_name, int64_t count);

// A GGUF "llama" model of `c` with every tensor in `dtype` and a small SPM vocabulary.
GgufWriter SmallGgufWriter(const ModelConfig& c, kernels::DType dtype);

// llama.c legacy (v0) or v1 ("ak42") image of `c` (untied when !c.tied_embeddings).
std::vector<uint8_t> Llama2cImage(const ModelConfig& c, bool version1, bool rope_tables = true);

// The HF tensors of `c` (canonical test values), in `dtype` ("F32", "F16" or "BF16").
std::vector<StTensor> HfTensors(const ModelConfig& c, const std::string& dtype);
std::string HfConfigJson(const ModelConfig& c, const std::string& extra = "");

}  // namespace ringserve::model::testing

#endif  // RINGSERVE_TESTS_UNIT_MODEL_IO_TEST_UTIL_H_
