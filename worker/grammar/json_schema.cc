// JSON Schema → JsonGrammar nodes (the subset listed on JsonGrammar::FromSchema).
//
// Choices about what the header leaves open:
// - keywords of a type that is not in play ("type": "string" with "minItems") are checked
//   for their own shape and otherwise ignored, as JSON Schema itself does;
// - with "enum" or "const", the value is one of those texts and "type" filters them; any
//   other keyword beside them (a bound the texts would go unchecked against) is
//   INVALID_ARGUMENT;
// - a required property missing from "properties" becomes a listed property with the
//   additionalProperties schema when extra keys are allowed (else INVALID_ARGUMENT);
// - "items": false means no elements past "prefixItems" (none at all without it).
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
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/check.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"
#include "worker/grammar/json_grammar_nodes.h"
#include "worker/grammar/json_matcher.h"
#include "worker/grammar/number_range.h"
#include "worker/grammar/regex.h"

namespace ringserve::grammar {
namespace {

using json = nlohmann::json;
using Node = JsonGrammar::Node;

// Sub-schemas nest at most this deep (refs included), so a hostile schema cannot exhaust
// the stack of the compiler.
constexpr int kMaxSchemaDepth = 128;

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

bool IsAnnotation(std::string_view key) {
  static constexpr std::string_view kAnnotations[] = {
      "title",    "description", "default",     "examples",   "$schema",  "$id",
      "$comment", "$defs",       "definitions", "deprecated", "readOnly", "writeOnly"};
  return std::find(std::begin(kAnnotations), std::end(kAnnotations), key) != std::end(kAnnotations);
}

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

// Compact JSON text, as the model must spell the value.
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

// The types a value of `schema` may have: "type", else what its keywords imply, else any.
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

// A non-negative integer keyword, clamped to kUnbounded; `fallback` when absent.
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

absl::Status CheckBounds(const json& schema, const char* min_key, const char* max_key,
                         const std::string& pointer) {
  RS_ASSIGN_OR_RETURN(const int32_t min, Count(schema, min_key, 0, pointer));
  RS_ASSIGN_OR_RETURN(const int32_t max, Count(schema, max_key, kUnbounded, pointer));
  if (min > max) {
    return SchemaError(pointer, absl::StrCat("\"", min_key, "\" exceeds \"", max_key, "\""));
  }
  return absl::OkStatus();
}

// Keywords ringserve cannot honour are errors (a silently ignored "pattern" would produce
// output the user's validator rejects); so are keyword values of the wrong shape.
absl::Status CheckKeywords(const json& schema, const std::string& pointer) {
  bool has_ref = false;
  bool has_choice = false;
  for (const auto& [key, value] : schema.items()) {
    if (IsAnnotation(key)) continue;
    if (!IsKeyword(key)) {
      return SchemaError(pointer, absl::StrCat("unsupported keyword \"", key, "\""));
    }
    has_ref |= key == "$ref";
    has_choice |= key == "anyOf" || key == "oneOf";
  }
  for (const auto& [key, value] : schema.items()) {
    if (IsAnnotation(key)) continue;
    if (has_ref && key != "$ref") {
      return SchemaError(pointer,
                         absl::StrCat("\"$ref\" alongside \"", key, "\" is not supported"));
    }
    if (has_choice && key != "anyOf" && key != "oneOf") {
      return SchemaError(
          pointer, absl::StrCat("\"anyOf\"/\"oneOf\" alongside \"", key, "\" is not supported"));
    }
  }
  if (schema.contains("anyOf") && schema.contains("oneOf")) {
    return SchemaError(pointer, "\"anyOf\" alongside \"oneOf\" is not supported");
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

// A string node: a length range, a format, or a pattern (one of the three).
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

// "minimum", "maximum", their exclusive forms and "multipleOf" as a bounded node's range,
// in units of 10^-fraction_digits (number_range.h): an integer's (0) within int64, a
// number's (kDecimalFractionDigits) below 10^9 in magnitude. Bounds are the decimals their
// JSON text spells; a bound beyond the limits is the limit.
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

}  // namespace

class JsonGrammarBuilder {
 public:
  explicit JsonGrammarBuilder(const json& document) : document_(document) {}

  absl::StatusOr<std::shared_ptr<const JsonGrammar>> BuildSchema();
  std::shared_ptr<const JsonGrammar> BuildAnyObject();
  std::shared_ptr<const JsonGrammar> BuildText(std::shared_ptr<const RegexDfa> pattern);

 private:
  int32_t Add(Node node, std::string where);
  int32_t Any();
  int32_t Literals(std::vector<std::string> texts);
  absl::StatusOr<int32_t> Compile(const json& schema, const std::string& pointer, int depth);
  absl::StatusOr<int32_t> CompileRef(const std::string& ref, const std::string& pointer, int depth);
  absl::StatusOr<int32_t> CompileChoice(const json& schema, const std::string& pointer, int depth);
  absl::StatusOr<int32_t> CompileEnum(const json& schema, const std::string& pointer,
                                      uint32_t types);
  absl::StatusOr<int32_t> CompileTypes(const json& schema, const std::string& pointer,
                                       uint32_t types, int depth);
  absl::StatusOr<int32_t> CompileObject(const json& schema, const std::string& pointer, int depth);
  absl::StatusOr<int32_t> CompileArray(const json& schema, const std::string& pointer, int depth);
  absl::Status Expand(int32_t index, std::vector<uint8_t>& marks);
  absl::StatusOr<std::shared_ptr<const JsonGrammar>> Finish();

  const json& document_;
  std::vector<Node> nodes_;
  std::vector<std::string> where_;                          // per node: its schema pointer
  absl::flat_hash_map<std::string, int32_t> refs_;          // resolved "$ref" → its node
  absl::flat_hash_map<std::string, int32_t> literal_sets_;  // texts, '\0'-joined → node
  int32_t any_ = -1;
};

int32_t JsonGrammarBuilder::Add(Node node, std::string where) {
  switch (node.kind) {
    case NodeKind::kObject:
      node.first_bytes.set('{');
      break;
    case NodeKind::kArray:
      node.first_bytes.set('[');
      break;
    case NodeKind::kString:
      node.first_bytes.set('"');
      break;
    case NodeKind::kNumber:
    case NodeKind::kInteger:
      if (!node.bounded || node.int_min < 0) node.first_bytes.set('-');
      for (char c = '0'; c <= '9'; ++c) node.first_bytes.set(static_cast<uint8_t>(c));
      break;
    case NodeKind::kLiterals:
      for (const std::string& text : node.literals) {
        node.first_bytes.set(static_cast<uint8_t>(text[0]));
      }
      break;
    case NodeKind::kText:
      node.first_bytes = node.pattern->FirstBytes();
      break;
    case NodeKind::kChoice:
      break;  // filled by Expand
  }
  const auto index = static_cast<int32_t>(nodes_.size());
  if (node.kind != NodeKind::kChoice) node.alternatives = {index};
  nodes_.push_back(std::move(node));
  where_.push_back(std::move(where));
  return index;
}

int32_t JsonGrammarBuilder::Any() {
  if (any_ >= 0) return any_;
  any_ = Add(Node{}, "(any value)");
  const int32_t object = Add(Node{.kind = NodeKind::kObject, .additional = any_}, "");
  const int32_t array = Add(Node{.kind = NodeKind::kArray, .items = any_}, "");
  const int32_t string = Add(Node{.kind = NodeKind::kString}, "");
  const int32_t number = Add(Node{.kind = NodeKind::kNumber}, "");
  const int32_t literals = Literals({"true", "false", "null"});
  nodes_[any_].members = {object, array, string, number, literals};
  return any_;
}

int32_t JsonGrammarBuilder::Literals(std::vector<std::string> texts) {
  std::sort(texts.begin(), texts.end());
  texts.erase(std::unique(texts.begin(), texts.end()), texts.end());
  std::string key = absl::StrJoin(texts, std::string(1, '\0'));
  const auto it = literal_sets_.find(key);
  if (it != literal_sets_.end()) return it->second;
  const int32_t node = Add(Node{.kind = NodeKind::kLiterals, .literals = std::move(texts)}, "");
  literal_sets_.emplace(std::move(key), node);
  return node;
}

absl::StatusOr<int32_t> JsonGrammarBuilder::Compile(const json& schema, const std::string& pointer,
                                                    int depth) {
  if (depth > kMaxSchemaDepth) {
    return SchemaError(pointer, absl::StrCat("nested deeper than ", kMaxSchemaDepth, " levels"));
  }
  if (schema.is_boolean()) {
    if (schema.get<bool>()) return Any();
    return SchemaError(pointer, "false: no text could match");
  }
  if (!schema.is_object()) return SchemaError(pointer, "a schema must be an object or a boolean");
  RS_RETURN_IF_ERROR(CheckKeywords(schema, pointer));
  if (const json* ref = Find(schema, "$ref")) {
    return CompileRef(ref->get<std::string>(), pointer, depth);
  }
  if (schema.contains("anyOf") || schema.contains("oneOf")) {
    return CompileChoice(schema, pointer, depth);
  }
  RS_ASSIGN_OR_RETURN(const uint32_t types, Types(schema, pointer));
  if (schema.contains("enum") || schema.contains("const")) {
    // The values are matched as exact texts; a bound beside them would go unchecked.
    for (const auto& [key, value] : schema.items()) {
      if (key != "enum" && key != "const" && key != "type" && !IsAnnotation(key)) {
        return SchemaError(
            pointer, absl::StrCat("\"", key, "\" alongside \"enum\"/\"const\" is not supported"));
      }
    }
    return CompileEnum(schema, pointer, types);
  }
  return CompileTypes(schema, pointer, types, depth);
}

// Each referenced schema is compiled once; its node exists (members still empty) while it
// compiles, so a recursive reference just points back at it.
absl::StatusOr<int32_t> JsonGrammarBuilder::CompileRef(const std::string& ref,
                                                       const std::string& pointer, int depth) {
  if (ref == "#") return 0;  // nodes_[0] is the root
  const json* target = nullptr;
  std::string key;
  for (const char* section : {"$defs", "definitions"}) {
    const std::string prefix = absl::StrCat("#/", section, "/");
    if (ref.rfind(prefix, 0) != 0 || ref.find('/', prefix.size()) != std::string::npos) {
      continue;
    }
    const std::string name = UnescapePointer(std::string_view(ref).substr(prefix.size()));
    const json* defs = document_.is_object() ? Find(document_, section) : nullptr;
    if (defs != nullptr && defs->is_object()) target = Find(*defs, name.c_str());
    key = absl::StrCat("/", section, "/", EscapePointer(name));
  }
  if (target == nullptr) {
    return SchemaError(pointer, absl::StrCat("unresolved \"$ref\" \"", ref,
                                             "\" (supported: \"#\", \"#/$defs/<name>\", "
                                             "\"#/definitions/<name>\")"));
  }
  const auto it = refs_.find(key);
  if (it != refs_.end()) return it->second;
  const int32_t node = Add(Node{}, key);
  refs_.emplace(key, node);
  RS_ASSIGN_OR_RETURN(const int32_t compiled, Compile(*target, key, depth + 1));
  nodes_[node].members = {compiled};
  return node;
}

absl::StatusOr<int32_t> JsonGrammarBuilder::CompileChoice(const json& schema,
                                                          const std::string& pointer, int depth) {
  const char* keyword = schema.contains("anyOf") ? "anyOf" : "oneOf";
  std::vector<int32_t> members;
  int index = 0;
  for (const json& member : schema.at(keyword)) {
    RS_ASSIGN_OR_RETURN(
        const int32_t node,
        Compile(member, absl::StrCat(pointer, "/", keyword, "/", index++), depth + 1));
    members.push_back(node);
  }
  return Add(Node{.members = std::move(members)}, pointer);
}

absl::StatusOr<int32_t> JsonGrammarBuilder::CompileEnum(const json& schema,
                                                        const std::string& pointer,
                                                        uint32_t types) {
  std::vector<std::string> texts;
  const json* values = Find(schema, "enum");
  const json* constant = Find(schema, "const");
  if (values != nullptr) {
    for (const json& value : *values) {
      if ((TypeOf(value) & types) != 0) texts.push_back(Dump(value));
    }
    if (constant != nullptr) {
      std::erase_if(texts, [&](const std::string& t) { return t != Dump(*constant); });
    }
  } else if ((TypeOf(*constant) & types) != 0) {
    texts.push_back(Dump(*constant));
  }
  if (texts.empty()) {
    return SchemaError(pointer, "no value of \"enum\"/\"const\" fits the schema's \"type\"");
  }
  return Literals(std::move(texts));
}

absl::StatusOr<int32_t> JsonGrammarBuilder::CompileTypes(const json& schema,
                                                         const std::string& pointer, uint32_t types,
                                                         int depth) {
  if (types == kAllTypes && !schema.contains("type")) return Any();
  std::vector<int32_t> members;
  if ((types & kObjectType) != 0) {
    RS_ASSIGN_OR_RETURN(const int32_t node, CompileObject(schema, pointer, depth));
    members.push_back(node);
  }
  if ((types & kArrayType) != 0) {
    RS_ASSIGN_OR_RETURN(const int32_t node, CompileArray(schema, pointer, depth));
    members.push_back(node);
  }
  if ((types & kStringType) != 0) {
    RS_ASSIGN_OR_RETURN(Node node, CompileString(schema, pointer));
    members.push_back(Add(std::move(node), pointer));
  }
  if ((types & (kNumberType | kIntegerType)) != 0) {
    // Every integer is a number: one alternative rather than two that match alike.
    const NodeKind kind = (types & kNumberType) != 0 ? NodeKind::kNumber : NodeKind::kInteger;
    Node node{.kind = kind};
    if (HasRange(schema) || schema.contains("multipleOf")) {
      RS_RETURN_IF_ERROR(NumericRange(
          schema, pointer, kind == NodeKind::kNumber ? kDecimalFractionDigits : 0, &node));
    }
    members.push_back(Add(std::move(node), pointer));
  }
  std::vector<std::string> literals;
  if ((types & kBooleanType) != 0) literals.insert(literals.end(), {"true", "false"});
  if ((types & kNullType) != 0) literals.emplace_back("null");
  if (!literals.empty()) members.push_back(Literals(std::move(literals)));
  if (members.size() == 1) return members[0];
  return Add(Node{.members = std::move(members)}, pointer);
}

absl::StatusOr<int32_t> JsonGrammarBuilder::CompileObject(const json& schema,
                                                          const std::string& pointer, int depth) {
  Node node{.kind = NodeKind::kObject};
  if (const json* properties = Find(schema, "properties")) {
    if (properties->size() > static_cast<size_t>(JsonGrammar::kMaxProperties)) {
      return SchemaError(
          pointer, absl::StrCat("more than ", JsonGrammar::kMaxProperties, " \"properties\""));
    }
    for (const auto& [name, value_schema] : properties->items()) {
      RS_ASSIGN_OR_RETURN(
          const int32_t value,
          Compile(value_schema, absl::StrCat(pointer, "/properties/", EscapePointer(name)),
                  depth + 1));
      node.properties.push_back({.key = Dump(json(name)), .value = value});
    }
  }
  if (const json* additional = Find(schema, "additionalProperties")) {
    if (additional->is_object()) {
      RS_ASSIGN_OR_RETURN(node.additional,
                          Compile(*additional, pointer + "/additionalProperties", depth + 1));
    } else if (additional->get<bool>()) {
      node.additional = Any();
    }
  }
  const json* required = Find(schema, "required");
  if (required == nullptr) return Add(std::move(node), pointer);
  for (const json& name : *required) {
    const std::string key = Dump(name);
    auto it = std::find_if(node.properties.begin(), node.properties.end(),
                           [&](const Node::Property& p) { return p.key == key; });
    if (it == node.properties.end()) {
      if (node.additional < 0) {
        return SchemaError(pointer, absl::StrCat("required property ", key,
                                                 " is not in \"properties\" and "
                                                 "additionalProperties is false"));
      }
      if (node.properties.size() == static_cast<size_t>(JsonGrammar::kMaxProperties)) {
        return SchemaError(pointer,
                           absl::StrCat("more than ", JsonGrammar::kMaxProperties, " properties"));
      }
      node.properties.push_back({.key = key, .value = node.additional});
      it = node.properties.end() - 1;
    }
    node.required |= uint64_t{1} << (it - node.properties.begin());
  }
  return Add(std::move(node), pointer);
}

absl::StatusOr<int32_t> JsonGrammarBuilder::CompileArray(const json& schema,
                                                         const std::string& pointer, int depth) {
  Node node{.kind = NodeKind::kArray};
  RS_ASSIGN_OR_RETURN(node.min, Count(schema, "minItems", 0, pointer));
  RS_ASSIGN_OR_RETURN(node.max, Count(schema, "maxItems", kUnbounded, pointer));
  if (const json* prefix = Find(schema, "prefixItems")) {
    for (const json& item : *prefix) {
      RS_ASSIGN_OR_RETURN(
          const int32_t element,
          Compile(item, absl::StrCat(pointer, "/prefixItems/", node.prefix_items.size()),
                  depth + 1));
      node.prefix_items.push_back(element);
    }
  }
  const auto num_prefix = static_cast<int32_t>(node.prefix_items.size());
  const json* items = Find(schema, "items");
  if (items != nullptr && items->is_object()) {
    RS_ASSIGN_OR_RETURN(node.items, Compile(*items, pointer + "/items", depth + 1));
  } else {
    node.items = Any();
    if (items != nullptr && !items->get<bool>()) {
      if (node.min > num_prefix) {
        return SchemaError(pointer,
                           absl::StrCat("\"minItems\" > ", num_prefix, " but \"items\" is false"));
      }
      node.max = std::min(node.max, num_prefix);
    }
  }
  return Add(std::move(node), pointer);
}

// Flattens a choice into its concrete alternatives. A choice reached again while it is
// being flattened is a cycle of refs/anyOf that consumes no text: matching it would never
// get to a byte.
absl::Status JsonGrammarBuilder::Expand(int32_t index, std::vector<uint8_t>& marks) {
  enum : uint8_t { kNew, kActive, kDone };
  if (nodes_[index].kind != NodeKind::kChoice || marks[index] == kDone) return absl::OkStatus();
  if (marks[index] == kActive) {
    return SchemaError(where_[index], "\"$ref\"/\"anyOf\" cycle that consumes no text");
  }
  marks[index] = kActive;
  std::vector<int32_t> alternatives;
  std::vector<std::string> literals;
  const std::vector<int32_t> members = nodes_[index].members;  // Literals() may grow nodes_
  for (const int32_t member : members) {
    RS_RETURN_IF_ERROR(Expand(member, marks));
    for (const int32_t alternative : nodes_[member].alternatives) {
      const Node& node = nodes_[alternative];
      if (node.kind == NodeKind::kLiterals) {
        literals.insert(literals.end(), node.literals.begin(), node.literals.end());
      } else if (std::find(alternatives.begin(), alternatives.end(), alternative) ==
                 alternatives.end()) {
        alternatives.push_back(alternative);
      }
    }
  }
  if (!literals.empty()) alternatives.push_back(Literals(std::move(literals)));
  marks.resize(nodes_.size(), kNew);
  Node& node = nodes_[index];
  for (const int32_t alternative : alternatives) {
    node.first_bytes |= nodes_[alternative].first_bytes;
  }
  node.alternatives = std::move(alternatives);
  marks[index] = kDone;
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const JsonGrammar>> JsonGrammarBuilder::Finish() {
  std::vector<uint8_t> marks(nodes_.size(), 0);
  for (size_t i = 0; i < nodes_.size(); ++i) {
    marks.resize(nodes_.size(), 0);
    RS_RETURN_IF_ERROR(Expand(static_cast<int32_t>(i), marks));
  }
  auto grammar = std::make_shared<JsonGrammar>();
  grammar->nodes_ = std::move(nodes_);
  return grammar;
}

absl::StatusOr<std::shared_ptr<const JsonGrammar>> JsonGrammarBuilder::BuildSchema() {
  const int32_t root = Add(Node{}, "");
  RS_ASSIGN_OR_RETURN(const int32_t compiled, Compile(document_, "", 0));
  nodes_[root].members = {compiled};
  return Finish();
}

std::shared_ptr<const JsonGrammar> JsonGrammarBuilder::BuildAnyObject() {
  const int32_t root = Add(Node{}, "");
  nodes_[root].members = {nodes_[Any()].members[0]};  // Any()'s first member: any object
  auto grammar = Finish();
  RS_CHECK(grammar.ok());
  return *std::move(grammar);
}

std::shared_ptr<const JsonGrammar> JsonGrammarBuilder::BuildText(
    std::shared_ptr<const RegexDfa> pattern) {
  Add(Node{.kind = NodeKind::kText, .pattern = std::move(pattern)}, "");
  auto grammar = Finish();
  RS_CHECK(grammar.ok());
  return *std::move(grammar);
}

JsonGrammar::JsonGrammar() = default;
JsonGrammar::~JsonGrammar() = default;

std::shared_ptr<const JsonGrammar> JsonGrammar::AnyObject() {
  static const std::shared_ptr<const JsonGrammar> kGrammar =
      JsonGrammarBuilder(json()).BuildAnyObject();
  return kGrammar;
}

absl::StatusOr<std::shared_ptr<const JsonGrammar>> JsonGrammar::FromSchema(
    std::string_view schema) {
  const json document = json::parse(schema.begin(), schema.end(), nullptr,
                                    /*allow_exceptions=*/false);
  if (document.is_discarded()) {
    return absl::InvalidArgumentError("schema: not valid JSON");
  }
  return JsonGrammarBuilder(document).BuildSchema();
}

absl::StatusOr<std::shared_ptr<const JsonGrammar>> JsonGrammar::FromRegex(std::string_view regex) {
  RS_ASSIGN_OR_RETURN(std::shared_ptr<const RegexDfa> dfa,
                      RegexDfa::Compile(regex, std::bitset<256>().set()));
  return JsonGrammarBuilder(json()).BuildText(std::move(dfa));
}

}  // namespace ringserve::grammar
