// Typed fields of a request's JSON body, each error naming the field as the client wrote it
// ("messages[2].content", "stream_options.include_usage").
#ifndef RINGSERVE_COMMON_OPENAI_JSON_FIELDS_H_
#define RINGSERVE_COMMON_OPENAI_JSON_FIELDS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace ringserve::openai {

using Json = nlohmann::json;

// INVALID_ARGUMENT "<field>: <what>".
absl::Status FieldError(absl::string_view field, absl::string_view what);

// The body parsed; INVALID_ARGUMENT when it is not a JSON object.
absl::StatusOr<Json> ParseBody(absl::string_view body);

// One JSON object of a request. A field that is absent or null reads as unset (nullopt,
// null, empty), as OpenAI's clients send null for parameters they leave to the server.
// Owner: the caller; `object` must outlive it.
class JsonObject {
 public:
  // `path`: how errors name this object ("" at the top, "messages[2]" below).
  JsonObject(const Json& object, std::string path) : object_(object), path_(std::move(path)) {}

  // The field, or null when absent or null.
  const Json* Find(absl::string_view key) const;
  // The field's name in errors: path.key.
  std::string Name(absl::string_view key) const;

  absl::StatusOr<std::optional<double>> Number(absl::string_view key) const;
  // A whole number (1 and 1.0 alike) in [min, max].
  absl::StatusOr<std::optional<int64_t>> Integer(absl::string_view key, int64_t min,
                                                 int64_t max) const;
  absl::StatusOr<std::optional<bool>> Bool(absl::string_view key) const;
  absl::StatusOr<std::optional<std::string>> String(absl::string_view key) const;
  // A string or an array of strings (OpenAI's "stop").
  absl::StatusOr<std::vector<std::string>> Strings(absl::string_view key) const;
  // An array of whole numbers in [min, max].
  absl::StatusOr<std::vector<int64_t>> Integers(absl::string_view key, int64_t min,
                                                int64_t max) const;
  // The field when it is an object (null when unset); INVALID_ARGUMENT when it is another type.
  absl::StatusOr<const Json*> Object(absl::string_view key) const;
  absl::StatusOr<const Json*> Array(absl::string_view key) const;

 private:
  const Json& object_;
  const std::string path_;
};

// `value` as a whole number in [min, max], or INVALID_ARGUMENT naming `field`.
absl::StatusOr<int64_t> WholeNumber(const Json& value, absl::string_view field, int64_t min,
                                    int64_t max);

}  // namespace ringserve::openai

#endif  // RINGSERVE_COMMON_OPENAI_JSON_FIELDS_H_
