// GGUF parser: the file header, the tensor infos (ggml types, shapes, byte sizes) and the
// data section's layout; the key/value section is gguf_metadata.cc. Format: ggml
// docs/gguf.md. Every count and length read from the file is checked against the bytes that
// remain BEFORE anything is allocated, so a hostile header (2^60 tensors, a 2^40-byte
// string) is an error, never a bad_alloc.
#include "worker/model/gguf_reader.h"

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <variant>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/model/gguf_cursor.h"

namespace ringserve::model {
namespace {

constexpr uint32_t kGgufMagic = 0x46554747;  // "GGUF" little-endian
constexpr uint64_t kDefaultAlignment = 32;
constexpr uint32_t kMaxDims = 4;

struct GgmlTypeTraits {
  uint32_t id;
  const char* name;
  uint32_t block_values;
  uint32_t block_bytes;
};

// ggml.c type_traits (block size, bytes per block) for the types GGUF files carry.
constexpr std::array<GgmlTypeTraits, 32> kGgmlTypes = {{
    {0, "F32", 1, 4},         {1, "F16", 1, 2},         {2, "Q4_0", 32, 18},
    {3, "Q4_1", 32, 20},      {6, "Q5_0", 32, 22},      {7, "Q5_1", 32, 24},
    {8, "Q8_0", 32, 34},      {9, "Q8_1", 32, 36},      {10, "Q2_K", 256, 84},
    {11, "Q3_K", 256, 110},   {12, "Q4_K", 256, 144},   {13, "Q5_K", 256, 176},
    {14, "Q6_K", 256, 210},   {15, "Q8_K", 256, 292},   {16, "IQ2_XXS", 256, 66},
    {17, "IQ2_XS", 256, 74},  {18, "IQ3_XXS", 256, 98}, {19, "IQ1_S", 256, 50},
    {20, "IQ4_NL", 32, 18},   {21, "IQ3_S", 256, 110},  {22, "IQ2_S", 256, 82},
    {23, "IQ4_XS", 256, 136}, {24, "I8", 1, 1},         {25, "I16", 1, 2},
    {26, "I32", 1, 4},        {27, "I64", 1, 8},        {28, "F64", 1, 8},
    {29, "IQ1_M", 256, 56},   {30, "BF16", 1, 2},       {34, "TQ1_0", 256, 54},
    {35, "TQ2_0", 256, 66},   {39, "MXFP4", 32, 17},
}};

const GgmlTypeTraits* FindGgmlType(uint32_t id) {
  for (const auto& t : kGgmlTypes) {
    if (t.id == id) return &t;
  }
  return nullptr;
}

absl::Status ReadTensorInfo(GgufCursor& c, uint64_t index, GgufTensorInfo* info) {
  RS_ASSIGN_OR_RETURN(info->name, c.ReadString(absl::StrCat("name of tensor ", index)));
  const std::string what = absl::StrCat("tensor '", info->name, "'");
  RS_ASSIGN_OR_RETURN(const uint32_t n_dims, c.Read<uint32_t>(what));
  if (n_dims == 0 || n_dims > kMaxDims) {
    return c.Error(absl::StrCat(what, ": ", n_dims, " dimensions (1 to 4 allowed)"));
  }
  uint64_t elements = 1;
  info->shape.assign(n_dims, 0);
  for (uint32_t d = 0; d < n_dims; ++d) {
    RS_ASSIGN_OR_RETURN(const uint64_t ne, c.Read<uint64_t>(what));
    if (ne == 0 || ne > static_cast<uint64_t>(INT64_MAX) ||
        __builtin_mul_overflow(elements, ne, &elements) ||
        elements > static_cast<uint64_t>(INT64_MAX)) {
      return c.Error(absl::StrCat(what, ": invalid dimension ", ne));
    }
    info->shape[n_dims - 1 - d] = static_cast<int64_t>(ne);  // ne[0] is the innermost dim
  }
  RS_ASSIGN_OR_RETURN(info->ggml_type, c.Read<uint32_t>(what));
  RS_ASSIGN_OR_RETURN(info->offset, c.Read<uint64_t>(what));
  auto bytes = GgmlTypeBytes(info->ggml_type, elements);
  if (!bytes.ok()) return c.Error(absl::StrCat(what, ": ", bytes.status().message()));
  // GgmlTypeBytes accepted the type, so it is in the table.
  const uint32_t block_values = FindGgmlType(info->ggml_type)->block_values;
  if (static_cast<uint64_t>(info->shape.back()) % block_values != 0) {
    return c.Error(absl::StrCat(what, ": row length ", info->shape.back(),
                                " is not a multiple of the ", GgmlTypeName(info->ggml_type),
                                " block size"));
  }
  info->bytes = *bytes;
  info->supported = true;
  switch (info->ggml_type) {
    case kGgmlTypeF32:
      info->dtype = kernels::DType::kF32;
      break;
    case kGgmlTypeF16:
      info->dtype = kernels::DType::kF16;
      break;
    case kGgmlTypeBF16:
      info->dtype = kernels::DType::kBF16;
      break;
    case kGgmlTypeQ8_0:
      info->dtype = kernels::DType::kQ8_0;
      break;
    default:
      if (const std::optional<Packing> packing = PackingOfGgmlType(info->ggml_type)) {
        info->dtype = kernels::DType::kQ8_0;
        info->packing = *packing;
        break;
      }
      info->dtype = kernels::DType::kF32;
      info->supported = false;
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> AlignmentOf(const absl::flat_hash_map<std::string, GgufValue>& metadata,
                                     const GgufCursor& c) {
  auto it = metadata.find("general.alignment");
  if (it == metadata.end()) return kDefaultAlignment;
  const auto* v = std::get_if<uint64_t>(&it->second.value);
  if (v == nullptr || *v == 0 || (*v & (*v - 1)) != 0 || *v > (1U << 30)) {
    return c.Error("general.alignment must be an unsigned power of two");
  }
  return *v;
}

}  // namespace

std::string GgmlTypeName(uint32_t ggml_type) {
  const GgmlTypeTraits* t = FindGgmlType(ggml_type);
  return t != nullptr ? std::string(t->name) : absl::StrCat("type ", ggml_type);
}

absl::StatusOr<uint64_t> GgmlTypeBytes(uint32_t ggml_type, uint64_t num_elements) {
  const GgmlTypeTraits* t = FindGgmlType(ggml_type);
  if (t == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("unknown ggml type ", ggml_type));
  }
  if (num_elements % t->block_values != 0) {
    return absl::InvalidArgumentError(absl::StrCat(num_elements, " elements are not whole ",
                                                   t->name, " blocks of ", t->block_values));
  }
  uint64_t bytes = 0;
  if (__builtin_mul_overflow(num_elements / t->block_values, uint64_t{t->block_bytes}, &bytes)) {
    return absl::InvalidArgumentError("tensor byte size overflows");
  }
  return bytes;
}

absl::StatusOr<std::unique_ptr<GgufFile>> GgufFile::Open(const std::string& path) {
  RS_ASSIGN_OR_RETURN(auto mapping, MappedFile::Open(path));
  RS_ASSIGN_OR_RETURN(auto file, Parse(mapping->bytes(), path));
  file->mapping_ = std::move(mapping);
  return file;
}

absl::StatusOr<std::unique_ptr<GgufFile>> GgufFile::Parse(std::span<const uint8_t> bytes,
                                                          const std::string& name) {
  std::unique_ptr<GgufFile> file(new GgufFile());
  file->name_ = name;
  file->bytes_ = bytes;
  GgufCursor c(bytes, file->name_);
  RS_ASSIGN_OR_RETURN(const uint32_t magic, c.Read<uint32_t>("magic"));
  if (magic != kGgufMagic) return c.Error("not a GGUF file (bad magic)");
  RS_ASSIGN_OR_RETURN(file->version_, c.Read<uint32_t>("version"));
  if (file->version_ != 2 && file->version_ != 3) {
    return c.Error(absl::StrCat("unsupported version ", file->version_, " (2 and 3 are)"));
  }
  RS_ASSIGN_OR_RETURN(const uint64_t n_tensors, c.Read<uint64_t>("tensor count"));
  RS_ASSIGN_OR_RETURN(const uint64_t n_kv, c.Read<uint64_t>("metadata count"));
  // A key/value is at least a u64 key length, a u32 type and one byte of value.
  RS_RETURN_IF_ERROR(c.CheckCount(n_kv, 13, "metadata"));
  for (uint64_t i = 0; i < n_kv; ++i) {
    RS_ASSIGN_OR_RETURN(std::string key, c.ReadString(absl::StrCat("key of metadata ", i)));
    RS_ASSIGN_OR_RETURN(GgufValue value, ReadGgufValue(c, key));
    if (!file->metadata_.emplace(key, std::move(value)).second) {
      return c.Error(absl::StrCat("duplicate metadata key '", key, "'"));
    }
  }
  // A tensor info is at least a name length, n_dims, one dim, type and offset.
  RS_RETURN_IF_ERROR(c.CheckCount(n_tensors, 32, "tensor"));
  file->tensors_.resize(n_tensors);
  absl::flat_hash_map<std::string, size_t> seen;
  for (uint64_t i = 0; i < n_tensors; ++i) {
    RS_RETURN_IF_ERROR(ReadTensorInfo(c, i, &file->tensors_[i]));
    if (!seen.emplace(file->tensors_[i].name, i).second) {
      return c.Error(absl::StrCat("duplicate tensor '", file->tensors_[i].name, "'"));
    }
  }
  RS_ASSIGN_OR_RETURN(const uint64_t alignment, AlignmentOf(file->metadata_, c));
  const uint64_t data_start = (c.pos() + alignment - 1) / alignment * alignment;
  for (auto& t : file->tensors_) {
    if (t.offset % alignment != 0) {
      return c.Error(absl::StrCat("tensor '", t.name, "': offset ", t.offset,
                                  " is not a multiple of the alignment ", alignment));
    }
    const uint64_t size = bytes.size();
    if (data_start > size || t.offset > size - data_start ||
        t.bytes > size - data_start - t.offset) {
      return c.Error(absl::StrCat("tensor '", t.name, "': data [", t.offset, ", +", t.bytes,
                                  ") lies outside the file (", size, " bytes, data at ", data_start,
                                  ")"));
    }
    t.offset += data_start;
  }
  return file;
}

}  // namespace ringserve::model
