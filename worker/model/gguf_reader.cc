// GGUF parser. Format: ggml docs/gguf.md. Every count and length read from the file is
// checked against the bytes that remain BEFORE anything is allocated, so a hostile header
// (2^60 tensors, a 2^40-byte string) is an error, never a bad_alloc.
#include "worker/model/gguf_reader.h"

#include <array>
#include <cstring>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"

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

// Reads little-endian values from the image; every read is bounds-checked and errors
// name the file and what was being read.
class Cursor {
 public:
  Cursor(std::span<const uint8_t> bytes, const std::string& name) : bytes_(bytes), name_(name) {}

  size_t pos() const { return pos_; }
  uint64_t remaining() const { return bytes_.size() - pos_; }

  absl::Status Error(absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat(name_, ": ", what));
  }

  template <typename T>
  absl::StatusOr<T> Read(absl::string_view what) {
    if (remaining() < sizeof(T)) {
      return Error(absl::StrCat("truncated at byte ", pos_, " reading ", what));
    }
    T value;
    std::memcpy(&value, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return value;
  }

  absl::StatusOr<std::string> ReadString(absl::string_view what) {
    RS_ASSIGN_OR_RETURN(const uint64_t length, Read<uint64_t>(what));
    if (length > remaining()) {
      return Error(absl::StrCat(what, ": string length ", length, " exceeds the ", remaining(),
                                " bytes left in the file"));
    }
    std::string s(reinterpret_cast<const char*>(bytes_.data() + pos_), length);
    pos_ += length;
    return s;
  }

  // Checks that `count` items of at least `min_item_bytes` each can still fit.
  absl::Status CheckCount(uint64_t count, uint64_t min_item_bytes, absl::string_view what) const {
    if (min_item_bytes > 0 && count > remaining() / min_item_bytes) {
      return Error(absl::StrCat(what, " count ", count, " cannot fit in the ", remaining(),
                                " bytes left in the file"));
    }
    return absl::OkStatus();
  }

 private:
  std::span<const uint8_t> bytes_;
  const std::string& name_;
  size_t pos_ = 0;
};

// Smallest encoding of one value of `type`, for count checks (a string is its u64 length).
uint64_t MinValueBytes(GgufType type) {
  switch (type) {
    case GgufType::kUint8:
    case GgufType::kInt8:
    case GgufType::kBool:
      return 1;
    case GgufType::kUint16:
    case GgufType::kInt16:
      return 2;
    case GgufType::kUint32:
    case GgufType::kInt32:
    case GgufType::kFloat32:
      return 4;
    case GgufType::kString:
    case GgufType::kUint64:
    case GgufType::kInt64:
    case GgufType::kFloat64:
      return 8;
    case GgufType::kArray:
      return 12;  // element type + count
  }
  return 1;
}

bool IsKnownType(uint32_t t) { return t <= static_cast<uint32_t>(GgufType::kFloat64); }

// One scalar, widened: signed -> int64, unsigned -> uint64, floats -> double.
using Scalar = std::variant<int64_t, uint64_t, double, bool, std::string>;

template <typename T, typename Wide>
absl::StatusOr<Scalar> ReadAs(Cursor& c, const std::string& what) {
  RS_ASSIGN_OR_RETURN(const T v, c.Read<T>(what));
  return Scalar(static_cast<Wide>(v));
}

absl::StatusOr<Scalar> ReadScalar(Cursor& c, GgufType type, const std::string& key) {
  const std::string what = absl::StrCat("value of '", key, "'");
  switch (type) {
    case GgufType::kUint8:
      return ReadAs<uint8_t, uint64_t>(c, what);
    case GgufType::kInt8:
      return ReadAs<int8_t, int64_t>(c, what);
    case GgufType::kUint16:
      return ReadAs<uint16_t, uint64_t>(c, what);
    case GgufType::kInt16:
      return ReadAs<int16_t, int64_t>(c, what);
    case GgufType::kUint32:
      return ReadAs<uint32_t, uint64_t>(c, what);
    case GgufType::kInt32:
      return ReadAs<int32_t, int64_t>(c, what);
    case GgufType::kUint64:
      return ReadAs<uint64_t, uint64_t>(c, what);
    case GgufType::kInt64:
      return ReadAs<int64_t, int64_t>(c, what);
    case GgufType::kFloat32:
      return ReadAs<float, double>(c, what);
    case GgufType::kFloat64:
      return ReadAs<double, double>(c, what);
    case GgufType::kBool: {
      RS_ASSIGN_OR_RETURN(const uint8_t v, c.Read<uint8_t>(what));
      if (v > 1) return c.Error(absl::StrCat(what, ": bool byte is ", v));
      return Scalar(v == 1);
    }
    case GgufType::kString: {
      RS_ASSIGN_OR_RETURN(std::string v, c.ReadString(what));
      return Scalar(std::move(v));
    }
    case GgufType::kArray:
      break;
  }
  return c.Error(absl::StrCat("'", key, "': unexpected value type"));
}

absl::StatusOr<GgufValue> ReadArray(Cursor& c, const std::string& key) {
  RS_ASSIGN_OR_RETURN(const uint32_t raw_type, c.Read<uint32_t>(key));
  if (!IsKnownType(raw_type)) {
    return c.Error(absl::StrCat("'", key, "': unknown array element type ", raw_type));
  }
  const auto elem = static_cast<GgufType>(raw_type);
  if (elem == GgufType::kArray) {
    return c.Error(absl::StrCat("'", key, "': nested arrays are not supported"));
  }
  RS_ASSIGN_OR_RETURN(const uint64_t count, c.Read<uint64_t>(key));
  RS_RETURN_IF_ERROR(c.CheckCount(count, MinValueBytes(elem), absl::StrCat("'", key, "' array")));
  GgufValue value{GgufType::kArray, elem, {}};
  std::vector<int64_t> ints;
  std::vector<double> floats;
  std::vector<std::string> strings;
  for (uint64_t i = 0; i < count; ++i) {
    RS_ASSIGN_OR_RETURN(Scalar s, ReadScalar(c, elem, key));
    if (auto* v = std::get_if<std::string>(&s)) {
      strings.push_back(std::move(*v));
    } else if (auto* d = std::get_if<double>(&s)) {
      floats.push_back(*d);
    } else if (auto* b = std::get_if<bool>(&s)) {
      ints.push_back(*b ? 1 : 0);
    } else if (auto* u = std::get_if<uint64_t>(&s)) {
      ints.push_back(static_cast<int64_t>(*u));
    } else {
      ints.push_back(std::get<int64_t>(s));
    }
  }
  if (elem == GgufType::kString) {
    value.value = std::move(strings);
  } else if (elem == GgufType::kFloat32 || elem == GgufType::kFloat64) {
    value.value = std::move(floats);
  } else {
    value.value = std::move(ints);
  }
  return value;
}

absl::StatusOr<GgufValue> ReadValue(Cursor& c, const std::string& key) {
  RS_ASSIGN_OR_RETURN(const uint32_t raw_type,
                      c.Read<uint32_t>(absl::StrCat("type of '", key, "'")));
  if (!IsKnownType(raw_type)) {
    return c.Error(absl::StrCat("'", key, "': unknown value type ", raw_type));
  }
  const auto type = static_cast<GgufType>(raw_type);
  if (type == GgufType::kArray) return ReadArray(c, key);
  RS_ASSIGN_OR_RETURN(Scalar s, ReadScalar(c, type, key));
  GgufValue value{type, GgufType::kUint32, {}};
  std::visit([&](auto&& v) { value.value = std::move(v); }, std::move(s));
  return value;
}

absl::Status ReadTensorInfo(Cursor& c, uint64_t index, GgufTensorInfo* info) {
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
  if (info->ggml_type != 0 && FindGgmlType(info->ggml_type)->block_values > 1 &&
      static_cast<uint64_t>(info->shape.back()) % FindGgmlType(info->ggml_type)->block_values) {
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
      info->dtype = kernels::DType::kF32;
      info->supported = false;
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> AlignmentOf(const absl::flat_hash_map<std::string, GgufValue>& metadata,
                                     const Cursor& c) {
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
  if (t == nullptr)
    return absl::InvalidArgumentError(absl::StrCat("unknown ggml type ", ggml_type));
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
  Cursor c(bytes, file->name_);
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
    RS_ASSIGN_OR_RETURN(GgufValue value, ReadValue(c, key));
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

const char* GgufTypeName(GgufType type) {
  static constexpr std::array<const char*, 13> kNames = {"u8",  "i8",  "u16",  "i16",    "u32",
                                                         "i32", "f32", "bool", "string", "array",
                                                         "u64", "i64", "f64"};
  const auto i = static_cast<uint32_t>(type);
  return i < kNames.size() ? kNames[i] : "unknown";
}

const GgufValue* GgufFile::Find(const std::string& key) const {
  auto it = metadata_.find(key);
  return it == metadata_.end() ? nullptr : &it->second;
}

absl::StatusOr<const GgufValue*> GgufFile::FindOrError(const std::string& key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr)
    return absl::NotFoundError(absl::StrCat(name_, ": no metadata key '", key, "'"));
  return v;
}

absl::Status GgufFile::TypeError(const std::string& key, const GgufValue& v,
                                 absl::string_view expected) const {
  std::string actual(GgufTypeName(v.type));
  if (v.type == GgufType::kArray) absl::StrAppend(&actual, " of ", GgufTypeName(v.array_type));
  return absl::InvalidArgumentError(
      absl::StrCat(name_, ": metadata key '", key, "' is ", actual, ", expected ", expected));
}

absl::StatusOr<int64_t> GgufFile::GetInt(const std::string& key) const {
  RS_ASSIGN_OR_RETURN(const GgufValue* v, FindOrError(key));
  if (const auto* i = std::get_if<int64_t>(&v->value)) return *i;
  if (const auto* u = std::get_if<uint64_t>(&v->value)) {
    if (*u > static_cast<uint64_t>(INT64_MAX)) return TypeError(key, *v, "an int64 value");
    return static_cast<int64_t>(*u);
  }
  return TypeError(key, *v, "an integer");
}

absl::StatusOr<double> GgufFile::GetFloat(const std::string& key) const {
  RS_ASSIGN_OR_RETURN(const GgufValue* v, FindOrError(key));
  if (const auto* d = std::get_if<double>(&v->value)) return *d;
  if (const auto* i = std::get_if<int64_t>(&v->value)) return static_cast<double>(*i);
  if (const auto* u = std::get_if<uint64_t>(&v->value)) return static_cast<double>(*u);
  return TypeError(key, *v, "a number");
}

absl::StatusOr<std::string> GgufFile::GetString(const std::string& key) const {
  RS_ASSIGN_OR_RETURN(const GgufValue* v, FindOrError(key));
  if (const auto* s = std::get_if<std::string>(&v->value)) return *s;
  return TypeError(key, *v, "a string");
}

absl::StatusOr<bool> GgufFile::GetBool(const std::string& key) const {
  RS_ASSIGN_OR_RETURN(const GgufValue* v, FindOrError(key));
  if (const auto* b = std::get_if<bool>(&v->value)) return *b;
  return TypeError(key, *v, "a bool");
}

absl::StatusOr<std::vector<std::string>> GgufFile::GetStringArray(const std::string& key) const {
  RS_ASSIGN_OR_RETURN(const GgufValue* v, FindOrError(key));
  if (const auto* a = std::get_if<std::vector<std::string>>(&v->value)) return *a;
  return TypeError(key, *v, "an array of strings");
}

absl::StatusOr<std::vector<double>> GgufFile::GetFloatArray(const std::string& key) const {
  RS_ASSIGN_OR_RETURN(const GgufValue* v, FindOrError(key));
  if (const auto* a = std::get_if<std::vector<double>>(&v->value)) return *a;
  if (const auto* a = std::get_if<std::vector<int64_t>>(&v->value)) {
    return std::vector<double>(a->begin(), a->end());
  }
  return TypeError(key, *v, "an array of numbers");
}

absl::StatusOr<std::vector<int64_t>> GgufFile::GetIntArray(const std::string& key) const {
  RS_ASSIGN_OR_RETURN(const GgufValue* v, FindOrError(key));
  if (const auto* a = std::get_if<std::vector<int64_t>>(&v->value)) return *a;
  return TypeError(key, *v, "an array of integers");
}

}  // namespace ringserve::model
