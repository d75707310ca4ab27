#include "worker/grammar/schema_keywords.h"

#include <algorithm>
#include <bitset>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "common/check.h"
#include "common/status_macros.h"
#include "worker/grammar/number_range.h"
#include "worker/grammar/regex.h"
#include "worker/grammar/string_formats.h"

namespace ringserve::grammar::schema_internal {
namespace {

bool IsKeyword(std::string_view key) {
  static constexpr std::string_view kKeywords[] = {"type",
                                                   "properties",
                                                   "required",
                                                   "additionalProperties",
                                                   "items",
                                                   "prefixItems",
                                                   "minItems",
                                                   "maxItems",
                                                   "minLength",
                                                   "maxLength",
                                                   "enum",
                                                   "const",
                                                   "anyOf",
                                                   "oneOf",
                                                   "allOf",
                                                   "$ref",
                                                   "minimum",
                                                   "maximum",
                                                   "exclusiveMinimum",
                                                   "exclusiveMaximum",
                                                   "multipleOf",
                                                   "format",
                                                   "pattern"};
  return std::find(std::begin(kKeywords), std::end(kKeywords), key) != std::end(kKeywords);
}

bool IsChoice(std::string_view key) { return key == "anyOf" || key == "oneOf" || key == "allOf"; }

absl::StatusOr<uint32_t> TypeNamed(const json& name, const std::string& pointer) {
  static constexpr std::pair<std::string_view, uint32_t> kNames[] = {
      {"object", kObjectType}, {"array", kArrayType},     {"string", kStringType},
      {"number", kNumberType}, {"integer", kIntegerType}, {"boolean", kBooleanType},
      {"null", kNullType}};
  if (!name.is_string()) {
    return SchemaError(pointer, "\"type\" must be a type name or an array of them");
  }
  const auto& text = name.get_ref<const std::string&>();
  for (const auto& [known, bit] : kNames) {
    if (text == known) return bit;
  }
  return SchemaError(pointer, absl::StrCat("unknown type \"", text, "\""));
}

absl::Status CheckBounds(const json& schema, const char* min_key, const char* max_key,
                         const std::string& pointer) {
  RS_ASSIGN_OR_RETURN(const int32_t min, Count(schema, min_key, 0, pointer));
  RS_ASSIGN_OR_RETURN(const int32_t max, Count(schema, max_key, kUnbounded, pointer));
  if (min > max) {
    return SchemaError(pointer, absl::StrCat("\"", min_key, "\" exceeds \"", max_key, "\""));
  }
  return absl::OkStatus();
}

// Pattern strings are written without escapes: the bytes JSON would escape (the quote,
// the backslash, control bytes) are left out of their automata.
std::bitset<256> UnescapedStringBytes() {
  std::bitset<256> bytes;
  bytes.set();
  for (size_t b = 0; b < 0x20; ++b) bytes.reset(b);
  bytes.reset('"');
  bytes.reset('\\');
  return bytes;
}

// The automaton of a format given as a regex (string_formats.h), compiled once per process;
// null for other names.
std::shared_ptr<const RegexDfa> FormatAutomaton(std::string_view name) {
  static const absl::flat_hash_map<std::string, std::shared_ptr<const RegexDfa>> kAutomata = [] {
    absl::flat_hash_map<std::string, std::shared_ptr<const RegexDfa>> automata;
    for (const char* format : {"ipv4", "ipv6", "hostname", "email", "duration"}) {
      absl::StatusOr<std::shared_ptr<const RegexDfa>> dfa =
          RegexDfa::Compile(*FormatRegex(format), UnescapedStringBytes());
      RS_CHECK(dfa.ok());
      automata.emplace(format, *std::move(dfa));
    }
    return automata;
  }();
  const auto it = kAutomata.find(std::string(name));
  return it == kAutomata.end() ? nullptr : it->second;
}

// A JSON number's exact decimal value times 10^shift, from its shortest text (what the
// schema's author wrote, for a double): rounded up or down to an integer, with whether
// that was exact; saturated at +-10^20.
using Int128 = __int128;

struct Scaled {
  Int128 value = 0;
  bool exact = true;
};

Scaled ScaleDecimal(const json& number, int32_t shift, bool round_up) {
  const std::string text = Dump(number);
  constexpr Int128 kSaturated = static_cast<Int128>(100'000'000'000'000'000) * 1000;  // 1e20
  bool negative = false;
  Int128 mantissa = 0;
  int32_t exponent = 0;  // value = mantissa * 10^exponent
  bool saturated = false;
  size_t i = 0;
  if (i < text.size() && text[i] == '-') {
    negative = true;
    ++i;
  }
  bool point = false;
  for (; i < text.size() && text[i] != 'e' && text[i] != 'E'; ++i) {
    if (text[i] == '.') {
      point = true;
      continue;
    }
    if (mantissa < kSaturated) {
      mantissa = mantissa * 10 + (text[i] - '0');
      if (point) --exponent;
    } else if (!point) {
      ++exponent;  // digits past 20 only scale the value
    }
  }
  if (i < text.size()) exponent += std::stoi(text.substr(i + 1));
  exponent += shift;
  Scaled out;
  for (; exponent > 0 && !saturated; --exponent) {
    mantissa *= 10;
    saturated = mantissa >= kSaturated;
  }
  if (saturated) {
    out.value = negative ? -kSaturated : kSaturated;
    out.exact = false;
    return out;
  }
  Int128 divisor = 1;
  for (; exponent < 0 && divisor < kSaturated * 10; ++exponent) divisor *= 10;
  if (exponent < 0) divisor = kSaturated * 10;  // below 10^-21 of a unit: rounds to 0 or 1
  Int128 quotient = mantissa / divisor;
  const bool remainder = mantissa % divisor != 0;
  out.exact = !remainder;
  // Round the signed value up (toward +inf) or down.
  if (remainder && (round_up != negative)) ++quotient;
  out.value = negative ? -quotient : quotient;
  return out;
}

}  // namespace

bool IsAnnotation(std::string_view key) {
  static constexpr std::string_view kAnnotations[] = {
      "title",    "description", "default",     "examples",   "$schema",  "$id",
      "$comment", "$defs",       "definitions", "deprecated", "readOnly", "writeOnly"};
  return std::find(std::begin(kAnnotations), std::end(kAnnotations), key) != std::end(kAnnotations);
}

std::string EscapePointer(std::string_view token) {
  std::string out;
  for (const char c : token) {
    if (c == '~') {
      out += "~0";
    } else if (c == '/') {
      out += "~1";
    } else {
      out += c;
    }
  }
  return out;
}

std::string UnescapePointer(std::string_view token) {
  std::string out;
  for (size_t i = 0; i < token.size(); ++i) {
    if (token[i] == '~' && i + 1 < token.size() && (token[i + 1] == '0' || token[i + 1] == '1')) {
      out += token[i + 1] == '0' ? '~' : '/';
      ++i;
    } else {
      out += token[i];
    }
  }
  return out;
}

absl::Status SchemaError(const std::string& pointer, std::string_view message) {
  return absl::InvalidArgumentError(
      absl::StrCat("schema ", pointer.empty() ? "(root)" : pointer, ": ", std::string(message)));
}

std::string Dump(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

const json* Find(const json& schema, const char* key) {
  const auto it = schema.find(key);
  return it == schema.end() ? nullptr : &*it;
}

uint32_t TypeOf(const json& value) {
  if (value.is_object()) return kObjectType;
  if (value.is_array()) return kArrayType;
  if (value.is_string()) return kStringType;
  if (value.is_boolean()) return kBooleanType;
  if (value.is_null()) return kNullType;
  if (value.is_number_integer()) return kNumberType | kIntegerType;
  return kNumberType;
}

absl::StatusOr<uint32_t> Types(const json& schema, const std::string& pointer) {
  const json* type = Find(schema, "type");
  if (type == nullptr) {
    uint32_t implied = 0;
    for (const char* key : {"properties", "required", "additionalProperties"}) {
      if (schema.contains(key)) implied |= kObjectType;
    }
    for (const char* key : {"items", "prefixItems", "minItems", "maxItems"}) {
      if (schema.contains(key)) implied |= kArrayType;
    }
    for (const char* key : {"minLength", "maxLength", "format", "pattern"}) {
      if (schema.contains(key)) implied |= kStringType;
    }
    for (const char* key :
         {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"}) {
      if (schema.contains(key)) implied |= kNumberType | kIntegerType;
    }
    return implied == 0 ? kAllTypes : implied;
  }
  if (!type->is_array()) return TypeNamed(*type, pointer);
  if (type->empty()) return SchemaError(pointer, "\"type\" must not be an empty array");
  uint32_t types = 0;
  for (const json& name : *type) {
    RS_ASSIGN_OR_RETURN(const uint32_t bit, TypeNamed(name, pointer));
    types |= bit;
  }
  return types;
}

absl::StatusOr<int32_t> Count(const json& schema, const char* key, int32_t fallback,
                              const std::string& pointer) {
  const json* value = Find(schema, key);
  if (value == nullptr) return fallback;
  if (value->is_number_unsigned()) {
    return static_cast<int32_t>(std::min<uint64_t>(value->get<uint64_t>(), kUnbounded));
  }
  if (value->is_number_integer() && value->get<int64_t>() >= 0) {
    return static_cast<int32_t>(std::min<int64_t>(value->get<int64_t>(), kUnbounded));
  }
  return SchemaError(pointer, absl::StrCat("\"", key, "\" must be a non-negative integer"));
}

absl::Status CheckKeywords(const json& schema, const std::string& pointer) {
  bool has_ref = false;
  int choices = 0;  // anyOf, oneOf, allOf
  for (const auto& [key, value] : schema.items()) {
    if (IsAnnotation(key)) continue;
    if (!IsKeyword(key)) {
      return SchemaError(pointer, absl::StrCat("unsupported keyword \"", key, "\""));
    }
    has_ref |= key == "$ref";
    choices += IsChoice(key) ? 1 : 0;
  }
  for (const auto& [key, value] : schema.items()) {
    if (IsAnnotation(key)) continue;
    if (has_ref && key != "$ref") {
      return SchemaError(pointer,
                         absl::StrCat("\"$ref\" alongside \"", key, "\" is not supported"));
    }
    if (choices > 0 && !IsChoice(key)) {
      return SchemaError(pointer, absl::StrCat("\"anyOf\"/\"oneOf\"/\"allOf\" alongside \"", key,
                                               "\" is not supported"));
    }
  }
  if (choices > 1) {
    return SchemaError(pointer, "only one of \"anyOf\", \"oneOf\" and \"allOf\" is supported");
  }
  const auto shape = [&](const char* key, bool ok, std::string_view what) {
    return !schema.contains(key) || ok
               ? absl::OkStatus()
               : SchemaError(pointer, absl::StrCat("\"", key, "\" must be ", std::string(what)));
  };
  const auto at = [&](const char* key) -> const json& { return schema.at(key); };
  RS_RETURN_IF_ERROR(shape("$ref", schema.contains("$ref") && at("$ref").is_string(), "a string"));
  for (const char* key : {"anyOf", "oneOf", "enum", "prefixItems"}) {
    RS_RETURN_IF_ERROR(shape(key, schema.contains(key) && at(key).is_array() && !at(key).empty(),
                             "a non-empty array"));
  }
  // One schema under "allOf" is that schema (Pydantic wraps a "$ref" so that a description
  // or a default can sit beside it); the intersection of several is not compiled.
  RS_RETURN_IF_ERROR(
      shape("allOf", schema.contains("allOf") && at("allOf").is_array() && at("allOf").size() == 1,
            "an array of one schema (an intersection of several is not supported)"));
  RS_RETURN_IF_ERROR(shape(
      "properties", schema.contains("properties") && at("properties").is_object(), "an object"));
  for (const char* key : {"additionalProperties", "items"}) {
    RS_RETURN_IF_ERROR(shape(
        key, schema.contains(key) && (at(key).is_object() || at(key).is_boolean()), "a schema"));
  }
  const bool required_ok = schema.contains("required") && at("required").is_array() &&
                           std::all_of(at("required").begin(), at("required").end(),
                                       [](const json& name) { return name.is_string(); });
  RS_RETURN_IF_ERROR(shape("required", required_ok, "an array of strings"));
  for (const char* key :
       {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"}) {
    RS_RETURN_IF_ERROR(shape(key, schema.contains(key) && at(key).is_number(), "a number"));
  }
  for (const char* key : {"format", "pattern"}) {
    RS_RETURN_IF_ERROR(shape(key, schema.contains(key) && at(key).is_string(), "a string"));
  }
  RS_RETURN_IF_ERROR(CheckBounds(schema, "minItems", "maxItems", pointer));
  return CheckBounds(schema, "minLength", "maxLength", pointer);
}

bool HasRange(const json& schema) {
  return schema.contains("minimum") || schema.contains("maximum") ||
         schema.contains("exclusiveMinimum") || schema.contains("exclusiveMaximum");
}

absl::StatusOr<Node> CompileString(const json& schema, const std::string& pointer) {
  Node node{.kind = NodeKind::kString};
  RS_ASSIGN_OR_RETURN(node.min, Count(schema, "minLength", 0, pointer));
  RS_ASSIGN_OR_RETURN(node.max, Count(schema, "maxLength", kUnbounded, pointer));
  const bool has_length = schema.contains("minLength") || schema.contains("maxLength");
  const json* format = Find(schema, "format");
  const json* pattern = Find(schema, "pattern");
  if (format != nullptr && pattern != nullptr) {
    return SchemaError(pointer, "\"pattern\" alongside \"format\" is not supported");
  }
  if (has_length && (format != nullptr || pattern != nullptr)) {
    return SchemaError(
        pointer, absl::StrCat("\"minLength\"/\"maxLength\" alongside \"",
                              format != nullptr ? "format" : "pattern", "\" is not supported"));
  }
  if (format != nullptr) {
    const std::string& name = format->get_ref<const std::string&>();
    if (const std::optional<StringFormat> known = StringFormatNamed(name)) {
      node.format = *known;
    } else if (std::shared_ptr<const RegexDfa> dfa = FormatAutomaton(name)) {
      node.pattern = std::move(dfa);
    } else {
      return SchemaError(pointer, absl::StrCat("\"format\": \"", name,
                                               "\" is not supported (uuid, date, time, "
                                               "date-time, duration, email, hostname, ipv4 "
                                               "and ipv6 are)"));
    }
  }
  if (pattern != nullptr) {
    absl::StatusOr<std::shared_ptr<const RegexDfa>> dfa =
        RegexDfa::Compile(pattern->get_ref<const std::string&>(), UnescapedStringBytes());
    if (!dfa.ok()) {
      return SchemaError(
          pointer, absl::StrCat("\"pattern\": ", std::string(dfa.status().message()),
                                dfa.status().message().find("no text") != std::string_view::npos
                                    ? " without quotes, backslashes or control "
                                      "characters"
                                    : ""));
    }
    node.pattern = *std::move(dfa);
  }
  return node;
}

absl::Status NumericRange(const json& schema, const std::string& pointer, int32_t fraction_digits,
                          Node* node) {
  constexpr Int128 kInt64Min = std::numeric_limits<int64_t>::min();
  constexpr Int128 kInt64Max = std::numeric_limits<int64_t>::max();
  constexpr Int128 kDecimalLimit = 999'999'999'999'999;  // (10^9 - 10^-6) in millionths
  const bool decimal = fraction_digits > 0;
  const Int128 low_limit = decimal ? -kDecimalLimit : kInt64Min;
  const Int128 high_limit = decimal ? kDecimalLimit : kInt64Max;
  Int128 low = low_limit;
  Int128 high = high_limit;
  for (const bool exclusive : {false, true}) {
    if (const json* v = Find(schema, exclusive ? "exclusiveMinimum" : "minimum")) {
      const Scaled bound = ScaleDecimal(*v, fraction_digits, /*round_up=*/true);
      low = std::max(low, bound.value + (exclusive && bound.exact ? 1 : 0));
    }
    if (const json* v = Find(schema, exclusive ? "exclusiveMaximum" : "maximum")) {
      const Scaled bound = ScaleDecimal(*v, fraction_digits, /*round_up=*/false);
      high = std::min(high, bound.value - (exclusive && bound.exact ? 1 : 0));
    }
  }
  const char* empty = decimal ? "no number lies within \"minimum\" and \"maximum\" (numbers with "
                                "a range are matched with at most 6 decimals, below 10^9 in "
                                "magnitude)"
                              : "no integer lies within \"minimum\" and \"maximum\" (ranges are "
                                "matched within 64-bit integers)";
  if (low > high) return SchemaError(pointer, empty);
  node->bounded = true;
  node->fraction_digits = fraction_digits;
  node->int_min = static_cast<int64_t>(low);
  node->int_max = static_cast<int64_t>(high);
  const json* multiple = Find(schema, "multipleOf");
  if (multiple == nullptr) return absl::OkStatus();
  const Scaled m = ScaleDecimal(*multiple, fraction_digits, /*round_up=*/true);
  if (m.value <= 0) return SchemaError(pointer, "\"multipleOf\" must be greater than 0");
  if (m.value > kInt64Max && !decimal) {
    return SchemaError(pointer, "\"multipleOf\" beyond 64-bit integers is not supported");
  }
  if (!m.exact && m.value <= kInt64Max) {
    return SchemaError(pointer, decimal ? "a \"multipleOf\" with more than 6 decimals is not "
                                          "supported on \"number\""
                                        : "a fractional \"multipleOf\" is not supported");
  }
  // A multiple wider than the range leaves only 0 in it, as kInt64Max does.
  node->multiple_of = static_cast<int64_t>(std::min(m.value, kInt64Max));
  if (!HoldsMultiple(node->int_min, node->int_max, node->multiple_of)) {
    return SchemaError(pointer, decimal ? empty
                                        : "no multiple of \"multipleOf\" lies within "
                                          "\"minimum\" and \"maximum\"");
  }
  return absl::OkStatus();
}

}  // namespace ringserve::grammar::schema_internal
