// libFuzzer target for the GGUF path: GgufFile::Parse -> VocabularyFromGguf ->
// CheckpointFromGguf on the raw input, then a read of every tensor's first and last
// block so ASan sees any view that escapes the input.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "kernels/dtype.h"
#include "worker/model/gguf_loader.h"
#include "worker/model/gguf_reader.h"
#include "worker/model/gguf_vocab.h"

namespace {

void TouchTensor(const ringserve::model::HostTensor& t) {
  using ringserve::kernels::DType;
  if (t.bytes == 0 || t.dtype == DType::kI32) return;
  const size_t block = t.dtype == DType::kQ8_0 ? ringserve::kernels::kQ8_0BlockValues : 1;
  const size_t block_bytes = ringserve::kernels::DTypeBytes(t.dtype, block);
  if (t.bytes < block_bytes) return;
  std::vector<float> out(block);
  const auto* p = static_cast<const uint8_t*>(t.data);
  ringserve::kernels::ConvertToFloat(t.dtype, p, block, out.data());
  ringserve::kernels::ConvertToFloat(t.dtype, p + t.bytes - block_bytes, block, out.data());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto file = ringserve::model::GgufFile::Parse(std::span<const uint8_t>(data, size), "fuzz.gguf");
  if (!file.ok()) return 0;
  if ((*file)->Find("tokenizer.ggml.model") != nullptr) {
    (void)ringserve::model::VocabularyFromGguf(**file);
  }
  auto ckpt = ringserve::model::CheckpointFromGguf(**file);
  if (!ckpt.ok()) return 0;
  for (const auto& t : (*ckpt)->tensors()) TouchTensor(t);
  return 0;
}
