#include "worker/server/tool_requests.h"

#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/tokenizer/unicode.h"

namespace ringserve::server {
namespace {

namespace pb = ringserve::v1;

absl::Status Invalid(std::string_view field, std::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(std::string(field), ": ", std::string(why)));
}

}  // namespace

absl::StatusOr<std::vector<tokenizer::ChatTool>> OfferedTools(const pb::Chat& chat) {
  std::vector<tokenizer::ChatTool> tools;
  if (chat.tool_choice().mode() == pb::ToolChoice::MODE_NONE) return tools;
  size_t schema_bytes = 0;
  for (int i = 0; i < chat.tools_size(); ++i) {
    const pb::Tool& tool = chat.tools(i);
    schema_bytes += tool.parameters().size();
    if (!tokenizer::IsValidUtf8(tool.parameters())) {
      return Invalid(absl::StrCat("chat.tools[", i, "].parameters"), "not valid UTF-8");
    }
    if (!tokenizer::IsValidUtf8(tool.description())) {
      return Invalid(absl::StrCat("chat.tools[", i, "].description"), "not valid UTF-8");
    }
    tools.push_back({tool.name(), tool.description(), tool.parameters()});
  }
  if (schema_bytes > kMaxToolSchemaBytes) {
    return Invalid("chat.tools",
                   absl::StrCat(schema_bytes, " bytes of parameters is over the limit of ",
                                kMaxToolSchemaBytes));
  }
  return tools;
}

std::vector<tokenizer::ToolCall> MessageToolCalls(const pb::ChatMessage& message) {
  std::vector<tokenizer::ToolCall> calls;
  for (const pb::ToolCall& call : message.tool_calls()) {
    calls.push_back({call.id(), call.name(), call.arguments()});
  }
  return calls;
}

namespace {

// Which grammar of a request's calls to compile (CallsGrammar).
struct CallsGrammarSpec {
  std::string only{};  // the one tool named, or empty for all of them
  bool one_call = false;
  // A tool whose schema does not compile takes any JSON object as its arguments (a reply
  // free to call tools keeps its calls' shape and names held), rather than refusing the
  // request.
  bool lenient = false;
  bool after_thought = false;
  // The arguments alone (Mistral v11: ToolArgumentsGbnf), rather than whole calls.
  bool arguments_only = false;
};

// The calls' grammar (ToolCallsGbnf), every tool's parameters compiled as its JSON rule.
absl::StatusOr<std::shared_ptr<const grammar::Grammar>> CompileCallsGrammar(
    std::span<const tokenizer::ChatTool> tools, tokenizer::ChatFormat format,
    const CallsGrammarSpec& spec) {
  std::vector<grammar::Grammar::JsonRule> arguments;
  for (size_t i = 0; i < tools.size(); ++i) {
    if (!spec.only.empty() && tools[i].name != spec.only) continue;
    std::shared_ptr<const grammar::Grammar> schema = grammar::Grammar::AnyObject();
    if (!tools[i].parameters.empty()) {
      auto compiled = grammar::Grammar::FromSchema(tools[i].parameters);
      if (compiled.ok()) {
        schema = *std::move(compiled);
      } else if (!spec.lenient) {
        return Invalid(absl::StrCat("chat.tools[", i, "].parameters"),
                       std::string(compiled.status().message()));
      }
    }
    arguments.push_back({tokenizer::ToolArgumentsRule(i), std::move(schema)});
  }
  if (arguments.empty()) {
    return Invalid("chat.tool_choice.name",
                   absl::StrCat("no tool is named '", spec.only.substr(0, 64), "'"));
  }
  auto calls = grammar::Grammar::FromGbnf(
      spec.arguments_only
          ? tokenizer::ToolArgumentsGbnf(tools, spec.only)
          : tokenizer::ToolCallsGbnf(format, tools, spec.only, spec.one_call, spec.after_thought),
      arguments);
  if (!calls.ok()) return Invalid("chat.tools", std::string(calls.status().message()));
  return calls;
}

// The control token a call opens with: Mistral's [TOOL_CALLS]; nullopt in the formats whose
// calls open with text.
std::optional<int32_t> CallMarker(const tokenizer::Tokenizer& tokenizer,
                                  tokenizer::ChatFormat format) {
  if (format != tokenizer::ChatFormat::kMistral) return std::nullopt;
  const auto markers = tokenizer::MistralToolMarkersOf(tokenizer);
  return markers.has_value() ? std::optional<int32_t>(markers->tool_calls) : std::nullopt;
}

// CompileCallsGrammar through `cache`: agents offer the same tools turn after turn.
absl::StatusOr<std::shared_ptr<const grammar::Grammar>> CallsGrammar(
    std::span<const tokenizer::ChatTool> tools, tokenizer::ChatFormat format,
    const CallsGrammarSpec& spec, grammar::GrammarCache* cache) {
  grammar::GrammarKey key("tool_calls");
  key.Add(static_cast<int64_t>(format)).Add(spec.only).Add(spec.one_call ? 1 : 0);
  key.Add(spec.lenient ? 1 : 0).Add(spec.after_thought ? 1 : 0).Add(spec.arguments_only ? 1 : 0);
  // The grammar depends on the tools' names and parameters only (not their descriptions).
  for (const tokenizer::ChatTool& tool : tools) key.Add(tool.name).Add(tool.parameters);
  return grammar::CompileCached(cache, key.key(),
                                [&] { return CompileCallsGrammar(tools, format, spec); });
}

// Mistral v11's calls ([TOOL_CALLS] name [ARGS] arguments): no grammar spells their
// markers, so the reply's text spells them for the parser and each call's arguments are held
// from its [ARGS] on (a token trigger) to a JSON value of some offered tool's parameters.
// MODE_REQUIRED opens the calls in the prompt ([TOOL_CALLS]; with a named tool also its name
// and [ARGS], the reply then being that tool's arguments).
absl::StatusOr<ToolFormat> NamedCallsFormat(const pb::Chat& chat,
                                            std::span<const tokenizer::ChatTool> tools,
                                            const tokenizer::Tokenizer& tokenizer,
                                            tokenizer::ChatFormat chat_format,
                                            const tokenizer::MistralToolMarkers& markers,
                                            grammar::GrammarCache* cache) {
  const pb::ToolChoice& choice = chat.tool_choice();
  const bool one_call = chat.has_parallel_tool_calls() && !chat.parallel_tool_calls();
  ToolFormat format{.spelled_markers = tokenizer::NamedCallMarkerIds(markers)};
  const grammar::Trigger each_call{.text = "", .once = one_call, .token = markers.args};
  if (choice.mode() == pb::ToolChoice::MODE_REQUIRED) {
    if (tools.empty()) return Invalid("chat.tool_choice", "MODE_REQUIRED needs chat.tools");
    RS_ASSIGN_OR_RETURN(
        format.grammar,
        CallsGrammar(tools, chat_format, {.only = choice.name(), .arguments_only = true}, cache));
    format.prompt_suffix = {markers.tool_calls};
    if (choice.name().empty()) {
      format.trigger = each_call;
      return format;
    }
    const std::vector<int32_t> name = tokenizer.Encode(
        choice.name(), {.add_bos = false, .add_eos = false, .parse_special = false});
    format.prompt_suffix.insert(format.prompt_suffix.end(), name.begin(), name.end());
    format.prompt_suffix.push_back(*markers.args);
    return format;
  }
  if (!choice.name().empty()) return Invalid("chat.tool_choice.name", "needs MODE_REQUIRED");
  if (tools.empty() || chat.continue_final_message()) return ToolFormat{};
  auto arguments =
      CallsGrammar(tools, chat_format, {.lenient = true, .arguments_only = true}, cache);
  if (!arguments.ok()) return format;  // calls it cannot compile are only parsed
  format.grammar = *std::move(arguments);
  format.trigger = each_call;
  return format;
}

// Mistral's tool markers where they are v11's (the vocabulary names [ARGS]).
std::optional<tokenizer::MistralToolMarkers> NamedCallMarkers(const tokenizer::Tokenizer& tokenizer,
                                                              tokenizer::ChatFormat format) {
  if (format != tokenizer::ChatFormat::kMistral) return std::nullopt;
  std::optional<tokenizer::MistralToolMarkers> markers = tokenizer::MistralToolMarkersOf(tokenizer);
  if (!markers.has_value() || !markers->args.has_value()) return std::nullopt;
  return markers;
}

}  // namespace

absl::StatusOr<ToolFormat> ToolChoiceFormat(const pb::Chat& chat,
                                            std::span<const tokenizer::ChatTool> tools,
                                            const tokenizer::Tokenizer& tokenizer,
                                            tokenizer::ChatFormat format, bool thought_first,
                                            grammar::GrammarCache* cache) {
  if (const auto named = NamedCallMarkers(tokenizer, format); named.has_value()) {
    return NamedCallsFormat(chat, tools, tokenizer, format, *named, cache);
  }
  const pb::ToolChoice& choice = chat.tool_choice();
  const bool one_call = chat.has_parallel_tool_calls() && !chat.parallel_tool_calls();
  // Mistral's calls open with a control token (the renderer refused tools without it).
  const std::optional<int32_t> marker =
      tools.empty() ? std::nullopt : CallMarker(tokenizer, format);
  switch (choice.mode()) {
    case pb::ToolChoice::MODE_REQUIRED: {
      if (tools.empty()) return Invalid("chat.tool_choice", "MODE_REQUIRED needs chat.tools");
      // Asked to think first (ChatML's thinking models), the calls bind after the thought.
      const bool after_thought = thought_first && format == tokenizer::ChatFormat::kChatMl;
      RS_ASSIGN_OR_RETURN(auto calls, CallsGrammar(tools, format,
                                                   {.only = choice.name(),
                                                    .one_call = one_call,
                                                    .after_thought = after_thought},
                                                   cache));
      std::optional<grammar::Trigger> trigger;
      if (after_thought) trigger = grammar::Trigger{.text = "</think>", .once = true};
      ToolFormat required{.grammar = std::move(calls), .trigger = std::move(trigger)};
      if (marker.has_value()) required.prompt_suffix = {*marker};
      return required;
    }
    case pb::ToolChoice::MODE_AUTO: {
      if (!choice.name().empty()) return Invalid("chat.tool_choice.name", "needs MODE_REQUIRED");
      // A continued reply is text: its start, the client's, was never watched for a call.
      if (tools.empty() || chat.continue_final_message()) return ToolFormat{};
      // Each stretch the trigger binds is one call (Mistral: the reply's array of calls);
      // without parallel calls the first one ends the reply.
      auto call =
          CallsGrammar(tools, format, {.one_call = !marker || one_call, .lenient = true}, cache);
      if (!call.ok()) return ToolFormat{};  // calls it cannot compile are only parsed
      return ToolFormat{
          .grammar = *std::move(call),
          .trigger = grammar::Trigger{.text = std::string(tokenizer::ToolCallOpening(format)),
                                      .at_start = tokenizer::ToolCallOpensReply(format),
                                      .after = thought_first ? "</think>" : "",
                                      .once = one_call || marker.has_value(),
                                      .token = marker}};
    }
    default:
      if (!choice.name().empty()) return Invalid("chat.tool_choice.name", "needs MODE_REQUIRED");
      return ToolFormat{};
  }
}

std::optional<tokenizer::ToolCallParser> ReplyParser(const pb::GenerateRequest& request,
                                                     const tokenizer::Tokenizer* tokenizer,
                                                     tokenizer::ChatFormat format,
                                                     bool calls_constrained) {
  if (!request.has_chat() || request.chat().tools_size() == 0 ||
      request.chat().tool_choice().mode() == pb::ToolChoice::MODE_NONE ||
      request.chat().continue_final_message() || !tokenizer::HasToolCalls(format) ||
      tokenizer == nullptr) {
    return std::nullopt;
  }
  std::vector<std::string> names;
  for (const pb::Tool& tool : request.chat().tools()) names.push_back(tool.name());
  const int32_t marker = CallMarker(*tokenizer, format).value_or(-1);
  // Under MODE_REQUIRED Mistral's prompt opened the calls (ToolFormat::prompt_suffix).
  const pb::ToolChoice& choice = request.chat().tool_choice();
  const bool calls_open = marker >= 0 && choice.mode() == pb::ToolChoice::MODE_REQUIRED;
  const bool named_calls = NamedCallMarkers(*tokenizer, format).has_value();
  // v11 with a named tool: the prompt also wrote the call's name and [ARGS].
  const std::string opened = named_calls && calls_open && !choice.name().empty()
                                 ? absl::StrCat(choice.name(), std::string(tokenizer::kArgsMarker))
                                 : std::string();
  return tokenizer::ToolCallParser(format, std::move(names), calls_open, marker,
                                   request.chat().stream_tool_calls() && calls_constrained,
                                   named_calls, opened);
}

void ParseToolCalls(tokenizer::ToolCallParser& parser, bool last, pb::GenerateResponse* response) {
  if (response->token_ids_size() > 0) parser.FirstToken(response->token_ids(0));
  tokenizer::ToolCallParser::Output out = parser.Feed(response->text());
  if (last) {
    tokenizer::ToolCallParser::Output rest = parser.Finish();
    out.text += rest.text;
    out.calls.insert(out.calls.end(), rest.calls.begin(), rest.calls.end());
  }
  response->set_text(std::move(out.text));
  for (tokenizer::ToolCallDelta& delta : out.deltas) {
    pb::ToolCallDelta* added = response->add_tool_call_deltas();
    added->set_index(delta.index);
    added->set_id(std::move(delta.id));
    added->set_name(std::move(delta.name));
    added->set_arguments(std::move(delta.arguments));
  }
  for (tokenizer::ToolCall& call : out.calls) {
    pb::ToolCall* added = response->add_tool_calls();
    added->set_id(std::move(call.id));
    added->set_name(std::move(call.name));
    added->set_arguments(std::move(call.arguments));
  }
  if (!last || !parser.made_calls() || !response->has_final()) return;
  const pb::FinishReason reason = response->final().finish_reason();
  if (reason == pb::FINISH_REASON_EOS || reason == pb::FINISH_REASON_STOP_TOKEN ||
      reason == pb::FINISH_REASON_RESPONSE_COMPLETE) {
    response->mutable_final()->set_finish_reason(pb::FINISH_REASON_TOOL_CALLS);
  }
}

}  // namespace ringserve::server
