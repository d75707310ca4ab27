#include "worker/model/json_fields.h"

#include <climits>
#include <cstdint>

#include "absl/strings/str_cat.h"

namespace ringserve::model {

using json = nlohmann::json;

absl::Status JsonFieldError(const std::string& name, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(name, ": ", what));
}

absl::StatusOr<int> JsonDim(const json& j, const char* key, const std::string& name,
                            std::optional<int> fallback) {
  if ((!j.contains(key) || j[key].is_null()) && fallback.has_value()) return *fallback;
  if (!j.contains(key) || !j[key].is_number_unsigned() || j[key].get<uint64_t>() == 0 ||
      j[key].get<uint64_t>() > INT_MAX) {
    return JsonFieldError(name, absl::StrCat("'", key, "' must be a positive integer"));
  }
  return j[key].get<int>();
}

absl::StatusOr<double> JsonNumber(const json& j, const char* key, const std::string& name,
                                  double fallback) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  if (!j[key].is_number()) {
    return JsonFieldError(name, absl::StrCat("'", key, "' must be a number"));
  }
  return j[key].get<double>();
}

absl::StatusOr<bool> JsonBool(const json& j, const char* key, const std::string& name,
                              bool fallback) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  if (!j[key].is_boolean()) {
    return JsonFieldError(name, absl::StrCat("'", key, "' must be a bool"));
  }
  return j[key].get<bool>();
}

}  // namespace ringserve::model
