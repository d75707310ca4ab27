// The leaves of the JSON Schema compiler (json_schema.cc): which keywords a schema may use
// and in what shape, schema pointers for error messages, the types a schema allows, and the
// string and numeric keywords compiled into a node's bounds. Private to worker/grammar.
#ifndef RINGSERVE_WORKER_GRAMMAR_SCHEMA_KEYWORDS_H_
#define RINGSERVE_WORKER_GRAMMAR_SCHEMA_KEYWORDS_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "worker/grammar/grammar_nodes.h"

namespace ringserve::grammar::schema_internal {

using json = nlohmann::json;
using Node = Grammar::Node;

// The JSON types a value may have, as bits.
enum TypeBits : uint32_t {
  kObjectType = 1,
  kArrayType = 2,
  kStringType = 4,
  kNumberType = 8,
  kIntegerType = 16,
  kBooleanType = 32,
  kNullType = 64,
  kAllTypes = 127,
};

// Keywords that only describe ("title", "description", ...) and change nothing.
bool IsAnnotation(std::string_view key);

// A JSON pointer's reference token escaped (~0, ~1) and back.
std::string EscapePointer(std::string_view token);
std::string UnescapePointer(std::string_view token);

// INVALID_ARGUMENT naming where in the schema (a JSON pointer; empty: the root) and why.
absl::Status SchemaError(const std::string& pointer, std::string_view message);

// Compact JSON text, as the model must spell the value.
std::string Dump(const json& value);

// schema[key], or null when the key is absent.
const json* Find(const json& schema, const char* key);

// The type bits of a JSON value (an integer literal is both an integer and a number).
uint32_t TypeOf(const json& value);

// The types a value of `schema` may have: "type", else what its keywords imply, else any.
absl::StatusOr<uint32_t> Types(const json& schema, const std::string& pointer);

// A non-negative integer keyword, clamped to kUnbounded; `fallback` when absent.
absl::StatusOr<int32_t> Count(const json& schema, const char* key, int32_t fallback,
                              const std::string& pointer);

// Keywords ringserve cannot honour are errors (a silently ignored "pattern" would produce
// output the user's validator rejects); so are keyword values of the wrong shape.
absl::Status CheckKeywords(const json& schema, const std::string& pointer);

// The schema bounds a number (minimum, maximum, or their exclusive forms).
bool HasRange(const json& schema);

// A string node: a length range, a format, or a pattern (one of the three).
absl::StatusOr<Node> CompileString(const json& schema, const std::string& pointer);

// "minimum", "maximum", their exclusive forms and "multipleOf" as a bounded node's range,
// in units of 10^-fraction_digits (number_range.h): an integer's (0) within int64, a
// number's (kDecimalFractionDigits) below 10^9 in magnitude. Bounds are the decimals their
// JSON text spells; a bound beyond the limits is the limit.
absl::Status NumericRange(const json& schema, const std::string& pointer, int32_t fraction_digits,
                          Node* node);

}  // namespace ringserve::grammar::schema_internal

#endif  // RINGSERVE_WORKER_GRAMMAR_SCHEMA_KEYWORDS_H_
