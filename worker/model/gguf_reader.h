// GGUF v2/v3 parser (format: ggml's docs/gguf.md). Validates every offset and size
// against the file before use, so a malformed file is an error naming the file (and the
// key or tensor), never a crash. Tensor data stays in the memory map.
#ifndef RINGSERVE_WORKER_MODEL_GGUF_READER_H_
#define RINGSERVE_WORKER_MODEL_GGUF_READER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/mapped_file.h"
#include "kernels/dtype.h"
#include "worker/model/gguf_blocks.h"

namespace ringserve::model {

// GGUF metadata value types (gguf_type).
enum class GgufType : uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};

// One metadata value. Scalars widen to int64/uint64/double; arrays of scalars keep their
// element type; arrays of strings are string vectors.
struct GgufValue {
  GgufType type = GgufType::kUint32;
  GgufType array_type = GgufType::kUint32;  // element type when type == kArray
  std::variant<int64_t, uint64_t, double, bool, std::string, std::vector<int64_t>,
               std::vector<double>, std::vector<std::string>>
      value;
};

// ggml tensor type numbers of the types the loaders convert (ggml.h enum ggml_type); the
// packed ones are in gguf_blocks.h.
inline constexpr uint32_t kGgmlTypeF32 = 0;
inline constexpr uint32_t kGgmlTypeF16 = 1;
inline constexpr uint32_t kGgmlTypeQ8_0 = 8;
inline constexpr uint32_t kGgmlTypeBF16 = 30;

// "F32", "Q4_K", ... for the ggml types this build knows, "type N" otherwise.
std::string GgmlTypeName(uint32_t ggml_type);
// Bytes taken by `num_elements` values of `ggml_type`: INVALID_ARGUMENT when the type is
// unknown or `num_elements` is not a whole number of its blocks.
absl::StatusOr<uint64_t> GgmlTypeBytes(uint32_t ggml_type, uint64_t num_elements);
// Name of a metadata value type ("u32", "string", "array", ...).
const char* GgufTypeName(GgufType type);

struct GgufTensorInfo {
  std::string name;
  uint32_t ggml_type = 0;                // raw ggml_type number from the file
  kernels::DType dtype;                  // mapped when supported (F32, F16, BF16, Q8_0)
  Packing packing = Packing::kAsStored;  // Q4_0, Q4_K, ...: as Q8_0 or affine (gguf_blocks.h)
  bool supported = false;
  std::vector<int64_t> shape;  // row-major (ne[] reversed)
  uint64_t offset = 0;         // from the start of the file
  uint64_t bytes = 0;
};

class GgufFile {
 public:
  // Parses the header, metadata and tensor infos of `path`.
  static absl::StatusOr<std::unique_ptr<GgufFile>> Open(const std::string& path);
  // Parses an in-memory image (for fuzzing and tests); `name` is used in errors.
  static absl::StatusOr<std::unique_ptr<GgufFile>> Parse(std::span<const uint8_t> bytes,
                                                         const std::string& name);

  uint32_t version() const { return version_; }
  const std::string& name() const { return name_; }
  const absl::flat_hash_map<std::string, GgufValue>& metadata() const { return metadata_; }
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  std::span<const uint8_t> bytes() const { return bytes_; }

  const GgufValue* Find(const std::string& key) const;
  // Typed getters: NOT_FOUND when absent, INVALID_ARGUMENT (naming the key) when the type
  // does not fit.
  absl::StatusOr<int64_t> GetInt(const std::string& key) const;
  absl::StatusOr<double> GetFloat(const std::string& key) const;
  absl::StatusOr<std::string> GetString(const std::string& key) const;
  absl::StatusOr<bool> GetBool(const std::string& key) const;
  absl::StatusOr<std::vector<std::string>> GetStringArray(const std::string& key) const;
  absl::StatusOr<std::vector<double>> GetFloatArray(const std::string& key) const;
  absl::StatusOr<std::vector<int64_t>> GetIntArray(const std::string& key) const;

  // Moves the mapping out so a Checkpoint can keep it alive (nullptr for Parse()).
  std::unique_ptr<MappedFile> ReleaseMapping() { return std::move(mapping_); }

 private:
  GgufFile() = default;
  absl::StatusOr<const GgufValue*> FindOrError(const std::string& key) const;
  absl::Status TypeError(const std::string& key, const GgufValue& value,
                         absl::string_view expected) const;

  std::string name_;
  uint32_t version_ = 0;
  std::unique_ptr<MappedFile> mapping_;
  std::span<const uint8_t> bytes_;
  absl::flat_hash_map<std::string, GgufValue> metadata_;
  std::vector<GgufTensorInfo> tensors_;
};

}  // namespace ringserve::model

#endif  // RINGSERVE_WORKER_MODEL_GGUF_READER_H_
