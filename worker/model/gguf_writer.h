// Builds GGUF v3 files (format: ggml docs/gguf.md) in memory or on disk: metadata of every
// type, tensors stored as F32, F16, BF16 or Q8_0 converted from float. Used by
// `ringserve-model make-tiny` and by tests, which also use it to produce malformed files
// (duplicate keys and raw tensor infos are written as given, unchecked).
//
// Not thread-safe; a plain value object.
#ifndef RINGSERVE_WORKER_MODEL_GGUF_WRITER_H_
#define RINGSERVE_WORKER_MODEL_GGUF_WRITER_H_

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "kernels/dtype.h"
#include "worker/model/gguf_blocks.h"
#include "worker/model/gguf_reader.h"

namespace ringserve::model {

class GgufWriter {
 public:
  // `alignment` is written as general.alignment when it is not the default 32.
  explicit GgufWriter(uint32_t alignment = 32);

  // Appends a metadata entry. Keys are not de-duplicated (tests write duplicates on
  // purpose). Integer values of any width are held in int64/uint64, floats in double.
  void Set(const std::string& key, GgufValue value);
  void SetUint32(const std::string& key, uint32_t v);
  void SetInt32(const std::string& key, int32_t v);
  void SetFloat32(const std::string& key, float v);
  void SetBool(const std::string& key, bool v);
  void SetString(const std::string& key, std::string v);
  void SetStringArray(const std::string& key, std::vector<std::string> v);
  void SetFloat32Array(const std::string& key, std::vector<double> v);
  void SetInt32Array(const std::string& key, std::vector<int64_t> v);

  // Adds a tensor of row-major `shape` ({rows, cols}), converting `values` to `dtype`
  // (Q8_0 quantised like ggml's quantize_row_q8_0_ref). INVALID_ARGUMENT when the value
  // count does not match the shape or a Q8_0 row is not a multiple of 32.
  absl::Status AddTensor(const std::string& name, const std::vector<int64_t>& shape,
                         kernels::DType dtype, std::span<const float> values);
  // Adds a tensor of Q4_0 or Q5_0 blocks quantized from `values` (gguf_blocks.h's Pack).
  // INVALID_ARGUMENT as AddTensor's, and for rows that are not whole blocks.
  absl::Status AddPackedTensor(const std::string& name, const std::vector<int64_t>& shape,
                               Packing packing, std::span<const float> values);
  // Adds a tensor info and data exactly as given (ggml `ne` order, any type number):
  // no checks. `offset_override` replaces the computed data offset when set.
  void AddRawTensor(const std::string& name, uint32_t ggml_type, std::vector<uint64_t> ne,
                    std::vector<uint8_t> data, std::optional<uint64_t> offset_override = {});

  // The whole file image. `version` lets tests write v2 (same layout) or bad versions.
  std::vector<uint8_t> Build(uint32_t version = 3) const;
  absl::Status WriteFile(const std::string& path) const;

 private:
  struct Tensor {
    std::string name;
    uint32_t ggml_type;
    std::vector<uint64_t> ne;
    std::vector<uint8_t> data;
    std::optional<uint64_t> offset_override;
  };
  uint32_t alignment_;
  std::vector<std::pair<std::string, GgufValue>> metadata_;
  std::vector<Tensor> tensors_;
};

// Converts floats to the bytes of `dtype` (count must be a multiple of 32 for Q8_0).
std::vector<uint8_t> EncodeTensorData(kernels::DType dtype, std::span<const float> values);

}  // namespace ringserve::model

#endif  // RINGSERVE_WORKER_MODEL_GGUF_WRITER_H_
