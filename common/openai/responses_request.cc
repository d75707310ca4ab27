#include "common/openai/responses_request.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/openai/json_fields.h"
#include "common/openai/openai_request.h"
#include "common/status_macros.h"

namespace ringserve::openai {
namespace {

namespace pb = ringserve::v1;

constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();
constexpr int64_t kMaxTopLogprobs = 20;
constexpr char kResponsePrefix[] = "resp_";
// "include" value that asks for the output text's logprobs.
constexpr char kIncludeLogprobs[] = "message.output_text.logprobs";

// The content parts whose text an input item's content holds.
constexpr std::initializer_list<absl::string_view> kTextParts = {"input_text", "output_text",
                                                                 "text"};
// Parameters that would change the reply and that ringserve cannot honour: refused by name.
constexpr const char* kUnsupported[] = {"conversation", "prompt", "max_tool_calls"};

OrderedJson Ordered(const Json& value) {
  return OrderedJson::parse(value.dump(-1, ' ', false, Json::error_handler_t::replace));
}

// A function_call item (a call the model made, replayed by the client) onto the assistant
// message it belongs to: the previous message when that is the assistant's, else a new one.
absl::Status AddFunctionCall(const JsonObject& item, pb::Chat& chat) {
  if (chat.messages().empty() || chat.messages().rbegin()->role() != "assistant") {
    chat.add_messages()->set_role("assistant");
  }
  pb::ToolCall* call = chat.mutable_messages()->rbegin()->add_tool_calls();
  RS_ASSIGN_OR_RETURN(std::optional<std::string> call_id, item.String("call_id"));
  if (!call_id.has_value()) return FieldError(item.Name("call_id"), "is required");
  call->set_id(*call_id);
  RS_ASSIGN_OR_RETURN(std::optional<std::string> name, item.String("name"));
  if (!name.has_value()) return FieldError(item.Name("name"), "is required");
  call->set_name(*name);
  RS_ASSIGN_OR_RETURN(std::optional<std::string> arguments, item.String("arguments"));
  call->set_arguments(arguments.value_or("{}"));
  return absl::OkStatus();
}

// "input": a string (one user message) or an array of items.
absl::Status ParseInput(const JsonObject& body, pb::Chat& chat) {
  const Json* input = body.Find("input");
  if (input == nullptr) return FieldError("input", "is required");
  if (input->is_string()) {
    pb::ChatMessage* message = chat.add_messages();
    message->set_role("user");
    message->set_content(input->get<std::string>());
    return absl::OkStatus();
  }
  if (!input->is_array() || input->empty()) {
    return FieldError("input", "must be a string or a non-empty array of input items");
  }
  for (size_t i = 0; i < input->size(); ++i) {
    const std::string field = absl::StrCat("input[", i, "]");
    if (!(*input)[i].is_object()) return FieldError(field, "must be an object");
    const JsonObject item((*input)[i], field);
    RS_ASSIGN_OR_RETURN(std::optional<std::string> type, item.String("type"));
    if (!type.has_value() || *type == "message") {
      RS_ASSIGN_OR_RETURN(std::optional<std::string> role, item.String("role"));
      if (!role.has_value()) return FieldError(item.Name("role"), "is required");
      if (*role != "user" && *role != "assistant" && *role != "system" && *role != "developer") {
        return FieldError(item.Name("role"),
                          "must be \"user\", \"assistant\", \"system\" or \"developer\"");
      }
      pb::ChatMessage* message = chat.add_messages();
      // OpenAI's newer name for the system role.
      message->set_role(*role == "developer" ? "system" : *role);
      RS_ASSIGN_OR_RETURN(std::string content, TextContent(item, kTextParts));
      message->set_content(std::move(content));
    } else if (*type == "function_call") {
      RS_RETURN_IF_ERROR(AddFunctionCall(item, chat));
    } else if (*type == "function_call_output") {
      pb::ChatMessage* message = chat.add_messages();
      message->set_role("tool");
      RS_ASSIGN_OR_RETURN(std::optional<std::string> call_id, item.String("call_id"));
      if (!call_id.has_value()) return FieldError(item.Name("call_id"), "is required");
      message->set_tool_call_id(*call_id);
      const Json* output = item.Find("output");
      if (output != nullptr && !output->is_string()) {
        // The output as content parts reads as a message's content does.
        Json as_message = {{"content", *output}};
        RS_ASSIGN_OR_RETURN(std::string text,
                            TextContent(JsonObject(as_message, field), kTextParts));
        message->set_content(std::move(text));
      } else {
        message->set_content(output != nullptr ? output->get<std::string>() : "");
      }
    } else if (*type == "reasoning") {
      // An earlier reply's thought, replayed by a client that resends the whole conversation:
      // chat templates leave earlier thoughts out of the context, and so does ringserve.
      continue;
    } else {
      return FieldError(item.Name("type"),
                        absl::StrCat("\"", *type,
                                     "\" is not supported (message, function_call, "
                                     "function_call_output and reasoning items are)"));
    }
  }
  return absl::OkStatus();
}

// "text": {"format": {"type": "text" | "json_object" | "json_schema", ...}}.
absl::Status ParseTextFormat(const JsonObject& body, pb::GenerateRequest& request) {
  RS_ASSIGN_OR_RETURN(const Json* text, body.Object("text"));
  if (text == nullptr) return absl::OkStatus();
  const JsonObject text_object(*text, "text");
  RS_ASSIGN_OR_RETURN(const Json* format, text_object.Object("format"));
  if (format == nullptr) return absl::OkStatus();
  const JsonObject f(*format, "text.format");
  RS_ASSIGN_OR_RETURN(std::optional<std::string> type, f.String("type"));
  if (!type.has_value()) return FieldError(f.Name("type"), "is required");
  if (*type == "json_object") {
    request.mutable_response_format()->mutable_json_object();
  } else if (*type == "json_schema") {
    const Json* schema = f.Find("schema");
    if (schema == nullptr) return FieldError(f.Name("schema"), "is required");
    RS_ASSIGN_OR_RETURN(std::string schema_text, SchemaText(*schema, f.Name("schema")));
    request.mutable_response_format()->mutable_json_schema()->set_schema(std::move(schema_text));
  } else if (*type != "text") {
    return FieldError(f.Name("type"),
                      absl::StrCat("\"", *type, "\" is not one of text, json_object, json_schema"));
  }
  return absl::OkStatus();
}

// "reasoning": {"effort": ...}: "none" and "minimal" turn a thinking model's thought off,
// any other effort on; ringserve has no finer budget.
absl::Status ParseReasoning(const JsonObject& body, pb::Chat& chat) {
  RS_ASSIGN_OR_RETURN(const Json* reasoning, body.Object("reasoning"));
  if (reasoning == nullptr) return absl::OkStatus();
  RS_ASSIGN_OR_RETURN(std::optional<std::string> effort,
                      JsonObject(*reasoning, "reasoning").String("effort"));
  if (!effort.has_value()) return absl::OkStatus();
  if (*effort != "none" && *effort != "minimal" && *effort != "low" && *effort != "medium" &&
      *effort != "high") {
    return FieldError("reasoning.effort",
                      "must be \"none\", \"minimal\", \"low\", \"medium\" or \"high\"");
  }
  chat.set_enable_thinking(*effort != "none" && *effort != "minimal");
  return absl::OkStatus();
}

absl::Status RefuseUnsupported(const JsonObject& body) {
  for (const char* key : kUnsupported) {
    if (body.Find(key) != nullptr) return FieldError(key, "is not supported by this server");
  }
  RS_ASSIGN_OR_RETURN(std::optional<bool> background, body.Bool("background"));
  if (background.value_or(false)) {
    return FieldError("background", "is not supported: stream the response instead");
  }
  return absl::OkStatus();
}

// The settings a response object repeats, as the client gave them or their defaults.
absl::StatusOr<OrderedJson> Settings(const JsonObject& body, const ResponsesCall& call) {
  const auto given = [&](absl::string_view key, OrderedJson fallback) {
    const Json* value = body.Find(key);
    return value != nullptr ? Ordered(*value) : std::move(fallback);
  };
  RS_ASSIGN_OR_RETURN(const Json* metadata, body.Object("metadata"));
  if (metadata != nullptr) {
    for (const auto& [key, value] : metadata->items()) {
      if (!value.is_string()) {
        return FieldError(absl::StrCat("metadata.", key), "must be a string");
      }
    }
  }
  const pb::StopCriteria& stop = call.request.stop();
  return OrderedJson{
      {"instructions", given("instructions", nullptr)},
      {"max_output_tokens",
       stop.has_max_tokens() ? OrderedJson(stop.max_tokens()) : OrderedJson(nullptr)},
      {"metadata", given("metadata", OrderedJson::object())},
      {"parallel_tool_calls", given("parallel_tool_calls", true)},
      {"previous_response_id", given("previous_response_id", nullptr)},
      {"reasoning", given("reasoning", OrderedJson{{"effort", nullptr}, {"summary", nullptr}})},
      {"store", call.store},
      {"temperature", given("temperature", 1.0)},
      {"text", given("text", OrderedJson{{"format", {{"type", "text"}}}})},
      {"tool_choice", given("tool_choice", "auto")},
      {"tools", given("tools", OrderedJson::array())},
      {"top_logprobs", call.logprobs.has_value() ? OrderedJson(*call.logprobs) : OrderedJson(0)},
      {"top_p", given("top_p", 1.0)},
      {"truncation", given("truncation", "disabled")},
      {"user", given("user", nullptr)}};
}

}  // namespace

absl::StatusOr<ResponsesCall> ParseResponsesRequest(absl::string_view text) {
  RS_ASSIGN_OR_RETURN(const Json parsed, ParseBody(text));
  const JsonObject body(parsed, "");
  RS_RETURN_IF_ERROR(RefuseUnsupported(body));
  ResponsesCall call;
  pb::GenerateRequest& request = call.request;
  RS_ASSIGN_OR_RETURN(call.model, ModelField(body));
  RS_ASSIGN_OR_RETURN(std::optional<std::string> previous, body.String("previous_response_id"));
  if (previous.has_value()) {
    RS_ASSIGN_OR_RETURN(call.previous_session,
                        SessionOfResponseId(*previous, "previous_response_id"));
  }
  RS_ASSIGN_OR_RETURN(std::optional<bool> store, body.Bool("store"));
  call.store = store.value_or(true);
  RS_ASSIGN_OR_RETURN(std::optional<bool> stream, body.Bool("stream"));
  call.stream = stream.value_or(false);

  pb::Chat* chat = request.mutable_chat();
  RS_ASSIGN_OR_RETURN(std::optional<std::string> instructions, body.String("instructions"));
  if (instructions.has_value() && !instructions->empty()) {
    pb::ChatMessage* system = chat->add_messages();
    system->set_role("system");
    system->set_content(*instructions);
  }
  RS_RETURN_IF_ERROR(ParseInput(body, *chat));
  RS_RETURN_IF_ERROR(ParseToolFields(body, *chat));
  RS_RETURN_IF_ERROR(ParseReasoning(body, *chat));
  // Streamed replies stream their calls too, as function_call_arguments deltas.
  chat->set_stream_tool_calls(call.stream);

  RS_RETURN_IF_ERROR(ParseSamplingFields(body, *request.mutable_sampling()));
  RS_RETURN_IF_ERROR(ParseTextFormat(body, request));
  RS_ASSIGN_OR_RETURN(std::optional<int64_t> max_tokens,
                      body.Integer("max_output_tokens", 1, kInt32Max));
  if (max_tokens.has_value()) {
    request.mutable_stop()->set_max_tokens(static_cast<int32_t>(*max_tokens));
  }
  RS_ASSIGN_OR_RETURN(std::optional<int64_t> top, body.Integer("top_logprobs", 0, kMaxTopLogprobs));
  RS_ASSIGN_OR_RETURN(std::vector<std::string> include, body.Strings("include"));
  // Other values ask for outputs ringserve never makes (hosted tools' results, images) or
  // keeps in the clear (reasoning.encrypted_content: a reasoning item's text is plain, and
  // items sent back are skipped): accepted, as agents send them with every request.
  for (const std::string& what : include) {
    if (what == kIncludeLogprobs) call.logprobs = 0;
  }
  if (top.has_value() && *top > 0) call.logprobs = static_cast<int>(*top);
  // The worker's 0 means none: the token's own logprob alone still takes 1.
  if (call.logprobs.has_value()) request.set_logprobs(std::max(1, *call.logprobs));

  RS_ASSIGN_OR_RETURN(std::optional<std::string> truncation, body.String("truncation"));
  if (truncation == "auto") {
    if (!call.previous_session.empty()) {
      return FieldError("truncation",
                        "\"auto\" cannot shorten a stored conversation (previous_response_id); "
                        "resend the conversation as input instead");
    }
    request.set_truncate_prompt_tokens(-1);
  } else if (truncation.has_value() && *truncation != "disabled") {
    return FieldError("truncation", "must be \"auto\" or \"disabled\"");
  }
  RS_ASSIGN_OR_RETURN(const int32_t priority, PriorityField(body));
  request.set_priority(priority);
  RS_RETURN_IF_ERROR(body.String("user").status());  // type-checked only
  RS_ASSIGN_OR_RETURN(call.settings, Settings(body, call));
  return call;
}

std::string ResponseIdOfSession(absl::string_view session_id) {
  std::string id(session_id);
  for (char& c : id) {
    if (c == '#') c = '-';
  }
  return id;
}

absl::StatusOr<std::string> SessionOfResponseId(absl::string_view response_id,
                                                absl::string_view field) {
  // The ids this server makes: "resp_", hex digits, then a fork's "-f" and its number.
  if (!absl::StartsWith(response_id, kResponsePrefix) ||
      response_id.size() == sizeof(kResponsePrefix) - 1) {
    return FieldError(field,
                      absl::StrCat("'", response_id, "' is not a response id of this server"));
  }
  std::string session(response_id);
  for (size_t i = sizeof(kResponsePrefix) - 1; i < session.size(); ++i) {
    const char c = session[i];
    if (c == '-') {
      session[i] = '#';
    } else if (c == '#' || c == '/' || static_cast<unsigned char>(c) <= ' ') {
      return FieldError(field,
                        absl::StrCat("'", response_id, "' is not a response id of this server"));
    }
  }
  return session;
}

}  // namespace ringserve::openai
