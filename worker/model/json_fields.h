// Typed fields of the JSON objects checkpoints carry (config.json and its rope settings),
// each error naming the file and the key.
#ifndef RINGSERVE_WORKER_MODEL_JSON_FIELDS_H_
#define RINGSERVE_WORKER_MODEL_JSON_FIELDS_H_

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace ringserve::model {

// INVALID_ARGUMENT "name: what".
absl::Status JsonFieldError(const std::string& name, absl::string_view what);

// A positive int field; `fallback` when absent or null (nullopt = required).
absl::StatusOr<int> JsonDim(const nlohmann::json& j, const char* key, const std::string& name,
                            std::optional<int> fallback = std::nullopt);

// A number field; `fallback` when absent or null.
absl::StatusOr<double> JsonNumber(const nlohmann::json& j, const char* key, const std::string& name,
                                  double fallback);

// A boolean field; `fallback` when absent or null.
absl::StatusOr<bool> JsonBool(const nlohmann::json& j, const char* key, const std::string& name,
                              bool fallback);

}  // namespace ringserve::model

#endif  // RINGSERVE_WORKER_MODEL_JSON_FIELDS_H_
