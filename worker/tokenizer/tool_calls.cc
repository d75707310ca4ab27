#include "worker/tokenizer/tool_calls.h"

#include <algorithm>
#include <random>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"
#include "worker/tokenizer/partial_tag.h"

namespace ringserve::tokenizer {
namespace {

using Json = nlohmann::ordered_json;  // keeps the order keys were written in

constexpr std::string_view kCallOpen = "<tool_call>";
constexpr std::string_view kCallClose = "</tool_call>";
constexpr std::string_view kSpace = " \t\n\r";

bool IsLlama(ChatFormat format) {
  return format == ChatFormat::kLlama31 || format == ChatFormat::kLlama32;
}

bool IsMistral(ChatFormat format) { return format == ChatFormat::kMistral; }

std::string Dump(const Json& value, int indent = -1) {
  return value.dump(indent, ' ', false, Json::error_handler_t::replace);
}

// JSON as the chat templates' tojson writes it: ", " and ": " between items, no newlines.
void AppendTemplateJson(const Json& value, std::string& out) {
  if (value.is_object()) {
    out += '{';
    bool first = true;
    for (const auto& [key, member] : value.items()) {
      if (!first) out += ", ";
      first = false;
      absl::StrAppend(&out, Dump(Json(key)), ": ");
      AppendTemplateJson(member, out);
    }
    out += '}';
  } else if (value.is_array()) {
    out += '[';
    for (size_t i = 0; i < value.size(); ++i) {
      if (i > 0) out += ", ";
      AppendTemplateJson(value[i], out);
    }
    out += ']';
  } else {
    out += Dump(value);
  }
}

std::string TemplateJson(const Json& value) {
  std::string out;
  AppendTemplateJson(value, out);
  return out;
}

Json ParametersOf(const ChatTool& tool) {
  if (tool.parameters.empty()) return Json{{"type", "object"}};
  return Json::parse(tool.parameters, nullptr, false);
}

Json FunctionOf(const ChatTool& tool) {
  Json function = {{"name", tool.name}};
  if (!tool.description.empty()) function["description"] = tool.description;
  function["parameters"] = ParametersOf(tool);
  return Json{{"type", "function"}, {"function", std::move(function)}};
}

constexpr std::string_view kIdAlphabet =
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
constexpr size_t kMistralIdLength = 9;

std::string_view RightTrimmed(std::string_view s) {
  const size_t end = s.find_last_not_of(kSpace);
  return end == std::string_view::npos ? std::string_view() : s.substr(0, end + 1);
}

// The call `call` (a parsed JSON object) stands for, if it is one: a name among
// `tool_names` and an object of arguments (or its text as a string, as some fine-tunes write
// it).
std::optional<ToolCall> CallOf(const Json& call, ChatFormat format,
                               std::span<const std::string> tool_names) {
  if (!call.is_object()) return std::nullopt;
  const auto name = call.find("name");
  if (name == call.end() || !name->is_string()) return std::nullopt;
  const std::string& tool = name->get_ref<const std::string&>();
  if (std::find(tool_names.begin(), tool_names.end(), tool) == tool_names.end()) {
    return std::nullopt;
  }
  auto arguments = call.find(ToolArgumentsKey(format));
  if (arguments == call.end()) arguments = call.find("arguments");  // Llama 3.x writes either
  if (arguments == call.end()) return std::nullopt;
  Json object = *arguments;
  if (object.is_string()) {
    object = Json::parse(object.get_ref<const std::string&>(), nullptr, false);
  }
  if (!object.is_object()) return std::nullopt;
  return ToolCall{.id = NewCallId(format), .name = tool, .arguments = Dump(object)};
}

// A call's arguments, which must be a JSON object; INVALID_ARGUMENT naming `field` if not.
absl::StatusOr<Json> ArgumentsObject(const ToolCall& call, std::string_view field) {
  Json arguments = Json::parse(call.arguments, nullptr, false);
  if (!arguments.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(std::string(field), ".arguments: not a JSON object"));
  }
  return arguments;
}

}  // namespace

bool HasToolCalls(ChatFormat format) {
  return format == ChatFormat::kChatMl || IsLlama(format) || IsMistral(format);
}

bool OffersToolCalls(const Tokenizer& tokenizer, ChatFormat format) {
  return HasToolCalls(format) && CanRender(tokenizer, format) &&
         (!IsMistral(format) || MistralToolMarkersOf(tokenizer).has_value());
}

std::optional<MistralToolMarkers> MistralToolMarkersOf(const Tokenizer& tokenizer) {
  const std::optional<int32_t> ids[] = {
      ControlId(tokenizer, "[AVAILABLE_TOOLS]"), ControlId(tokenizer, "[/AVAILABLE_TOOLS]"),
      ControlId(tokenizer, "[TOOL_CALLS]"), ControlId(tokenizer, "[TOOL_RESULTS]"),
      ControlId(tokenizer, "[/TOOL_RESULTS]")};
  for (const std::optional<int32_t>& id : ids) {
    if (!id.has_value()) return std::nullopt;
  }
  MistralToolMarkers markers{.available_tools = *ids[0],
                             .available_tools_end = *ids[1],
                             .tool_calls = *ids[2],
                             .tool_results = *ids[3],
                             .tool_results_end = *ids[4],
                             .tool_content = ControlId(tokenizer, "[TOOL_CONTENT]"),
                             .args = ControlId(tokenizer, std::string(kArgsMarker)),
                             .call_id = ControlId(tokenizer, std::string(kCallIdMarker))};
  // v13's files name [CALL_ID] too; only their templates tell them from v11's.
  const std::string& chat_template = tokenizer.vocab().chat_template;
  markers.v13 = markers.args.has_value() && chat_template.find(kArgsMarker) != std::string::npos &&
                chat_template.find(kCallIdMarker) == std::string::npos;
  if (markers.v13) markers.call_id.reset();
  return markers;
}

std::vector<int32_t> NamedCallMarkerIds(const MistralToolMarkers& markers) {
  if (!markers.args.has_value()) return {};
  std::vector<int32_t> ids = {markers.tool_calls, *markers.args};
  if (markers.call_id.has_value()) ids.push_back(*markers.call_id);
  return ids;
}

std::string NewCallId(ChatFormat format) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  const bool mistral = IsMistral(format);
  std::string id = mistral ? "" : "call_";
  for (size_t i = 0; i < (mistral ? kMistralIdLength : 24); ++i) {
    id += kIdAlphabet[rng() % kIdAlphabet.size()];
  }
  return id;
}

absl::Status CheckCallId(ChatFormat format, std::string_view id, std::string_view field) {
  if (!IsMistral(format)) return absl::OkStatus();
  if (id.size() == kMistralIdLength && id.find_first_not_of(kIdAlphabet) == std::string::npos) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      absl::StrCat(std::string(field),
                   ": the mistral chat format writes call ids of exactly 9 letters and digits "
                   "(as its replies' calls have)"));
}

absl::Status CheckTools(std::span<const ChatTool> tools) {
  if (tools.size() > kMaxTools) {
    return absl::InvalidArgumentError(
        absl::StrCat("chat.tools: ", tools.size(), " tools is over the limit of ", kMaxTools));
  }
  absl::flat_hash_set<std::string_view> names;
  for (size_t i = 0; i < tools.size(); ++i) {
    const ChatTool& tool = tools[i];
    const std::string field = absl::StrCat("chat.tools[", i, "]");
    const bool well_formed = !tool.name.empty() && tool.name.size() <= kMaxToolNameBytes &&
                             std::all_of(tool.name.begin(), tool.name.end(), [](char c) {
                               return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                                      (c >= '0' && c <= '9') || c == '_' || c == '-';
                             });
    if (!well_formed) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ".name: must be 1 to ", kMaxToolNameBytes, " of [A-Za-z0-9_-]"));
    }
    if (!names.insert(tool.name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ".name: '", tool.name, "' is named twice"));
    }
    if (!ParametersOf(tool).is_object()) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ".parameters: not a JSON object (a JSON Schema)"));
    }
  }
  return absl::OkStatus();
}

std::string ToolsText(ChatFormat format, std::span<const ChatTool> tools) {
  std::string out;
  if (IsMistral(format)) {
    Json functions = Json::array();
    for (const ChatTool& tool : tools) functions.push_back(FunctionOf(tool));
    return TemplateJson(functions);
  }
  if (IsLlama(format)) {
    out =
        "You can call the functions below. To call one, reply with nothing but a JSON object "
        "of the form {\"name\": function name, \"parameters\": object of argument names and "
        "values}, using literal values rather than variables.\n\n";
    for (const ChatTool& tool : tools) absl::StrAppend(&out, Dump(FunctionOf(tool), 4), "\n\n");
    return out;
  }
  out =
      "# Tools\n\nThese functions can be called to help answer. Each is described by a JSON "
      "object, one per line, between <tools> and </tools>:\n<tools>";
  for (const ChatTool& tool : tools) absl::StrAppend(&out, "\n", TemplateJson(FunctionOf(tool)));
  absl::StrAppend(&out,
                  "\n</tools>\n\nTo call functions, write each call as a JSON object with the "
                  "function's name and its arguments, between <tool_call> and </tool_call> on "
                  "lines of their own:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": "
                  "<args-json-object>}\n</tool_call>");
  return out;
}

absl::StatusOr<std::string> ToolCallsText(ChatFormat format, std::span<const ToolCall> calls,
                                          bool after_content, std::string_view field) {
  if (IsLlama(format) && calls.size() > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(std::string(field), ": the ", std::string(ChatFormatName(format)),
                     " chat format writes one call a turn; give each call a turn of its own"));
  }
  std::string out;
  Json mistral_calls = Json::array();
  for (size_t i = 0; i < calls.size(); ++i) {
    RS_ASSIGN_OR_RETURN(const Json arguments,
                        ArgumentsObject(calls[i], absl::StrCat(std::string(field), "[", i, "]")));
    if (IsMistral(format)) {
      RS_RETURN_IF_ERROR(
          CheckCallId(format, calls[i].id, absl::StrCat(std::string(field), "[", i, "].id")));
      mistral_calls.push_back(
          Json{{"name", calls[i].name}, {"arguments", arguments}, {"id", calls[i].id}});
      continue;
    }
    const std::string object =
        absl::StrCat("{\"name\": ", Dump(Json(calls[i].name)), ", \"",
                     std::string(ToolArgumentsKey(format)), "\": ", TemplateJson(arguments), "}");
    if (IsLlama(format)) return object;
    absl::StrAppend(&out, i > 0 || after_content ? "\n" : "", std::string(kCallOpen), "\n", object,
                    "\n", std::string(kCallClose));
  }
  return IsMistral(format) ? TemplateJson(mistral_calls) : out;
}

absl::StatusOr<std::string> ToolArgumentsText(const ToolCall& call, std::string_view field) {
  RS_ASSIGN_OR_RETURN(const Json arguments, ArgumentsObject(call, field));
  return TemplateJson(arguments);
}

std::string MistralToolResult(std::string_view content, std::string_view call_id) {
  Json value = Json::parse(content, nullptr, false);
  if (value.is_discarded()) value = std::string(content);
  return TemplateJson(Json{{"content", std::move(value)}, {"call_id", std::string(call_id)}});
}

std::string ToolCallsGbnf(ChatFormat format, std::span<const ChatTool> tools, std::string_view only,
                          bool one_call, bool after_thought) {
  std::string body = "body ::=";
  bool first = true;
  for (size_t i = 0; i < tools.size(); ++i) {
    if (!only.empty() && tools[i].name != only) continue;
    // Names are of [A-Za-z0-9_-]: nothing in them needs escaping.
    absl::StrAppend(&body, first ? " " : "\n  | ", "\"{\\\"name\\\": \\\"", tools[i].name,
                    "\\\", \\\"", std::string(ToolArgumentsKey(format)), "\\\": \" ",
                    ToolArgumentsRule(i), " \"}\"");
    first = false;
  }
  if (IsLlama(format)) return absl::StrCat("root ::= body\n", body, "\n");
  if (IsMistral(format)) {  // the array after [TOOL_CALLS], its first piece " ["
    return absl::StrCat(one_call ? "root ::= \" \"? \"[\" body \"]\"\n"
                                 : "root ::= \" \"? \"[\" body (\", \" body)* \"]\"\n",
                        body, "\n");
  }
  return absl::StrCat("root ::= ", after_thought ? "\"</think>\" [ \\t\\r\\n]{0,8} " : "",
                      one_call ? "call\n" : "call (\"\\n\" call)*\n",
                      "call ::= \"<tool_call>\\n\" body \"\\n</tool_call>\"\n", body, "\n");
}

std::string_view ToolCallOpening(ChatFormat format) {
  if (IsMistral(format)) return "";
  return IsLlama(format) ? "{" : kCallOpen;
}

bool ToolCallOpensReply(ChatFormat format) { return IsLlama(format) || IsMistral(format); }

std::string ToolArgumentsRule(size_t index) { return absl::StrCat("args-", index); }

std::string ToolArgumentsGbnf(std::span<const ChatTool> tools, std::string_view only) {
  std::string root = "root ::=";
  bool first = true;
  for (size_t i = 0; i < tools.size(); ++i) {
    if (!only.empty() && tools[i].name != only) continue;
    absl::StrAppend(&root, first ? " " : " | ", ToolArgumentsRule(i));
    first = false;
  }
  return absl::StrCat(root, "\n");
}

std::string_view ToolArgumentsKey(ChatFormat format) {
  return IsLlama(format) ? "parameters" : "arguments";
}

std::optional<int32_t> ToolCallStopId(const Tokenizer& tokenizer, ChatFormat format) {
  if (!IsLlama(format)) return std::nullopt;
  const std::optional<int32_t> eom = ControlId(tokenizer, "<|eom_id|>");
  if (!eom.has_value() || tokenizer.IsEndOfGeneration(*eom)) return std::nullopt;
  return eom;
}

ToolCallParser::ToolCallParser(ChatFormat format, std::vector<std::string> tool_names,
                               bool calls_open, int32_t marker_id, bool stream, bool named_calls,
                               std::string_view opened)
    : format_(format),
      tool_names_(std::move(tool_names)),
      marker_id_(marker_id),
      named_calls_(named_calls && IsMistral(format)),
      state_(calls_open ? State::kCall : State::kStart) {
  if (named_calls_) {
    // The calls' text is parsed with its markers; what the prompt wrote of it comes first.
    if (calls_open) pending_ = absl::StrCat(std::string(kToolCallsMarker), std::string(opened));
    opened_bytes_ = pending_.size();
    return;  // no grammar holds v11 calls (its markers are control tokens): none stream
  }
  if (stream) streamer_.emplace(format_, tool_names_);
}

void ToolCallParser::FirstToken(int32_t id) {
  if (!IsMistral(format_) || named_calls_ || state_ != State::kStart) return;
  state_ = id == marker_id_ ? State::kCall : State::kText;
}

ToolCallParser::Output ToolCallParser::Feed(std::string_view text) {
  Output out;
  pending_.append(text);
  Step(out);
  return out;
}

ToolCallParser::Output ToolCallParser::Finish() {
  Output out;
  if (state_ == State::kCall && named_calls_) {
    if (!TakeNamedCalls(pending_, out)) out.text.append(pending_, opened_bytes_);
  } else if (state_ == State::kCall) {
    if (IsLlama(format_)) {
      if (!TakeCall(pending_, out)) out.text += pending_;
    } else if (IsMistral(format_)) {
      if (!TakeCallArray(pending_, out)) out.text += pending_;
    } else {
      absl::StrAppend(&out.text, std::string(kCallOpen), pending_);  // never closed
    }
  } else {
    out.text += made_calls_ ? RightTrimmed(pending_) : std::string_view(pending_);
  }
  pending_.clear();
  state_ = State::kText;
  return out;
}

void ToolCallParser::Step(Output& out) {
  if (named_calls_) return StepNamedCalls(out);
  if (IsMistral(format_)) {
    if (state_ == State::kStart && !pending_.empty()) state_ = State::kText;  // no marker
    if (state_ == State::kText) {
      out.text += pending_;
      pending_.clear();
    }
    if (state_ == State::kCall && streamer_.has_value()) streamer_->Scan(pending_, out.deltas);
    return;  // calls are held to the end of the reply
  }
  if (IsLlama(format_)) {
    if (state_ == State::kStart) {
      const size_t at = pending_.find_first_not_of(kSpace);
      if (at == std::string::npos) return;  // only whitespace yet
      state_ = pending_[at] == '{' ? State::kCall : State::kText;
    }
    if (state_ == State::kText) {
      out.text += pending_;
      pending_.clear();
    }
    if (state_ == State::kCall && streamer_.has_value()) streamer_->Scan(pending_, out.deltas);
    return;  // a call is held to the end of the reply
  }
  for (;;) {
    if (state_ == State::kCall) {
      const size_t close = pending_.find(kCallClose);
      if (streamer_.has_value()) {  // the call's text: up to its tag, or what may start it
        streamer_->Scan(std::string_view(pending_).substr(
                            0, close != std::string::npos
                                   ? close
                                   : pending_.size() - PartialTagAtEnd(pending_, kCallClose)),
                        out.deltas);
      }
      if (close == std::string::npos) return;
      const std::string_view body = std::string_view(pending_).substr(0, close);
      if (TakeCall(body, out)) {
        after_call_ = true;
      } else {
        absl::StrAppend(&out.text, std::string(kCallOpen), std::string(body),
                        std::string(kCallClose));
      }
      pending_.erase(0, close + kCallClose.size());
      state_ = State::kText;
      continue;
    }
    if (after_call_) {  // the whitespace after a call goes with it
      const size_t text = pending_.find_first_not_of(kSpace);
      pending_.erase(0, std::min(text, pending_.size()));
      if (pending_.empty()) return;
      after_call_ = false;
    }
    const size_t open = pending_.find(kCallOpen);
    if (open != std::string::npos) {
      out.text += RightTrimmed(std::string_view(pending_).substr(0, open));
      pending_.erase(0, open + kCallOpen.size());
      state_ = State::kCall;
      if (streamer_.has_value()) streamer_->Restart();
      continue;
    }
    // Hold what may still be a tag's start, and the whitespace before it (dropped if a call
    // follows).
    size_t keep = pending_.size() - PartialTagAtEnd(pending_, kCallOpen);
    while (keep > 0 && kSpace.find(pending_[keep - 1]) != std::string_view::npos) --keep;
    out.text.append(pending_, 0, keep);
    pending_.erase(0, keep);
    return;
  }
}

void ToolCallParser::StepNamedCalls(Output& out) {
  if (state_ == State::kCall) return;  // the calls are held to the end of the reply
  const size_t open = pending_.find(kToolCallsMarker);
  if (open != std::string::npos) {
    out.text += RightTrimmed(std::string_view(pending_).substr(0, open));
    pending_.erase(0, open);  // kept with its marker: a reply that is no calls stays as written
    state_ = State::kCall;
    return;
  }
  // Hold what may still be the marker's start, and the whitespace before it.
  size_t keep = pending_.size() - PartialTagAtEnd(pending_, kToolCallsMarker);
  while (keep > 0 && kSpace.find(pending_[keep - 1]) != std::string_view::npos) --keep;
  out.text.append(pending_, 0, keep);
  pending_.erase(0, keep);
}

bool ToolCallParser::TakeNamedCalls(std::string_view body, Output& out) {
  std::vector<ToolCall> calls;
  while (body.starts_with(kToolCallsMarker)) {
    body.remove_prefix(kToolCallsMarker.size());
    const size_t next = body.find(kToolCallsMarker);
    std::string_view call = body.substr(0, next);
    body.remove_prefix(call.size());
    const size_t args = call.find(kArgsMarker);
    if (args == std::string_view::npos) return false;
    std::string_view name = call.substr(0, args);
    std::string_view id;
    if (const size_t id_at = name.find(kCallIdMarker); id_at != std::string_view::npos) {
      id = name.substr(id_at + kCallIdMarker.size());
      name = name.substr(0, id_at);
    }
    const Json object = {
        {"name", std::string(name)},
        {"arguments", Json::parse(call.substr(args + kArgsMarker.size()), nullptr, false)}};
    std::optional<ToolCall> parsed = CallOf(object, format_, tool_names_);
    if (!parsed.has_value()) return false;
    if (!id.empty() && CheckCallId(format_, id, "").ok()) parsed->id = std::string(id);
    calls.push_back(*std::move(parsed));
  }
  if (calls.empty() || !body.empty()) return false;
  out.calls.insert(out.calls.end(), calls.begin(), calls.end());
  made_calls_ = true;
  return true;
}

bool ToolCallParser::TakeCall(std::string_view body, Output& out) {
  std::optional<ToolCall> call = CallOf(Json::parse(body, nullptr, false), format_, tool_names_);
  if (!call.has_value()) return false;
  std::vector<ToolCall> calls = {*std::move(call)};
  AsStreamed(calls);
  out.calls.push_back(std::move(calls[0]));
  made_calls_ = true;
  return true;
}

bool ToolCallParser::TakeCallArray(std::string_view body, Output& out) {
  const Json array = Json::parse(body, nullptr, false);
  if (!array.is_array() || array.empty()) return false;
  std::vector<ToolCall> calls;
  for (const Json& element : array) {
    std::optional<ToolCall> call = CallOf(element, format_, tool_names_);
    if (!call.has_value()) return false;
    calls.push_back(*std::move(call));
  }
  AsStreamed(calls);
  out.calls.insert(out.calls.end(), calls.begin(), calls.end());
  made_calls_ = true;
  return true;
}

void ToolCallParser::AsStreamed(std::vector<ToolCall>& calls) const {
  if (!streamer_.has_value()) return;
  const std::span<const CallStreamer::Streamed> streamed = streamer_->stretch();
  if (streamed.size() != calls.size()) return;
  for (size_t i = 0; i < calls.size(); ++i) {
    // (Arguments written as a string holding the object's text, which only a call outside
    // the grammar can have, keep the parser's object.)
    if (!streamed[i].complete || streamed[i].name != calls[i].name ||
        !streamed[i].arguments.starts_with('{')) {
      return;
    }
  }
  for (size_t i = 0; i < calls.size(); ++i) {
    calls[i].id = streamed[i].id;
    calls[i].arguments = streamed[i].arguments;
  }
}

}  // namespace ringserve::tokenizer
