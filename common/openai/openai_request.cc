#include "common/openai/openai_request.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/openai/json_fields.h"
#include "common/status_macros.h"

namespace ringserve::openai {
namespace {

namespace pb = ringserve::v1;

constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();
constexpr int64_t kInt32Min = std::numeric_limits<int32_t>::min();
// Prompts one /v1/completions call may batch; each is a Generate stream of its own.
constexpr int64_t kMaxPrompts = 256;
// OpenAI's default max_tokens for /v1/completions (chat completions have none).
constexpr int32_t kDefaultCompletionMaxTokens = 16;
// The most alternatives a token's logprobs may list (GenerateRequest.logprobs).
constexpr int64_t kMaxTopLogprobs = 20;

// Parameters that would change the reply and that ringserve cannot honour: refused by name.
constexpr const char* kUnsupported[] = {"suffix", "functions",  "function_call",
                                        "audio",  "prediction", "web_search_options"};

absl::Status RefuseUnsupported(const JsonObject& body) {
  for (const char* key : kUnsupported) {
    const Json* value = body.Find(key);
    if (value == nullptr || (value->is_string() && value->get<std::string>().empty())) continue;
    if (absl::string_view(key) == "functions" || absl::string_view(key) == "function_call") {
      return FieldError(key, "is not supported; use tools and tool_choice");
    }
    return FieldError(key, "is not supported by this server");
  }
  RS_ASSIGN_OR_RETURN(std::vector<std::string> modalities, body.Strings("modalities"));
  for (const std::string& m : modalities) {
    if (m != "text") return FieldError("modalities", "only \"text\" is supported");
  }
  return absl::OkStatus();
}

absl::Status ParseStop(const JsonObject& body, ApiKind kind, pb::StopCriteria& stop) {
  RS_ASSIGN_OR_RETURN(std::optional<int64_t> max_tokens,
                      body.Integer("max_completion_tokens", 0, kInt32Max));
  if (!max_tokens.has_value()) {
    RS_ASSIGN_OR_RETURN(max_tokens, body.Integer("max_tokens", 0, kInt32Max));
  }
  if (max_tokens.has_value()) {
    stop.set_max_tokens(static_cast<int32_t>(*max_tokens));
  } else if (kind == ApiKind::kCompletion) {
    stop.set_max_tokens(kDefaultCompletionMaxTokens);
  }
  RS_ASSIGN_OR_RETURN(std::vector<std::string> strings, body.Strings("stop"));
  for (std::string& s : strings) {
    if (!s.empty()) stop.add_stop(std::move(s));  // OpenAI's clients may send ""
  }
  RS_ASSIGN_OR_RETURN(std::vector<int64_t> ids, body.Integers("stop_token_ids", 0, kInt32Max));
  for (const int64_t id : ids) stop.add_stop_token_ids(static_cast<int32_t>(id));
  RS_ASSIGN_OR_RETURN(std::optional<bool> ignore_eos, body.Bool("ignore_eos"));
  stop.set_ignore_eos(ignore_eos.value_or(false));
  RS_ASSIGN_OR_RETURN(std::optional<int64_t> min_tokens, body.Integer("min_tokens", 0, kInt32Max));
  stop.set_min_tokens(static_cast<int32_t>(min_tokens.value_or(0)));
  RS_ASSIGN_OR_RETURN(std::optional<bool> include, body.Bool("include_stop_str_in_output"));
  stop.set_include_stop_str_in_output(include.value_or(false));
  return absl::OkStatus();
}

// response_format, or one of vLLM's guided_* parameters, into the request.
absl::Status ParseResponseFormat(const JsonObject& body, pb::ResponseFormat& format) {
  int given = 0;
  RS_ASSIGN_OR_RETURN(const Json* response_format, body.Object("response_format"));
  if (response_format != nullptr) {
    const JsonObject rf(*response_format, "response_format");
    RS_ASSIGN_OR_RETURN(std::optional<std::string> type, rf.String("type"));
    if (!type.has_value()) return FieldError(rf.Name("type"), "is required");
    if (*type == "json_object") {
      format.mutable_json_object();
      ++given;
    } else if (*type == "json_schema") {
      RS_ASSIGN_OR_RETURN(const Json* wrapper, rf.Object("json_schema"));
      if (wrapper == nullptr) return FieldError(rf.Name("json_schema"), "is required");
      const JsonObject js(*wrapper, rf.Name("json_schema"));
      const Json* schema = js.Find("schema");
      if (schema == nullptr) return FieldError(js.Name("schema"), "is required");
      RS_ASSIGN_OR_RETURN(std::string text, SchemaText(*schema, js.Name("schema")));
      format.mutable_json_schema()->set_schema(std::move(text));
      ++given;
    } else if (*type != "text") {
      return FieldError(
          rf.Name("type"),
          absl::StrCat("\"", *type, "\" is not one of text, json_object, json_schema"));
    }
  }
  if (const Json* guided_json = body.Find("guided_json"); guided_json != nullptr) {
    RS_ASSIGN_OR_RETURN(std::string text, SchemaText(*guided_json, "guided_json"));
    format.mutable_json_schema()->set_schema(std::move(text));
    ++given;
  }
  RS_ASSIGN_OR_RETURN(std::optional<std::string> regex, body.String("guided_regex"));
  if (regex.has_value()) {
    format.set_regex(*std::move(regex));
    ++given;
  }
  RS_ASSIGN_OR_RETURN(std::optional<std::string> grammar, body.String("guided_grammar"));
  if (grammar.has_value()) {
    format.set_grammar(*std::move(grammar));
    ++given;
  }
  if (body.Find("guided_choice") != nullptr) {
    RS_ASSIGN_OR_RETURN(std::vector<std::string> choices, body.Strings("guided_choice"));
    for (std::string& c : choices) format.mutable_choice()->add_choices(std::move(c));
    ++given;
  }
  if (given > 1) {
    return absl::InvalidArgumentError(
        "response_format, guided_json, guided_regex, guided_grammar and guided_choice exclude one "
        "another: give one");
  }
  return absl::OkStatus();
}

// What both kinds of generation share: sampling, stopping, n, streaming and ringserve's
// session fields. The input is set by the caller.
absl::StatusOr<GenerateCall> ParseCommon(const JsonObject& body, ApiKind kind,
                                         pb::GenerateRequest& request) {
  RS_RETURN_IF_ERROR(RefuseUnsupported(body));
  GenerateCall call;
  call.kind = kind;
  RS_ASSIGN_OR_RETURN(call.model, ModelField(body));
  RS_RETURN_IF_ERROR(ParseSamplingFields(body, *request.mutable_sampling()));
  RS_RETURN_IF_ERROR(ParseStop(body, kind, *request.mutable_stop()));
  RS_RETURN_IF_ERROR(ParseResponseFormat(body, *request.mutable_response_format()));
  if (request.response_format().format_case() == pb::ResponseFormat::FORMAT_NOT_SET) {
    request.clear_response_format();
  }
  RS_ASSIGN_OR_RETURN(std::optional<int64_t> n, body.Integer("n", 1, kInt32Max));
  call.n = static_cast<int>(n.value_or(1));
  RS_ASSIGN_OR_RETURN(std::optional<int64_t> best_of, body.Integer("best_of", 1, kInt32Max));
  if (best_of.has_value() && *best_of != call.n) {
    return FieldError("best_of", "is supported only equal to n (every completion is returned)");
  }
  if (call.n > 1) request.set_n(call.n);
  RS_ASSIGN_OR_RETURN(std::optional<bool> stream, body.Bool("stream"));
  call.stream = stream.value_or(false);
  RS_ASSIGN_OR_RETURN(const Json* stream_options, body.Object("stream_options"));
  if (stream_options != nullptr) {
    RS_ASSIGN_OR_RETURN(std::optional<bool> usage,
                        JsonObject(*stream_options, "stream_options").Bool("include_usage"));
    call.include_usage = usage.value_or(false);
    RS_ASSIGN_OR_RETURN(
        std::optional<bool> continuous,
        JsonObject(*stream_options, "stream_options").Bool("continuous_usage_stats"));
    call.continuous_usage = continuous.value_or(false);
  }
  RS_ASSIGN_OR_RETURN(const int32_t priority, PriorityField(body));
  request.set_priority(priority);
  RS_ASSIGN_OR_RETURN(std::optional<int64_t> truncate,
                      body.Integer("truncate_prompt_tokens", -1, kInt32Max));
  if (truncate.has_value()) request.set_truncate_prompt_tokens(static_cast<int32_t>(*truncate));
  RS_ASSIGN_OR_RETURN(std::optional<std::string> session, body.String("session_id"));
  request.set_session_id(session.value_or(""));
  RS_ASSIGN_OR_RETURN(std::optional<bool> append, body.Bool("append"));
  request.set_append(append.value_or(false));
  RS_ASSIGN_OR_RETURN(std::optional<int64_t> expected,
                      body.Integer("expected_history_tokens", 0, kInt32Max));
  if (expected.has_value()) request.set_expected_history_tokens(static_cast<int32_t>(*expected));
  RS_ASSIGN_OR_RETURN(std::optional<bool> token_ids, body.Bool("return_token_ids"));
  call.token_ids = token_ids.value_or(false);
  request.set_return_prompt_token_ids(call.token_ids);
  RS_RETURN_IF_ERROR(body.String("user").status());  // type-checked only
  return call;
}

// The logprobs a request asks of the worker for `top` alternatives: the worker's 0 means
// none, so the token's own logprob alone still takes 1.
void AskLogprobs(const std::optional<int>& top, pb::GenerateRequest& request) {
  if (top.has_value()) request.set_logprobs(std::max(1, *top));
}

// "prompt": a string, an array of strings, an array of token ids or an array of those.
absl::StatusOr<std::vector<pb::GenerateRequest>> PromptRequests(const JsonObject& body,
                                                                const pb::GenerateRequest& base) {
  const Json* prompt = body.Find("prompt");
  if (prompt == nullptr) return FieldError("prompt", "is required");
  std::vector<pb::GenerateRequest> requests;
  const auto add_text = [&](std::string text) {
    requests.push_back(base);
    requests.back().set_text(std::move(text));
  };
  const auto add_tokens = [&](const Json& ids, const std::string& field) -> absl::Status {
    requests.push_back(base);
    pb::TokenIds* tokens = requests.back().mutable_tokens();
    for (size_t i = 0; i < ids.size(); ++i) {
      RS_ASSIGN_OR_RETURN(int64_t id,
                          WholeNumber(ids[i], absl::StrCat(field, "[", i, "]"), 0, kInt32Max));
      tokens->add_ids(static_cast<int32_t>(id));
    }
    if (tokens->ids().empty()) return FieldError(field, "holds no token ids");
    return absl::OkStatus();
  };
  if (prompt->is_string()) {
    add_text(prompt->get<std::string>());
    return requests;
  }
  if (!prompt->is_array() || prompt->empty()) {
    return FieldError("prompt",
                      "must be a string, an array of strings, an array of token ids, or an array "
                      "of such arrays");
  }
  if ((*prompt)[0].is_number()) {
    RS_RETURN_IF_ERROR(add_tokens(*prompt, "prompt"));
    return requests;
  }
  if (static_cast<int64_t>(prompt->size()) > kMaxPrompts) {
    return FieldError("prompt", absl::StrCat("holds ", prompt->size(), " prompts; at most ",
                                             kMaxPrompts, " a request"));
  }
  for (size_t i = 0; i < prompt->size(); ++i) {
    const Json& one = (*prompt)[i];
    const std::string field = absl::StrCat("prompt[", i, "]");
    if (one.is_string()) {
      add_text(one.get<std::string>());
    } else if (one.is_array()) {
      RS_RETURN_IF_ERROR(add_tokens(one, field));
    } else {
      return FieldError(field, "must be a string or an array of token ids");
    }
  }
  return requests;
}

}  // namespace

absl::StatusOr<std::string> SchemaText(const Json& schema, absl::string_view field) {
  if (schema.is_string()) return schema.get<std::string>();
  if (!schema.is_object() && !schema.is_boolean()) {
    return FieldError(field, "must be a JSON Schema object");
  }
  return schema.dump(-1, ' ', false, Json::error_handler_t::replace);
}

absl::StatusOr<std::string> TextContent(const JsonObject& holder,
                                        std::initializer_list<absl::string_view> part_types) {
  const Json* content = holder.Find("content");
  if (content == nullptr) return std::string();
  if (content->is_string()) return content->get<std::string>();
  if (!content->is_array()) {
    return FieldError(holder.Name("content"), "must be a string or an array of content parts");
  }
  std::vector<std::string> texts;
  for (size_t i = 0; i < content->size(); ++i) {
    const std::string field = absl::StrCat(holder.Name("content"), "[", i, "]");
    if (!(*content)[i].is_object()) return FieldError(field, "must be a content part object");
    const JsonObject part((*content)[i], field);
    RS_ASSIGN_OR_RETURN(std::optional<std::string> type, part.String("type"));
    if (std::find(part_types.begin(), part_types.end(), type.value_or("")) == part_types.end()) {
      return FieldError(part.Name("type"),
                        absl::StrCat("\"", type.value_or(""), "\": only ",
                                     absl::StrJoin(part_types, " and "), " parts are supported"));
    }
    RS_ASSIGN_OR_RETURN(std::optional<std::string> text, part.String("text"));
    texts.push_back(text.value_or(""));
  }
  return absl::StrJoin(texts, "\n");
}

namespace {

// A function tool's name (required), description and parameters (a JSON Schema).
absl::Status ParseFunctionTool(const JsonObject& function, pb::Tool& tool) {
  RS_ASSIGN_OR_RETURN(std::optional<std::string> name, function.String("name"));
  if (!name.has_value()) return FieldError(function.Name("name"), "is required");
  tool.set_name(*name);
  RS_ASSIGN_OR_RETURN(std::optional<std::string> description, function.String("description"));
  tool.set_description(description.value_or(""));
  if (const Json* parameters = function.Find("parameters"); parameters != nullptr) {
    RS_ASSIGN_OR_RETURN(std::string text, SchemaText(*parameters, function.Name("parameters")));
    tool.set_parameters(std::move(text));
  }
  return absl::OkStatus();
}

// A named tool_choice: {"type": "function", "function": {"name": ...}} (chat's) or
// {"type": "function", "name": ...} (the Responses API's).
absl::Status ParseNamedToolChoice(const JsonObject& named, pb::Chat& chat) {
  RS_ASSIGN_OR_RETURN(std::optional<std::string> type, named.String("type"));
  if (type.has_value() && *type != "function") {
    return FieldError(named.Name("type"), "only \"function\" choices are supported");
  }
  RS_ASSIGN_OR_RETURN(const Json* function, named.Object("function"));
  const JsonObject holder =
      function != nullptr ? JsonObject(*function, named.Name("function")) : JsonObject(named);
  RS_ASSIGN_OR_RETURN(std::optional<std::string> name, holder.String("name"));
  if (!name.has_value()) return FieldError(holder.Name("name"), "is required");
  chat.mutable_tool_choice()->set_mode(pb::ToolChoice::MODE_REQUIRED);
  chat.mutable_tool_choice()->set_name(*name);
  return absl::OkStatus();
}

}  // namespace

absl::Status ParseToolFields(const JsonObject& body, pb::Chat& chat) {
  RS_ASSIGN_OR_RETURN(const Json* tools, body.Array("tools"));
  for (size_t i = 0; tools != nullptr && i < tools->size(); ++i) {
    const std::string field = absl::StrCat("tools[", i, "]");
    if (!(*tools)[i].is_object()) return FieldError(field, "must be an object");
    const JsonObject tool((*tools)[i], field);
    RS_ASSIGN_OR_RETURN(std::optional<std::string> type, tool.String("type"));
    if (type.has_value() && *type != "function") {
      return FieldError(tool.Name("type"),
                        absl::StrCat("\"", *type, "\": only \"function\" tools are supported"));
    }
    RS_ASSIGN_OR_RETURN(const Json* function, tool.Object("function"));
    RS_RETURN_IF_ERROR(ParseFunctionTool(
        function != nullptr ? JsonObject(*function, tool.Name("function")) : JsonObject(tool),
        *chat.add_tools()));
  }
  const Json* choice = body.Find("tool_choice");
  if (choice != nullptr && choice->is_string()) {
    const auto mode = choice->get<std::string>();
    if (mode == "none") {
      chat.mutable_tool_choice()->set_mode(pb::ToolChoice::MODE_NONE);
    } else if (mode == "required") {
      chat.mutable_tool_choice()->set_mode(pb::ToolChoice::MODE_REQUIRED);
    } else if (mode != "auto") {
      return FieldError("tool_choice", "must be \"none\", \"auto\", \"required\" or a function");
    }
  } else if (choice != nullptr) {
    if (!choice->is_object()) return FieldError("tool_choice", "must be a string or an object");
    RS_RETURN_IF_ERROR(ParseNamedToolChoice(JsonObject(*choice, "tool_choice"), chat));
  }
  RS_ASSIGN_OR_RETURN(std::optional<bool> parallel, body.Bool("parallel_tool_calls"));
  if (parallel.has_value()) chat.set_parallel_tool_calls(*parallel);
  return absl::OkStatus();
}

absl::StatusOr<std::string> ModelField(const JsonObject& body) {
  RS_ASSIGN_OR_RETURN(std::optional<std::string> model, body.String("model"));
  return model.value_or("");
}

absl::StatusOr<int32_t> PriorityField(const JsonObject& body) {
  RS_ASSIGN_OR_RETURN(std::optional<int64_t> priority,
                      body.Integer("priority", kInt32Min, kInt32Max));
  return static_cast<int32_t>(priority.value_or(0));
}

absl::Status ParseSamplingFields(const JsonObject& body, pb::SamplingParams& sampling) {
  RS_ASSIGN_OR_RETURN(std::optional<double> temperature, body.Number("temperature"));
  if (temperature.has_value()) sampling.set_temperature(static_cast<float>(*temperature));
  RS_ASSIGN_OR_RETURN(std::optional<double> top_p, body.Number("top_p"));
  if (top_p.has_value()) sampling.set_top_p(static_cast<float>(*top_p));
  // vLLM's top_k takes -1 (and 0) for "all tokens", as GenerateRequest's 0 does.
  RS_ASSIGN_OR_RETURN(std::optional<int64_t> top_k, body.Integer("top_k", -1, kInt32Max));
  if (top_k.has_value()) sampling.set_top_k(static_cast<int32_t>(std::max<int64_t>(0, *top_k)));
  RS_ASSIGN_OR_RETURN(std::optional<double> min_p, body.Number("min_p"));
  if (min_p.has_value()) sampling.set_min_p(static_cast<float>(*min_p));
  RS_ASSIGN_OR_RETURN(std::optional<double> repetition, body.Number("repetition_penalty"));
  if (repetition.has_value()) sampling.set_repetition_penalty(static_cast<float>(*repetition));
  RS_ASSIGN_OR_RETURN(std::optional<double> presence, body.Number("presence_penalty"));
  if (presence.has_value()) sampling.set_presence_penalty(static_cast<float>(*presence));
  RS_ASSIGN_OR_RETURN(std::optional<double> frequency, body.Number("frequency_penalty"));
  if (frequency.has_value()) sampling.set_frequency_penalty(static_cast<float>(*frequency));
  // Any 64-bit seed, negative ones as their two's complement (clients pass -1 too).
  RS_ASSIGN_OR_RETURN(std::optional<int64_t> seed,
                      body.Integer("seed", std::numeric_limits<int64_t>::min(),
                                   std::numeric_limits<int64_t>::max()));
  if (seed.has_value()) sampling.set_seed(static_cast<uint64_t>(*seed));
  RS_ASSIGN_OR_RETURN(const Json* bias, body.Object("logit_bias"));
  if (bias != nullptr) {
    for (const auto& [key, value] : bias->items()) {
      const std::string field = absl::StrCat("logit_bias[\"", key, "\"]");
      int32_t id = 0;
      if (!absl::SimpleAtoi(key, &id) || id < 0) {
        return FieldError(field, "keys must be token ids in decimal");
      }
      if (!value.is_number()) return FieldError(field, "must be a number");
      (*sampling.mutable_logit_bias())[id] = value.get<float>();
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<GenerateCall> ParseCompletionRequest(absl::string_view text) {
  RS_ASSIGN_OR_RETURN(const Json parsed, ParseBody(text));
  const JsonObject body(parsed, "");
  pb::GenerateRequest base;
  RS_ASSIGN_OR_RETURN(GenerateCall call, ParseCommon(body, ApiKind::kCompletion, base));
  RS_ASSIGN_OR_RETURN(std::optional<int64_t> logprobs,
                      body.Integer("logprobs", 0, kMaxTopLogprobs));
  if (logprobs.has_value()) call.logprobs = static_cast<int>(*logprobs);
  AskLogprobs(call.logprobs, base);
  RS_ASSIGN_OR_RETURN(std::optional<bool> echo, body.Bool("echo"));
  call.echo = echo.value_or(false);
  if (call.echo && call.logprobs.has_value()) {
    // The prompt's own logprobs lead (evaluation harnesses score a continuation so).
    if (call.n > 1) return FieldError("echo", "with logprobs takes n = 1");
    base.set_prompt_logprobs(*call.logprobs);
  }
  RS_ASSIGN_OR_RETURN(call.requests, PromptRequests(body, base));
  if (call.requests.size() > 1 && !base.session_id().empty()) {
    return FieldError("session_id", "takes one prompt, not an array of them");
  }
  if (call.echo) {
    for (const pb::GenerateRequest& r : call.requests) {
      if (r.has_tokens()) return FieldError("echo", "needs prompts given as text");
    }
  }
  return call;
}

namespace {

absl::Status ParseToolCalls(const JsonObject& message, pb::ChatMessage& out) {
  RS_ASSIGN_OR_RETURN(const Json* calls, message.Array("tool_calls"));
  if (calls == nullptr) return absl::OkStatus();
  for (size_t i = 0; i < calls->size(); ++i) {
    const std::string field = absl::StrCat(message.Name("tool_calls"), "[", i, "]");
    if (!(*calls)[i].is_object()) return FieldError(field, "must be an object");
    const JsonObject call((*calls)[i], field);
    pb::ToolCall* pb_call = out.add_tool_calls();
    RS_ASSIGN_OR_RETURN(std::optional<std::string> id, call.String("id"));
    pb_call->set_id(id.value_or(""));
    RS_ASSIGN_OR_RETURN(const Json* function, call.Object("function"));
    if (function == nullptr) return FieldError(call.Name("function"), "is required");
    const JsonObject fn(*function, call.Name("function"));
    RS_ASSIGN_OR_RETURN(std::optional<std::string> name, fn.String("name"));
    if (!name.has_value()) return FieldError(fn.Name("name"), "is required");
    pb_call->set_name(*name);
    const Json* arguments = fn.Find("arguments");
    if (arguments != nullptr && arguments->is_string()) {
      pb_call->set_arguments(arguments->get<std::string>());
    } else if (arguments != nullptr && arguments->is_object()) {
      pb_call->set_arguments(arguments->dump(-1, ' ', false, Json::error_handler_t::replace));
    } else if (arguments != nullptr) {
      return FieldError(fn.Name("arguments"), "must be a string holding a JSON object");
    } else {
      pb_call->set_arguments("{}");
    }
  }
  return absl::OkStatus();
}

absl::Status ParseMessages(const JsonObject& body, pb::Chat& chat) {
  RS_ASSIGN_OR_RETURN(const Json* messages, body.Array("messages"));
  if (messages == nullptr || messages->empty()) {
    return FieldError("messages", "must be a non-empty array of messages");
  }
  for (size_t i = 0; i < messages->size(); ++i) {
    const std::string field = absl::StrCat("messages[", i, "]");
    if (!(*messages)[i].is_object()) return FieldError(field, "must be an object");
    const JsonObject message((*messages)[i], field);
    pb::ChatMessage* out = chat.add_messages();
    RS_ASSIGN_OR_RETURN(std::optional<std::string> role, message.String("role"));
    if (!role.has_value()) return FieldError(message.Name("role"), "is required");
    // OpenAI's newer name for the system role.
    out->set_role(*role == "developer" ? "system" : *role);
    RS_ASSIGN_OR_RETURN(std::string content, TextContent(message, {"text"}));
    out->set_content(std::move(content));
    RS_RETURN_IF_ERROR(ParseToolCalls(message, *out));
    RS_ASSIGN_OR_RETURN(std::optional<std::string> call_id, message.String("tool_call_id"));
    out->set_tool_call_id(call_id.value_or(""));
  }
  return absl::OkStatus();
}

// Thinking switches and the reply's prefill: chat_template_kwargs.enable_thinking (vLLM's,
// and "thinking" as some templates name it), continue_final_message and
// add_generation_prompt.
absl::Status ParseTemplateOptions(const JsonObject& body, pb::Chat& chat) {
  RS_ASSIGN_OR_RETURN(const Json* kwargs, body.Object("chat_template_kwargs"));
  if (kwargs != nullptr) {
    const JsonObject k(*kwargs, "chat_template_kwargs");
    RS_ASSIGN_OR_RETURN(std::optional<bool> thinking, k.Bool("enable_thinking"));
    if (!thinking.has_value()) {
      RS_ASSIGN_OR_RETURN(thinking, k.Bool("thinking"));
    }
    if (thinking.has_value()) chat.set_enable_thinking(*thinking);
  }
  RS_ASSIGN_OR_RETURN(std::optional<bool> continue_final, body.Bool("continue_final_message"));
  chat.set_continue_final_message(continue_final.value_or(false));
  RS_ASSIGN_OR_RETURN(std::optional<bool> generation_prompt, body.Bool("add_generation_prompt"));
  if (generation_prompt == false && !chat.continue_final_message()) {
    return FieldError("add_generation_prompt",
                      "false is supported only with continue_final_message: true");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<GenerateCall> ParseChatRequest(absl::string_view text) {
  RS_ASSIGN_OR_RETURN(const Json parsed, ParseBody(text));
  const JsonObject body(parsed, "");
  pb::GenerateRequest request;
  RS_ASSIGN_OR_RETURN(GenerateCall call, ParseCommon(body, ApiKind::kChat, request));
  RS_ASSIGN_OR_RETURN(std::optional<bool> logprobs, body.Bool("logprobs"));
  RS_ASSIGN_OR_RETURN(std::optional<int64_t> top, body.Integer("top_logprobs", 0, kMaxTopLogprobs));
  if (logprobs.value_or(false)) {
    call.logprobs = static_cast<int>(top.value_or(0));
  } else if (top.value_or(0) > 0) {
    return FieldError("top_logprobs", "needs logprobs: true");
  }
  AskLogprobs(call.logprobs, request);
  pb::Chat* chat = request.mutable_chat();
  RS_RETURN_IF_ERROR(ParseMessages(body, *chat));
  RS_RETURN_IF_ERROR(ParseToolFields(body, *chat));
  RS_RETURN_IF_ERROR(ParseTemplateOptions(body, *chat));
  // Streamed replies stream their calls too, as OpenAI's tool_calls deltas.
  chat->set_stream_tool_calls(call.stream);
  call.requests.push_back(std::move(request));
  return call;
}

absl::StatusOr<EmbedCall> ParseEmbeddingRequest(absl::string_view text) {
  RS_ASSIGN_OR_RETURN(const Json parsed, ParseBody(text));
  const JsonObject body(parsed, "");
  EmbedCall call;
  RS_ASSIGN_OR_RETURN(call.model, ModelField(body));
  const Json* input = body.Find("input");
  if (input == nullptr) return FieldError("input", "is required");
  pb::EmbedRequest& request = call.request;
  const auto add_tokens = [&](const Json& ids, const std::string& field) -> absl::Status {
    pb::TokenIds* tokens = request.add_inputs()->mutable_tokens();
    for (size_t i = 0; i < ids.size(); ++i) {
      RS_ASSIGN_OR_RETURN(int64_t id,
                          WholeNumber(ids[i], absl::StrCat(field, "[", i, "]"), 0, kInt32Max));
      tokens->add_ids(static_cast<int32_t>(id));
    }
    return absl::OkStatus();
  };
  if (input->is_string()) {
    request.add_inputs()->set_text(input->get<std::string>());
  } else if (input->is_array() && !input->empty() && (*input)[0].is_number()) {
    RS_RETURN_IF_ERROR(add_tokens(*input, "input"));
  } else if (input->is_array() && !input->empty()) {
    for (size_t i = 0; i < input->size(); ++i) {
      const Json& one = (*input)[i];
      const std::string field = absl::StrCat("input[", i, "]");
      if (one.is_string()) {
        request.add_inputs()->set_text(one.get<std::string>());
      } else if (one.is_array()) {
        RS_RETURN_IF_ERROR(add_tokens(one, field));
      } else {
        return FieldError(field, "must be a string or an array of token ids");
      }
    }
  } else {
    return FieldError("input",
                      "must be a string, an array of strings, an array of token ids, or "
                      "an array of such arrays");
  }
  RS_ASSIGN_OR_RETURN(std::optional<int64_t> dimensions, body.Integer("dimensions", 1, kInt32Max));
  if (dimensions.has_value()) request.set_dimensions(static_cast<int32_t>(*dimensions));
  RS_ASSIGN_OR_RETURN(std::optional<std::string> encoding, body.String("encoding_format"));
  if (encoding.has_value() && *encoding != "float" && *encoding != "base64") {
    return FieldError("encoding_format", "must be \"float\" or \"base64\"");
  }
  call.base64 = encoding == "base64";
  RS_ASSIGN_OR_RETURN(std::optional<bool> normalize, body.Bool("normalize"));
  if (normalize.has_value()) request.set_normalize(*normalize);
  RS_ASSIGN_OR_RETURN(std::optional<int64_t> truncate,
                      body.Integer("truncate_prompt_tokens", -1, kInt32Max));
  if (truncate.has_value()) request.set_truncate_prompt_tokens(static_cast<int32_t>(*truncate));
  RS_ASSIGN_OR_RETURN(const int32_t priority, PriorityField(body));
  request.set_priority(priority);
  RS_RETURN_IF_ERROR(body.String("user").status());  // type-checked only
  return call;
}

absl::StatusOr<TokenizeCall> ParseTokenizeRequest(absl::string_view text) {
  RS_ASSIGN_OR_RETURN(const Json parsed, ParseBody(text));
  const JsonObject body(parsed, "");
  TokenizeCall call;
  RS_ASSIGN_OR_RETURN(call.model, ModelField(body));
  RS_ASSIGN_OR_RETURN(std::optional<bool> token_strs, body.Bool("return_token_strs"));
  call.token_strs = token_strs.value_or(false);
  RS_ASSIGN_OR_RETURN(std::optional<bool> special, body.Bool("add_special_tokens"));
  const bool has_prompt = body.Find("prompt") != nullptr;
  if (has_prompt == (body.Find("messages") != nullptr)) {
    return absl::InvalidArgumentError("give one of prompt and messages");
  }
  if (has_prompt) {
    RS_ASSIGN_OR_RETURN(std::optional<std::string> prompt, body.String("prompt"));
    call.request.set_text(*std::move(prompt));
    // vLLM's default for a prompt: the special tokens a new context gets.
    call.request.set_add_special_tokens(special.value_or(true));
    return call;
  }
  pb::Chat* chat = call.request.mutable_chat();
  RS_RETURN_IF_ERROR(ParseMessages(body, *chat));
  RS_RETURN_IF_ERROR(ParseToolFields(body, *chat));
  RS_RETURN_IF_ERROR(ParseTemplateOptions(body, *chat));
  return call;
}

absl::StatusOr<DetokenizeCall> ParseDetokenizeRequest(absl::string_view text) {
  RS_ASSIGN_OR_RETURN(const Json parsed, ParseBody(text));
  const JsonObject body(parsed, "");
  DetokenizeCall call;
  RS_ASSIGN_OR_RETURN(call.model, ModelField(body));
  RS_ASSIGN_OR_RETURN(const Json* tokens, body.Array("tokens"));
  if (tokens == nullptr) return FieldError("tokens", "is required");
  for (size_t i = 0; i < tokens->size(); ++i) {
    RS_ASSIGN_OR_RETURN(int64_t id,
                        WholeNumber((*tokens)[i], absl::StrCat("tokens[", i, "]"), 0, kInt32Max));
    call.request.add_token_ids(static_cast<int32_t>(id));
  }
  return call;
}

}  // namespace ringserve::openai
