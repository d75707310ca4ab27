// GGUF metadata: decoding the key/value section's typed values (scalars widened, arrays
// by element type) and GgufFile's typed getters over them, so the loaders see one error
// naming the key whatever is wrong with a value.
#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/status_macros.h"
#include "worker/model/gguf_cursor.h"
#include "worker/model/gguf_reader.h"

namespace ringserve::model {
namespace {

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
absl::StatusOr<Scalar> ReadAs(GgufCursor& c, const std::string& what) {
  RS_ASSIGN_OR_RETURN(const T v, c.Read<T>(what));
  return Scalar(static_cast<Wide>(v));
}

absl::StatusOr<Scalar> ReadScalar(GgufCursor& c, GgufType type, const std::string& key) {
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

absl::StatusOr<GgufValue> ReadArray(GgufCursor& c, const std::string& key) {
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

}  // namespace

absl::StatusOr<GgufValue> ReadGgufValue(GgufCursor& c, const std::string& key) {
  RS_ASSIGN_OR_RETURN(const uint32_t raw_type,
                      c.Read<uint32_t>(absl::StrCat("type of '", key, "'")));
  if (!IsKnownType(raw_type)) {
    return c.Error(absl::StrCat("'", key, "': unknown value type ", raw_type));
  }
  const auto type = static_cast<GgufType>(raw_type);
  if (type == GgufType::kArray) return ReadArray(c, key);
  RS_ASSIGN_OR_RETURN(Scalar s, ReadScalar(c, type, key));
  GgufValue value{type, GgufType::kUint32, {}};
  std::visit([&](auto&& v) { value.value = std::forward<decltype(v)>(v); }, std::move(s));
  return value;
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
  if (v == nullptr) {
    return absl::NotFoundError(absl::StrCat(name_, ": no metadata key '", key, "'"));
  }
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
