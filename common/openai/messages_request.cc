#include "common/openai/messages_request.h"

#include <cstdint>
#include <limits>
#include <optional>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/openai/json_fields.h"
#include "common/openai/openai_request.h"
#include "common/status_macros.h"

namespace ringserve::openai {
namespace {

namespace pb = ringserve::v1;

constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();

std::string DumpJson(const Json& value) {
  return value.dump(-1, ' ', false, Json::error_handler_t::replace);
}

// One message's content blocks onto the chat: text joins the message's content; an
// assistant's tool_use blocks are its calls; a user's tool_result blocks are tool messages
// (before its text, which follows the results it answers).
absl::Status AddBlocks(const JsonObject& message, const std::string& role, const Json& blocks,
                       pb::Chat& chat) {
  pb::ChatMessage text_message;
  text_message.set_role(role);
  std::vector<std::string> texts;
  for (size_t i = 0; i < blocks.size(); ++i) {
    const std::string field = absl::StrCat(message.Name("content"), "[", i, "]");
    if (!blocks[i].is_object()) return FieldError(field, "must be a content block object");
    const JsonObject block(blocks[i], field);
    RS_ASSIGN_OR_RETURN(std::optional<std::string> given, block.String("type"));
    const std::string type = given.value_or("");
    if (type == "text") {
      RS_ASSIGN_OR_RETURN(std::optional<std::string> text, block.String("text"));
      texts.push_back(text.value_or(""));
    } else if (type == "tool_use" && role == "assistant") {
      pb::ToolCall* call = text_message.add_tool_calls();
      RS_ASSIGN_OR_RETURN(std::optional<std::string> id, block.String("id"));
      if (!id.has_value()) return FieldError(block.Name("id"), "is required");
      call->set_id(*id);
      RS_ASSIGN_OR_RETURN(std::optional<std::string> name, block.String("name"));
      if (!name.has_value()) return FieldError(block.Name("name"), "is required");
      call->set_name(*name);
      RS_ASSIGN_OR_RETURN(const Json* input, block.Object("input"));
      call->set_arguments(input != nullptr ? DumpJson(*input) : "{}");
    } else if (type == "tool_result" && role == "user") {
      pb::ChatMessage* result = chat.add_messages();
      result->set_role("tool");
      RS_ASSIGN_OR_RETURN(std::optional<std::string> id, block.String("tool_use_id"));
      if (!id.has_value()) return FieldError(block.Name("tool_use_id"), "is required");
      result->set_tool_call_id(*id);
      RS_ASSIGN_OR_RETURN(std::string content, TextContent(block, {"text"}));
      RS_ASSIGN_OR_RETURN(std::optional<bool> is_error, block.Bool("is_error"));
      result->set_content(is_error.value_or(false) ? absl::StrCat("Error: ", content) : content);
    } else if (type == "thinking" || type == "redacted_thinking") {
      // An earlier reply's thought: chat templates leave earlier thoughts out of the context.
      continue;
    } else {
      return FieldError(
          block.Name("type"),
          absl::StrCat("\"", type, "\" blocks are not supported in ", role, " messages"));
    }
  }
  if (!texts.empty() || text_message.tool_calls_size() > 0) {
    text_message.set_content(absl::StrJoin(texts, "\n"));
    *chat.add_messages() = std::move(text_message);
  }
  return absl::OkStatus();
}

// "system" (a string or text blocks) and "messages".
absl::Status ParseConversation(const JsonObject& body, pb::Chat& chat) {
  if (const Json* system = body.Find("system"); system != nullptr) {
    Json as_block = {{"content", *system}};
    RS_ASSIGN_OR_RETURN(std::string text, TextContent(JsonObject(as_block, "system"), {"text"}));
    pb::ChatMessage* message = chat.add_messages();
    message->set_role("system");
    message->set_content(std::move(text));
  }
  RS_ASSIGN_OR_RETURN(const Json* messages, body.Array("messages"));
  if (messages == nullptr || messages->empty()) {
    return FieldError("messages", "must be a non-empty array of messages");
  }
  for (size_t i = 0; i < messages->size(); ++i) {
    const std::string field = absl::StrCat("messages[", i, "]");
    if (!(*messages)[i].is_object()) return FieldError(field, "must be an object");
    const JsonObject message((*messages)[i], field);
    RS_ASSIGN_OR_RETURN(std::optional<std::string> given, message.String("role"));
    const std::string role = given.value_or("");
    if (role != "user" && role != "assistant") {
      return FieldError(message.Name("role"), "must be \"user\" or \"assistant\"");
    }
    const Json* content = message.Find("content");
    if (content != nullptr && content->is_string()) {
      pb::ChatMessage* out = chat.add_messages();
      out->set_role(role);
      out->set_content(content->get<std::string>());
    } else if (content != nullptr && content->is_array()) {
      RS_RETURN_IF_ERROR(AddBlocks(message, role, *content, chat));
    } else {
      return FieldError(message.Name("content"), "must be a string or an array of blocks");
    }
  }
  return absl::OkStatus();
}

// "tools" (custom tools: name, description, input_schema) and "tool_choice".
absl::Status ParseTools(const JsonObject& body, pb::Chat& chat) {
  RS_ASSIGN_OR_RETURN(const Json* tools, body.Array("tools"));
  for (size_t i = 0; tools != nullptr && i < tools->size(); ++i) {
    const std::string field = absl::StrCat("tools[", i, "]");
    if (!(*tools)[i].is_object()) return FieldError(field, "must be an object");
    const JsonObject tool((*tools)[i], field);
    RS_ASSIGN_OR_RETURN(std::optional<std::string> type, tool.String("type"));
    if (type.has_value() && *type != "custom") {
      return FieldError(tool.Name("type"),
                        absl::StrCat("\"", *type, "\": only custom tools are supported"));
    }
    pb::Tool* out = chat.add_tools();
    RS_ASSIGN_OR_RETURN(std::optional<std::string> name, tool.String("name"));
    if (!name.has_value()) return FieldError(tool.Name("name"), "is required");
    out->set_name(*name);
    RS_ASSIGN_OR_RETURN(std::optional<std::string> description, tool.String("description"));
    out->set_description(description.value_or(""));
    if (const Json* schema = tool.Find("input_schema"); schema != nullptr) {
      RS_ASSIGN_OR_RETURN(std::string text, SchemaText(*schema, tool.Name("input_schema")));
      out->set_parameters(std::move(text));
    }
  }
  RS_ASSIGN_OR_RETURN(const Json* choice, body.Object("tool_choice"));
  if (choice == nullptr) return absl::OkStatus();
  const JsonObject c(*choice, "tool_choice");
  RS_ASSIGN_OR_RETURN(std::optional<std::string> given, c.String("type"));
  const std::string type = given.value_or("");
  if (type == "any") {
    chat.mutable_tool_choice()->set_mode(pb::ToolChoice::MODE_REQUIRED);
  } else if (type == "tool") {
    RS_ASSIGN_OR_RETURN(std::optional<std::string> name, c.String("name"));
    if (!name.has_value()) return FieldError(c.Name("name"), "is required");
    chat.mutable_tool_choice()->set_mode(pb::ToolChoice::MODE_REQUIRED);
    chat.mutable_tool_choice()->set_name(*name);
  } else if (type == "none") {
    chat.mutable_tool_choice()->set_mode(pb::ToolChoice::MODE_NONE);
  } else if (type != "auto") {
    return FieldError(c.Name("type"), "must be \"auto\", \"any\", \"tool\" or \"none\"");
  }
  RS_ASSIGN_OR_RETURN(std::optional<bool> one_call, c.Bool("disable_parallel_tool_use"));
  if (one_call.has_value()) chat.set_parallel_tool_calls(!*one_call);
  return absl::OkStatus();
}

// "thinking": {"type": "enabled", "budget_tokens": N} turns a thinking model's thought on,
// {"type": "disabled"} off; ringserve has no budget, so N is only type-checked.
absl::Status ParseThinking(const JsonObject& body, pb::Chat& chat) {
  RS_ASSIGN_OR_RETURN(const Json* thinking, body.Object("thinking"));
  if (thinking == nullptr) return absl::OkStatus();
  const JsonObject t(*thinking, "thinking");
  RS_ASSIGN_OR_RETURN(std::optional<std::string> given, t.String("type"));
  const std::string type = given.value_or("");
  if (type != "enabled" && type != "disabled" && type != "adaptive") {
    return FieldError(t.Name("type"), "must be \"enabled\", \"adaptive\" or \"disabled\"");
  }
  RS_RETURN_IF_ERROR(t.Integer("budget_tokens", 0, kInt32Max).status());
  chat.set_enable_thinking(type != "disabled");
  return absl::OkStatus();
}

// What a generation and a token count share: the conversation and the chat's switches.
absl::Status ParseChat(const JsonObject& body, pb::Chat& chat) {
  RS_RETURN_IF_ERROR(ParseConversation(body, chat));
  RS_RETURN_IF_ERROR(ParseTools(body, chat));
  return ParseThinking(body, chat);
}

}  // namespace

absl::StatusOr<MessagesCall> ParseMessagesRequest(absl::string_view text) {
  RS_ASSIGN_OR_RETURN(const Json parsed, ParseBody(text));
  const JsonObject body(parsed, "");
  MessagesCall call;
  RS_ASSIGN_OR_RETURN(call.model, ModelField(body));
  pb::GenerateRequest& request = call.request;
  RS_RETURN_IF_ERROR(ParseChat(body, *request.mutable_chat()));
  RS_ASSIGN_OR_RETURN(std::optional<bool> stream, body.Bool("stream"));
  call.stream = stream.value_or(false);
  // Streamed replies stream their calls too, as input_json_delta events.
  request.mutable_chat()->set_stream_tool_calls(call.stream);
  // temperature, top_p and top_k read as OpenAI's (and vLLM's extras alike).
  RS_RETURN_IF_ERROR(ParseSamplingFields(body, *request.mutable_sampling()));
  RS_ASSIGN_OR_RETURN(std::optional<int64_t> max_tokens, body.Integer("max_tokens", 1, kInt32Max));
  if (max_tokens.has_value()) {
    request.mutable_stop()->set_max_tokens(static_cast<int32_t>(*max_tokens));
  }
  RS_ASSIGN_OR_RETURN(std::vector<std::string> stops, body.Strings("stop_sequences"));
  for (std::string& s : stops) {
    if (!s.empty()) request.mutable_stop()->add_stop(std::move(s));
  }
  RS_ASSIGN_OR_RETURN(const int32_t priority, PriorityField(body));
  request.set_priority(priority);
  RS_RETURN_IF_ERROR(body.Object("metadata").status());  // type-checked only
  return call;
}

absl::StatusOr<CountTokensCall> ParseCountTokensRequest(absl::string_view text) {
  RS_ASSIGN_OR_RETURN(const Json parsed, ParseBody(text));
  const JsonObject body(parsed, "");
  CountTokensCall call;
  RS_ASSIGN_OR_RETURN(call.model, ModelField(body));
  RS_RETURN_IF_ERROR(ParseChat(body, *call.request.mutable_chat()));
  return call;
}

}  // namespace ringserve::openai
