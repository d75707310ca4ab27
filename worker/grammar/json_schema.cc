// JSON Schema → Grammar nodes (the subset listed on Grammar::FromSchema).
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
#include "worker/grammar/grammar_nodes.h"
#include "worker/grammar/matcher.h"
#include "worker/grammar/number_range.h"
#include "worker/grammar/regex.h"
#include "worker/grammar/schema_keywords.h"

namespace ringserve::grammar {
namespace {

using json = nlohmann::json;

using Node = Grammar::Node;

// Sub-schemas nest at most this deep (refs included), so a hostile schema cannot exhaust
// the stack of the compiler.
constexpr int kMaxSchemaDepth = 128;

using schema_internal::CheckKeywords;
using schema_internal::CompileString;
using schema_internal::Count;
using schema_internal::Dump;
using schema_internal::EscapePointer;
using schema_internal::Find;
using schema_internal::HasRange;
using schema_internal::IsAnnotation;
using schema_internal::kAllTypes;
using schema_internal::kArrayType;
using schema_internal::kBooleanType;
using schema_internal::kIntegerType;
using schema_internal::kNullType;
using schema_internal::kNumberType;
using schema_internal::kObjectType;
using schema_internal::kStringType;
using schema_internal::NumericRange;
using schema_internal::SchemaError;
using schema_internal::TypeOf;
using schema_internal::Types;
using schema_internal::UnescapePointer;

}  // namespace

class JsonGrammarBuilder {
 public:
  explicit JsonGrammarBuilder(const json& document) : document_(document) {}

  absl::StatusOr<std::shared_ptr<const Grammar>> BuildSchema();
  std::shared_ptr<const Grammar> BuildAnyObject();
  std::shared_ptr<const Grammar> BuildText(std::shared_ptr<const RegexDfa> pattern);

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
  absl::StatusOr<std::shared_ptr<const Grammar>> Finish();

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
  if (schema.contains("anyOf") || schema.contains("oneOf") || schema.contains("allOf")) {
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
  const char* keyword = schema.contains("anyOf")   ? "anyOf"
                        : schema.contains("oneOf") ? "oneOf"
                                                   : "allOf";  // of one schema
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
    if (properties->size() > static_cast<size_t>(Grammar::kMaxProperties)) {
      return SchemaError(pointer,
                         absl::StrCat("more than ", Grammar::kMaxProperties, " \"properties\""));
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
      if (node.properties.size() == static_cast<size_t>(Grammar::kMaxProperties)) {
        return SchemaError(pointer,
                           absl::StrCat("more than ", Grammar::kMaxProperties, " properties"));
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

absl::StatusOr<std::shared_ptr<const Grammar>> JsonGrammarBuilder::Finish() {
  std::vector<uint8_t> marks(nodes_.size(), 0);
  for (size_t i = 0; i < nodes_.size(); ++i) {
    marks.resize(nodes_.size(), 0);
    RS_RETURN_IF_ERROR(Expand(static_cast<int32_t>(i), marks));
  }
  auto grammar = std::make_shared<Grammar>();
  grammar->nodes_ = std::move(nodes_);
  return grammar;
}

absl::StatusOr<std::shared_ptr<const Grammar>> JsonGrammarBuilder::BuildSchema() {
  const int32_t root = Add(Node{}, "");
  RS_ASSIGN_OR_RETURN(const int32_t compiled, Compile(document_, "", 0));
  nodes_[root].members = {compiled};
  return Finish();
}

std::shared_ptr<const Grammar> JsonGrammarBuilder::BuildAnyObject() {
  const int32_t root = Add(Node{}, "");
  nodes_[root].members = {nodes_[Any()].members[0]};  // Any()'s first member: any object
  auto grammar = Finish();
  RS_CHECK(grammar.ok());
  return *std::move(grammar);
}

std::shared_ptr<const Grammar> JsonGrammarBuilder::BuildText(
    std::shared_ptr<const RegexDfa> pattern) {
  Add(Node{.kind = NodeKind::kText, .pattern = std::move(pattern)}, "");
  auto grammar = Finish();
  RS_CHECK(grammar.ok());
  return *std::move(grammar);
}

Grammar::Grammar() = default;
Grammar::~Grammar() = default;

std::shared_ptr<const Grammar> Grammar::AnyObject() {
  static const std::shared_ptr<const Grammar> kGrammar =
      JsonGrammarBuilder(json()).BuildAnyObject();
  return kGrammar;
}

absl::StatusOr<std::shared_ptr<const Grammar>> Grammar::FromSchema(std::string_view schema) {
  const json document = json::parse(schema.begin(), schema.end(), nullptr,
                                    /*allow_exceptions=*/false);
  if (document.is_discarded()) {
    return absl::InvalidArgumentError("schema: not valid JSON");
  }
  return JsonGrammarBuilder(document).BuildSchema();
}

absl::StatusOr<std::shared_ptr<const Grammar>> Grammar::FromRegex(std::string_view regex) {
  RS_ASSIGN_OR_RETURN(std::shared_ptr<const RegexDfa> dfa,
                      RegexDfa::Compile(regex, std::bitset<256>().set()));
  return JsonGrammarBuilder(json()).BuildText(std::move(dfa));
}

}  // namespace ringserve::grammar
