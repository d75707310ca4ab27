#include "common/openai/json_fields.h"

#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"

namespace ringserve::openai {
namespace {

const char* TypeName(const Json& value) { return value.type_name(); }

}  // namespace

absl::Status FieldError(absl::string_view field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", what));
}

absl::StatusOr<Json> ParseBody(absl::string_view body) {
  Json parsed = Json::parse(body.begin(), body.end(), /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) {
    return absl::InvalidArgumentError("the request body is not valid JSON");
  }
  if (!parsed.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the request body must be a JSON object, not ", TypeName(parsed)));
  }
  return parsed;
}

const Json* JsonObject::Find(absl::string_view key) const {
  const auto it = object_.find(std::string(key));
  if (it == object_.end() || it->is_null()) return nullptr;
  return &*it;
}

std::string JsonObject::Name(absl::string_view key) const {
  return path_.empty() ? std::string(key) : absl::StrCat(path_, ".", key);
}

absl::StatusOr<std::optional<double>> JsonObject::Number(absl::string_view key) const {
  const Json* value = Find(key);
  if (value == nullptr) return std::nullopt;
  if (!value->is_number()) {
    return FieldError(Name(key), absl::StrCat("must be a number, not ", TypeName(*value)));
  }
  return value->get<double>();
}

absl::StatusOr<int64_t> WholeNumber(const Json& value, absl::string_view field, int64_t min,
                                    int64_t max) {
  const auto out_of_range = [&] {
    return FieldError(field, absl::StrCat("must be a whole number in [", min, ", ", max, "]"));
  };
  if (value.is_number_integer()) {
    if (value.is_number_unsigned() && value.get<uint64_t>() > static_cast<uint64_t>(max)) {
      return out_of_range();
    }
    const auto n = value.get<int64_t>();
    if (n < min || n > max) return out_of_range();
    return n;
  }
  if (value.is_number_float()) {
    const auto d = value.get<double>();
    if (std::trunc(d) != d || d < static_cast<double>(min) || d > static_cast<double>(max)) {
      return out_of_range();
    }
    return static_cast<int64_t>(d);
  }
  return FieldError(field, absl::StrCat("must be a whole number, not ", TypeName(value)));
}

absl::StatusOr<std::optional<int64_t>> JsonObject::Integer(absl::string_view key, int64_t min,
                                                           int64_t max) const {
  const Json* value = Find(key);
  if (value == nullptr) return std::nullopt;
  absl::StatusOr<int64_t> n = WholeNumber(*value, Name(key), min, max);
  if (!n.ok()) return n.status();
  return *n;
}

absl::StatusOr<std::optional<bool>> JsonObject::Bool(absl::string_view key) const {
  const Json* value = Find(key);
  if (value == nullptr) return std::nullopt;
  if (!value->is_boolean()) {
    return FieldError(Name(key), absl::StrCat("must be true or false, not ", TypeName(*value)));
  }
  return value->get<bool>();
}

absl::StatusOr<std::optional<std::string>> JsonObject::String(absl::string_view key) const {
  const Json* value = Find(key);
  if (value == nullptr) return std::nullopt;
  if (!value->is_string()) {
    return FieldError(Name(key), absl::StrCat("must be a string, not ", TypeName(*value)));
  }
  return value->get<std::string>();
}

absl::StatusOr<std::vector<std::string>> JsonObject::Strings(absl::string_view key) const {
  const Json* value = Find(key);
  if (value == nullptr) return std::vector<std::string>();
  if (value->is_string()) return std::vector<std::string>{value->get<std::string>()};
  if (!value->is_array()) {
    return FieldError(
        Name(key), absl::StrCat("must be a string or an array of strings, not ", TypeName(*value)));
  }
  std::vector<std::string> strings;
  for (size_t i = 0; i < value->size(); ++i) {
    if (!(*value)[i].is_string()) {
      return FieldError(absl::StrCat(Name(key), "[", i, "]"), "must be a string");
    }
    strings.push_back((*value)[i].get<std::string>());
  }
  return strings;
}

absl::StatusOr<std::vector<int64_t>> JsonObject::Integers(absl::string_view key, int64_t min,
                                                          int64_t max) const {
  const Json* value = Find(key);
  if (value == nullptr) return std::vector<int64_t>();
  if (!value->is_array()) {
    return FieldError(Name(key),
                      absl::StrCat("must be an array of whole numbers, not ", TypeName(*value)));
  }
  std::vector<int64_t> numbers;
  numbers.reserve(value->size());
  for (size_t i = 0; i < value->size(); ++i) {
    absl::StatusOr<int64_t> n =
        WholeNumber((*value)[i], absl::StrCat(Name(key), "[", i, "]"), min, max);
    if (!n.ok()) return n.status();
    numbers.push_back(*n);
  }
  return numbers;
}

absl::StatusOr<const Json*> JsonObject::Object(absl::string_view key) const {
  const Json* value = Find(key);
  if (value != nullptr && !value->is_object()) {
    return FieldError(Name(key), absl::StrCat("must be an object, not ", TypeName(*value)));
  }
  return value;
}

absl::StatusOr<const Json*> JsonObject::Array(absl::string_view key) const {
  const Json* value = Find(key);
  if (value != nullptr && !value->is_array()) {
    return FieldError(Name(key), absl::StrCat("must be an array, not ", TypeName(*value)));
  }
  return value;
}

}  // namespace ringserve::openai
