#include "worker/tokenizer/chat_format.h"

#include <algorithm>
#include <array>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/status_macros.h"
#include "worker/tokenizer/deepseek_chat.h"
#include "worker/tokenizer/tool_calls.h"
#include "worker/tokenizer/zephyr_chat.h"

namespace ringserve::tokenizer {
namespace {

constexpr std::array<std::string_view, 3> kRoles = {"system", "user", "assistant"};
constexpr std::string_view kThoughtClose = "</think>";

// A thinking model's earlier reply as its template writes it back: the answer after the
// thought, without the newlines that open it.
std::string_view AnswerOf(std::string_view reply) {
  const size_t end = reply.rfind(kThoughtClose);
  if (end == std::string_view::npos) return reply;
  std::string_view answer = reply.substr(end + kThoughtClose.size());
  while (!answer.empty() && answer.front() == '\n') answer.remove_prefix(1);
  return answer;
}

bool IsInstFormat(ChatFormat format) {
  return format == ChatFormat::kLlama2 || format == ChatFormat::kMistral;
}

// The formats whose markers are text, ending turns with the vocabulary's EOS.
bool EndsTurnsWithEos(ChatFormat format) {
  return IsInstFormat(format) || format == ChatFormat::kZephyr;
}

// What each format wraps a message in (the [INST] formats have their own renderer).
struct Markers {
  std::string_view start;  // once, at the start of a conversation (may be empty)
  // Before the first message of an appended turn: what the template writes after the
  // end-of-turn token the session's last reply ended on.
  std::string_view resume;
  std::string_view open;  // before the role
  std::string_view after_role;
  std::string_view close;        // after the content
  std::string_view end_of_turn;  // the control token that ends a turn
  std::string_view header_end;   // another control token the header needs (may be empty)
  bool trim_content;
};

Markers MarkersOf(ChatFormat format) {
  if (format != ChatFormat::kChatMl) {  // the Llama 3 family (kNone and [INST]: unused)
    return {.start = "<|begin_of_text|>",
            .resume = "",
            .open = "<|start_header_id|>",
            .after_role = "<|end_header_id|>\n\n",
            .close = "<|eot_id|>",
            .end_of_turn = "<|eot_id|>",
            .header_end = "<|end_header_id|>",
            .trim_content = true};
  }
  return {.start = "",
          .resume = "\n",
          .open = "<|im_start|>",
          .after_role = "\n",
          .close = "<|im_end|>\n",
          .end_of_turn = "<|im_end|>",
          .header_end = "",
          .trim_content = false};
}

// Without leading and trailing ASCII whitespace (Jinja's trim).
std::string_view Trimmed(std::string_view s) {
  const size_t begin = s.find_first_not_of(" \t\n\r\f\v");
  if (begin == std::string_view::npos) return {};
  return s.substr(begin, s.find_last_not_of(" \t\n\r\f\v") - begin + 1);
}

// Without trailing spaces: mistral-common's tokenizer v2 and later write a reply so.
std::string_view WithoutTrailingSpaces(std::string_view s) {
  const size_t end = s.find_last_not_of(' ');
  return end == std::string_view::npos ? std::string_view() : s.substr(0, end + 1);
}

// Template text (markers parsed) or a message's content (plain text continuing the header
// before it: no SentencePiece dummy prefix, as when the two are one piece of text).
void Append(const Tokenizer& tokenizer, std::string_view text, bool markers,
            std::vector<int32_t>* out) {
  const std::vector<int32_t> ids = tokenizer.Encode(
      text,
      {.add_bos = false, .add_eos = false, .parse_special = markers, .continues_text = !markers});
  out->insert(out->end(), ids.begin(), ids.end());
}

// The first control token of `format` the vocabulary lacks, if any.
std::optional<std::string_view> MissingMarker(const Tokenizer& tokenizer, ChatFormat format) {
  if (format == ChatFormat::kDeepSeek) return MissingDeepSeekMarker(tokenizer);
  if (EndsTurnsWithEos(format)) {
    if (tokenizer.vocab().bos_id < 0) return "<s>";
    if (tokenizer.vocab().eos_id < 0) return "</s>";
    return std::nullopt;
  }
  const Markers m = MarkersOf(format);
  for (const std::string_view marker : {m.start, m.open, m.end_of_turn, m.header_end}) {
    if (!marker.empty() && !ControlId(tokenizer, marker).has_value()) return marker;
  }
  return std::nullopt;
}

// The [INST] formats' conversation shape: an optional system message, then user and
// assistant messages alternating, starting and ending with a user message.
absl::Status CheckInstRoles(ChatFormat format, std::span<const ChatMessage> messages) {
  const size_t first = messages[0].role == "system" ? 1 : 0;
  const auto refuse = [&](size_t i) {
    return absl::InvalidArgumentError(
        absl::StrCat("chat.messages[", i, "]: the ", std::string(ChatFormatName(format)),
                     " chat format takes an optional system message, then user and assistant "
                     "messages in turn, starting and ending with a user message"));
  };
  // An odd count of turns after the system message ends on a user message.
  if ((messages.size() - first) % 2 == 0) return refuse(messages.size() - 1);
  for (size_t i = first; i < messages.size(); ++i) {
    if (messages[i].role != ((i - first) % 2 == 0 ? "user" : "assistant")) return refuse(i);
  }
  return absl::OkStatus();
}

// Mistral's conversation shape with tool turns: an optional system message, then user
// messages each answered by the assistant, where an assistant turn that calls tools is
// answered by one or more tool results before the assistant goes on; it ends with a user
// message or results, which the reply follows. An appended turn may open with results.
absl::Status CheckMistralToolRoles(std::span<const ChatMessage> messages, bool start) {
  const size_t first = messages[0].role == "system" ? 1 : 0;
  std::string_view expected = start ? "user" : "user or tool";
  for (size_t i = first; i <= messages.size(); ++i) {
    const std::string_view role = i < messages.size() ? std::string_view(messages[i].role) : "";
    // The reply follows a user message or results: the assistant is expected next.
    const std::string_view wanted = i == messages.size() ? "assistant" : role;
    const bool fits = !wanted.empty() && expected.find(wanted) != std::string_view::npos;
    if (!fits) {
      return absl::InvalidArgumentError(absl::StrCat(
          "chat.messages[", std::min(i, messages.size() - 1), "]: the mistral chat format ",
          i == messages.size() ? "cannot end here"
                               : absl::StrCat("expects ", std::string(expected)),
          " (an optional system message, then user and assistant turns in turn, an assistant "
          "turn that calls tools answered by tool results, ending with a user message or "
          "results)"));
    }
    if (i == messages.size()) break;
    if (role == "user") {
      expected = "assistant";
    } else if (role == "assistant") {
      expected = messages[i].tool_calls.empty() ? "user" : "tool";
    } else {
      expected = "tool or assistant";
    }
  }
  return absl::OkStatus();
}

// Mistral's tool turns (tokenizer v3's markers): the calls of an assistant turn, or a result.
absl::Status AppendMistralToolTurn(const Tokenizer& tokenizer, const MistralToolMarkers& markers,
                                   const ChatMessage& m, size_t i, std::vector<int32_t>* out) {
  if (m.role == "tool") {
    if (!markers.v13) {  // an id it writes
      RS_RETURN_IF_ERROR(CheckCallId(ChatFormat::kMistral, m.tool_call_id,
                                     absl::StrCat("chat.messages[", i, "].tool_call_id")));
    }
    out->push_back(markers.tool_results);
    if (markers.v13) {  // the content alone
      AppendChatText(tokenizer, m.content, false, out);
    } else if (markers.tool_content.has_value()) {
      AppendChatText(tokenizer, m.tool_call_id, false, out);
      out->push_back(*markers.tool_content);
      AppendChatText(tokenizer, m.content, false, out);
    } else {
      AppendChatText(tokenizer, MistralToolResult(m.content, m.tool_call_id), false, out);
    }
    out->push_back(markers.tool_results_end);
    return absl::OkStatus();
  }
  const std::string field = absl::StrCat("chat.messages[", i, "].tool_calls");
  if (!m.content.empty()) AppendChatText(tokenizer, WithoutTrailingSpaces(m.content), false, out);
  if (markers.args.has_value()) {  // v11: [TOOL_CALLS] name [CALL_ID] id [ARGS] arguments
    for (size_t c = 0; c < m.tool_calls.size(); ++c) {
      const ToolCall& call = m.tool_calls[c];
      const std::string call_field = absl::StrCat(field, "[", c, "]");
      RS_ASSIGN_OR_RETURN(const std::string arguments, ToolArgumentsText(call, call_field));
      out->push_back(markers.tool_calls);
      AppendChatText(tokenizer, call.name, false, out);
      if (markers.call_id.has_value()) {  // v11 writes the id; v13 has none
        RS_RETURN_IF_ERROR(
            CheckCallId(ChatFormat::kMistral, call.id, absl::StrCat(call_field, ".id")));
        out->push_back(*markers.call_id);
        AppendChatText(tokenizer, call.id, false, out);
      }
      out->push_back(*markers.args);
      AppendChatText(tokenizer, arguments, false, out);
    }
  } else {
    RS_ASSIGN_OR_RETURN(const std::string calls,
                        ToolCallsText(ChatFormat::kMistral, m.tool_calls, false, field));
    out->push_back(markers.tool_calls);
    AppendChatText(tokenizer, calls, false, out);
  }
  out->push_back(tokenizer.vocab().eos_id);
  return absl::OkStatus();
}

// Llama 2 chat and Mistral Instruct (chat_format.h): `messages` are the turns after the
// system message; `system` (none when empty) joins the first user message (Llama 2, Mistral
// v1) or the last (Mistral v3). Mistral v3 offers `tools` before the last user message;
// `markers`: its tool markers where the conversation uses tools (else null).
// A conversation's system message for EncodeInstChat: `markers` when it is the template's
// default, whose control-token spellings (Magistral's [THINK]) are markers rather than text.
struct InstSystem {
  std::string_view text;
  bool markers = false;
};

absl::StatusOr<std::vector<int32_t>> EncodeInstChat(const Tokenizer& tokenizer, ChatFormat format,
                                                    std::span<const ChatMessage> messages,
                                                    bool start, InstSystem system_message,
                                                    std::span<const ChatTool> tools,
                                                    const MistralToolMarkers* markers) {
  const std::string_view system = system_message.text;
  const int32_t bos = tokenizer.vocab().bos_id;
  const int32_t eos = tokenizer.vocab().eos_id;
  std::vector<int32_t> out;
  if (format == ChatFormat::kLlama2) {
    for (size_t i = 0; i < messages.size(); ++i) {
      const ChatMessage& m = messages[i];
      if (m.role == "user") {
        // <s>[INST] ... [/INST] opens every user turn; the reply continues its text.
        out.push_back(bos);
        const std::string sys =
            i == 0 && !system.empty()
                ? absl::StrCat("<<SYS>>\n", std::string(Trimmed(system)), "\n<</SYS>>\n\n")
                : std::string();
        AppendChatText(tokenizer,
                       absl::StrCat("[INST] ", sys, std::string(Trimmed(m.content)), " [/INST]"),
                       false, &out);
      } else if (m.role == "assistant") {
        AppendChatText(tokenizer, absl::StrCat(" ", std::string(Trimmed(m.content)), " "), true,
                       &out);
        out.push_back(eos);
      }
    }
    return out;
  }
  // Mistral: tokenizer v3 has [INST] and [/INST] as control tokens, v1 spells them as text.
  const std::optional<int32_t> open = ControlId(tokenizer, "[INST]");
  const std::optional<int32_t> close = ControlId(tokenizer, "[/INST]");
  const bool v3 = open.has_value() && close.has_value();
  // A vocabulary with the tool markers but [INST] spelled as text.
  if (markers != nullptr && !v3) {
    return absl::InvalidArgumentError(
        "chat.tools: this mistral vocabulary spells [INST] as text; tool calling needs "
        "Mistral's tokenizer v3 or later");
  }
  size_t last_user = 0;
  for (size_t i = 0; i < messages.size(); ++i) {
    if (messages[i].role == "user") last_user = i;
  }
  // The user message the tools go before: the last one a request renders, or (v13) the
  // conversation's first (none in an appended turn, which relies on its session's).
  size_t tools_at = last_user;
  if (markers != nullptr && markers->v13) {
    const auto first_user = std::find_if(messages.begin(), messages.end(),
                                         [](const ChatMessage& m) { return m.role == "user"; });
    tools_at = start ? static_cast<size_t>(first_user - messages.begin()) : messages.size();
  }
  // Tokenizer v7 (Mistral Small 3) writes the system message between control tokens of its
  // own, first, rather than joining it to a user message.
  const std::optional<int32_t> system_open = ControlId(tokenizer, "[SYSTEM_PROMPT]");
  const std::optional<int32_t> system_close = ControlId(tokenizer, "[/SYSTEM_PROMPT]");
  const bool v7 = v3 && system_open.has_value() && system_close.has_value();
  const size_t system_at = v7 ? messages.size() : (v3 ? last_user : 0);  // v7: no user's
  if (start) out.push_back(bos);
  if (v7 && !system.empty()) {
    out.push_back(*system_open);
    if (system_message.markers) {
      Append(tokenizer, system, /*markers=*/true, &out);
    } else {
      AppendChatText(tokenizer, system, false, &out);
    }
    out.push_back(*system_close);
  }
  for (size_t i = 0; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    if (m.role == "tool" || !m.tool_calls.empty()) {
      RS_RETURN_IF_ERROR(AppendMistralToolTurn(tokenizer, *markers, m, i, &out));
      continue;
    }
    if (m.role == "user" && i == tools_at && !tools.empty()) {
      out.push_back(markers->available_tools);
      AppendChatText(tokenizer, ToolsText(format, tools), false, &out);
      out.push_back(markers->available_tools_end);
    }
    if (m.role == "user") {
      const std::string content = i == system_at && !system.empty()
                                      ? absl::StrCat(std::string(system), "\n\n", m.content)
                                      : std::string(m.content);
      if (v3) {
        out.push_back(*open);
        AppendChatText(tokenizer, content, false, &out);
        out.push_back(*close);
      } else {
        AppendChatText(tokenizer, absl::StrCat("[INST] ", content, " [/INST]"), false, &out);
      }
    } else if (m.role == "assistant") {
      AppendChatText(tokenizer, v3 ? WithoutTrailingSpaces(m.content) : std::string_view(m.content),
                     false, &out);
      out.push_back(eos);
    }
  }
  return out;
}

// Every role known, and tools, tool results and calls only where the format has them.
absl::Status CheckToolUse(ChatFormat format, std::span<const ChatMessage> messages,
                          std::span<const ChatTool> tools) {
  const bool tool_format = HasToolCalls(format);
  const auto refuse = [&](std::string_view field) {
    return absl::InvalidArgumentError(absl::StrCat(
        std::string(field), ": the ", std::string(ChatFormatName(format)),
        " chat format has no tool calling in ringserve (chatml, llama3.1, llama3.2 and "
        "mistral have)"));
  };
  if (!tools.empty() && !tool_format) return refuse("chat.tools");
  RS_RETURN_IF_ERROR(CheckTools(tools));
  for (size_t i = 0; i < messages.size(); ++i) {
    const ChatMessage& message = messages[i];
    bool known = tool_format && message.role == "tool";
    for (const std::string_view role : kRoles) known = known || role == message.role;
    if (!known) {
      constexpr size_t kShown = 32;  // an error status must stay small
      return absl::InvalidArgumentError(
          absl::StrCat("chat.messages[", i, "].role: '", message.role.substr(0, kShown),
                       message.role.size() > kShown ? "...'" : "'", " is not system, user",
                       tool_format ? ", assistant or tool" : " or assistant"));
    }
    if (message.tool_calls.empty()) continue;
    if (!tool_format) return refuse(absl::StrCat("chat.messages[", i, "].tool_calls"));
    if (message.role != "assistant") {
      return absl::InvalidArgumentError(
          absl::StrCat("chat.messages[", i, "].tool_calls: only assistant turns make calls"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::string_view ChatFormatName(ChatFormat format) {
  switch (format) {
    case ChatFormat::kChatMl:
      return "chatml";
    case ChatFormat::kLlama3:
      return "llama3";
    case ChatFormat::kLlama31:
      return "llama3.1";
    case ChatFormat::kLlama32:
      return "llama3.2";
    case ChatFormat::kLlama2:
      return "llama2";
    case ChatFormat::kMistral:
      return "mistral";
    case ChatFormat::kDeepSeek:
      return "deepseek";
    case ChatFormat::kZephyr:
      return "zephyr";
    default:
      return "none";
  }
}

std::optional<ChatFormat> ChatFormatNamed(std::string_view name) {
  for (const ChatFormat f : {ChatFormat::kNone, ChatFormat::kChatMl, ChatFormat::kLlama3,
                             ChatFormat::kLlama31, ChatFormat::kLlama32, ChatFormat::kLlama2,
                             ChatFormat::kMistral, ChatFormat::kDeepSeek, ChatFormat::kZephyr}) {
    if (ChatFormatName(f) == name) return f;
  }
  return std::nullopt;
}

ChatFormat DetectChatFormat(std::string_view chat_template) {
  const auto has = [&](std::string_view marker) {
    return chat_template.find(marker) != std::string_view::npos;
  };
  if (has(kDeepSeekAssistant)) return ChatFormat::kDeepSeek;
  if (has("<|start_header_id|>")) {
    if (!has("Cutting Knowledge Date")) return ChatFormat::kLlama3;
    return has("strftime_now") ? ChatFormat::kLlama32 : ChatFormat::kLlama31;
  }
  if (has("<|im_start|>")) return ChatFormat::kChatMl;
  if (has("<<SYS>>")) return ChatFormat::kLlama2;
  if (has("[INST]")) return ChatFormat::kMistral;
  if (IsZephyrTemplate(chat_template)) return ChatFormat::kZephyr;
  return ChatFormat::kNone;
}

std::optional<int32_t> EndOfTurnId(const Tokenizer& tokenizer, ChatFormat format) {
  if (format == ChatFormat::kNone) return std::nullopt;
  if (format == ChatFormat::kDeepSeek) return DeepSeekEndOfTurnId(tokenizer);
  if (EndsTurnsWithEos(format)) {
    const int32_t eos = tokenizer.vocab().eos_id;
    return eos >= 0 ? std::optional<int32_t>(eos) : std::nullopt;
  }
  return ControlId(tokenizer, MarkersOf(format).end_of_turn);
}

std::optional<int32_t> ChatStopId(const Tokenizer& tokenizer, ChatFormat format) {
  const std::optional<int32_t> end = EndOfTurnId(tokenizer, format);
  if (!end.has_value() || tokenizer.IsEndOfGeneration(*end)) return std::nullopt;
  return end;
}

std::string DefaultSystemPromptOf(const Tokenizer& tokenizer, ChatFormat format) {
  if (format == ChatFormat::kMistral) {
    return MistralDefaultSystemPrompt(tokenizer.vocab().chat_template);
  }
  if (format != ChatFormat::kChatMl) return "";
  return DefaultSystemPrompt(tokenizer.vocab().chat_template);
}

std::string MistralDefaultSystemPrompt(std::string_view chat_template) {
  constexpr std::string_view kSet = "set default_system_message";
  const size_t at = chat_template.find(kSet);
  if (at == std::string_view::npos) return "";
  size_t pos = chat_template.find_first_not_of(" \t\n", at + kSet.size());
  if (pos == std::string_view::npos || chat_template[pos] != '=') return "";
  pos = chat_template.find_first_not_of(" \t\n", pos + 1);
  if (pos == std::string_view::npos || (chat_template[pos] != '\'' && chat_template[pos] != '"')) {
    return "";
  }
  const char quote = chat_template[pos];
  std::string prompt;
  for (++pos; pos < chat_template.size() && chat_template[pos] != quote; ++pos) {
    char c = chat_template[pos];
    if (c == '\\' && pos + 1 < chat_template.size()) {
      c = chat_template[++pos];
      if (c == 'n') c = '\n';
      if (c == 't') c = '\t';
    }
    prompt += c;
  }
  // Only a literal that is the whole value: the statement closes right after it.
  pos = chat_template.find_first_not_of(" \t\n-", pos + 1);
  if (pos == std::string_view::npos || chat_template.substr(pos, 2) != "%}") return "";
  return prompt;
}

std::string DefaultSystemPrompt(std::string_view chat_template) {
  constexpr std::string_view kOpen = "<|im_start|>system\\n";  // as the source spells it
  constexpr std::string_view kClose = "<|im_end|>";
  for (size_t at = chat_template.find(kOpen); at != std::string_view::npos;
       at = chat_template.find(kOpen, at + 1)) {
    const size_t begin = at + kOpen.size();
    const size_t end = chat_template.find(kClose, begin);
    if (end == std::string_view::npos) break;
    const std::string_view literal = chat_template.substr(begin, end - begin);
    if (literal.empty() || literal.find_first_of("'\"{}%+") != std::string_view::npos) continue;
    std::string prompt;
    for (size_t i = 0; i < literal.size(); ++i) {
      if (literal[i] == '\\' && i + 1 < literal.size() && literal[i + 1] == 'n') {
        prompt += '\n';
        ++i;
      } else {
        prompt += literal[i];
      }
    }
    return prompt;
  }
  return "";
}

ChatFormat AutoChatFormat(const Tokenizer& tokenizer) {
  const ChatFormat detected = DetectChatFormat(tokenizer.vocab().chat_template);
  return CanRender(tokenizer, detected) ? detected : ChatFormat::kNone;
}

bool CanRender(const Tokenizer& tokenizer, ChatFormat format) {
  return format != ChatFormat::kNone && !MissingMarker(tokenizer, format).has_value();
}

namespace {

// How the generation prompt treats the thought: the model's kind, kOptional opened as kAlways
// is where the request asks (ChatOptions::open_thought).
Thinking ThinkingOfReply(const Tokenizer& tokenizer, ChatFormat format,
                         const ChatOptions& options) {
  const Thinking thinking = ThinkingOf(tokenizer, format);
  return thinking == Thinking::kOptional && options.open_thought ? Thinking::kAlways : thinking;
}

// EncodeChat without a continued message: the conversation and the generation prompt.
absl::StatusOr<std::vector<int32_t>> RenderChat(const Tokenizer& tokenizer, ChatFormat format,
                                                std::span<const ChatMessage> messages,
                                                const ChatOptions& options) {
  const bool start = options.start;
  const std::string_view default_system = options.default_system;
  const std::span<const ChatTool> tools = options.tools;
  const bool think = options.think;
  const Markers m = MarkersOf(format);
  if (const std::optional<std::string_view> missing = MissingMarker(tokenizer, format)) {
    return absl::FailedPreconditionError(
        absl::StrCat("the model's vocabulary has no ", std::string(*missing), " token, which the ",
                     std::string(ChatFormatName(format)), " chat format needs"));
  }
  RS_RETURN_IF_ERROR(CheckToolUse(format, messages, tools));
  if (format == ChatFormat::kDeepSeek) {
    return EncodeDeepSeekChat(tokenizer, messages, start, default_system,
                              ThinkingOfReply(tokenizer, format, options), think);
  }
  if (format == ChatFormat::kZephyr) {
    return EncodeZephyrChat(tokenizer, messages, start, default_system);
  }
  if (IsInstFormat(format)) {
    const auto tool_turn = std::find_if(messages.begin(), messages.end(), [](const ChatMessage& m) {
      return m.role == "tool" || !m.tool_calls.empty();
    });
    const bool tool_turns = tool_turn != messages.end();
    std::optional<MistralToolMarkers> markers;
    if (tool_turns || !tools.empty()) markers = MistralToolMarkersOf(tokenizer);
    if ((tool_turns || !tools.empty()) && !markers.has_value()) {
      return absl::InvalidArgumentError(absl::StrCat(
          tool_turns ? absl::StrCat("chat.messages[", tool_turn - messages.begin(), "]")
                     : std::string("chat.tools"),
          ": this mistral vocabulary has no [TOOL_CALLS] and [TOOL_RESULTS] control tokens; "
          "tool calling needs Mistral's tokenizer v3 or later"));
    }
    RS_RETURN_IF_ERROR(tool_turns ? CheckMistralToolRoles(messages, start)
                                  : CheckInstRoles(format, messages));
    const bool brings_system = messages[0].role == "system";
    const std::string_view system =
        brings_system ? std::string_view(messages[0].content) : (start ? default_system : "");
    return EncodeInstChat(tokenizer, format, messages.subspan(brings_system ? 1 : 0), start,
                          {.text = system, .markers = !brings_system}, tools,
                          markers.has_value() ? &*markers : nullptr);
  }
  std::vector<int32_t> out;
  Append(tokenizer, start ? m.start : m.resume, true, &out);
  const auto header = [&](std::string_view role) {
    Append(tokenizer,
           absl::StrCat(std::string(m.open), std::string(role), std::string(m.after_role)), true,
           &out);
  };
  const auto text = [&](std::string_view content) { Append(tokenizer, content, false, &out); };
  const auto close = [&] { Append(tokenizer, m.close, true, &out); };
  const auto turn = [&](std::string_view role, std::string_view content) {
    header(role);
    text(m.trim_content ? Trimmed(content) : content);
    close();
  };
  const bool llama_tools = format == ChatFormat::kLlama31 || format == ChatFormat::kLlama32;
  const Thinking thinking = ThinkingOfReply(tokenizer, format, options);
  const bool offer_tools = start && !tools.empty();
  const std::string tools_text = offer_tools ? ToolsText(format, tools) : std::string();
  const bool brings_system = messages[0].role == "system";
  const std::string_view system = brings_system ? messages[0].content : default_system;
  size_t first = 0;
  if (start && llama_tools) {
    // The header Llama 3.1 and 3.2's templates always open with; a leading system message
    // (or the default) is folded into it.
    const std::string date = format == ChatFormat::kLlama31
                                 ? std::string("26 Jul 2024")
                                 : absl::FormatTime("%d %b %Y", absl::Now(), absl::UTCTimeZone());
    header("system");
    text(absl::StrCat(offer_tools ? "Environment: ipython\n" : "",
                      "Cutting Knowledge Date: December 2023\nToday Date: ", date, "\n\n"));
    text(Trimmed(system));
    close();
    first = brings_system ? 1 : 0;
  } else if (offer_tools) {  // ChatML: the tools follow the system message
    turn("system",
         system.empty() ? tools_text : absl::StrCat(std::string(system), "\n\n", tools_text));
    first = brings_system ? 1 : 0;
  } else if (start && !brings_system && !default_system.empty()) {
    turn("system", default_system);
  }
  bool tools_placed = !(offer_tools && llama_tools);  // Llama 3.x: in the first user message
  for (size_t i = first; i < messages.size(); ++i) {
    const ChatMessage& message = messages[i];
    if (message.role == "tool") {
      if (llama_tools) {
        header("ipython");
        text(message.content);
        close();
        continue;
      }
      // ChatML: a run of results shares one user turn.
      if (i == first || messages[i - 1].role != "tool") header("user");
      text(absl::StrCat(i == first || messages[i - 1].role != "tool" ? "" : "\n",
                        "<tool_response>\n", message.content, "\n</tool_response>"));
      if (i + 1 == messages.size() || messages[i + 1].role != "tool") close();
      continue;
    }
    const std::string_view content = thinking != Thinking::kNone && message.role == "assistant"
                                         ? AnswerOf(message.content)
                                         : std::string_view(message.content);
    if (!message.tool_calls.empty()) {  // an assistant turn (CheckToolUse)
      const bool after_content = !llama_tools && !content.empty();
      RS_ASSIGN_OR_RETURN(const std::string calls,
                          ToolCallsText(format, message.tool_calls, after_content,
                                        absl::StrCat("chat.messages[", i, "].tool_calls")));
      header("assistant");
      // Llama 3.x writes a turn that calls a tool as the call alone.
      text(llama_tools ? calls : absl::StrCat(std::string(content), calls));
      close();
      continue;
    }
    if (!tools_placed && message.role == "user") {
      turn("user", absl::StrCat(tools_text, std::string(Trimmed(message.content))));
      tools_placed = true;
      continue;
    }
    turn(message.role, content);
  }
  if (!tools_placed) {
    return absl::InvalidArgumentError(absl::StrCat(
        "chat.tools: the ", std::string(ChatFormatName(format)),
        " chat format offers tools in the first user message, and the conversation has none"));
  }
  header("assistant");
  if (thinking == Thinking::kAlways || (thinking == Thinking::kOptional && !think)) {
    text(think ? "<think>\n" : "<think>\n\n</think>\n\n");
  }
  return out;
}

// The start of a reply, written where the generation prompt ends as the reply's own text
// would be: Llama 2 puts a space after [/INST], Mistral encodes a reply as a piece of text
// of its own (v3 and later without trailing spaces), the others continue the header's text.
void AppendReplyStart(const Tokenizer& tokenizer, ChatFormat format, std::string_view reply,
                      std::vector<int32_t>* out) {
  if (reply.empty()) return;
  if (format == ChatFormat::kLlama2) {
    AppendChatText(tokenizer, absl::StrCat(" ", std::string(reply)), true, out);
  } else if (format == ChatFormat::kMistral) {
    const bool v3 = ControlId(tokenizer, "[INST]").has_value();
    AppendChatText(tokenizer, v3 ? WithoutTrailingSpaces(reply) : reply, false, out);
  } else {
    AppendChatText(tokenizer, reply, true, out);
  }
}

}  // namespace

absl::StatusOr<std::vector<int32_t>> EncodeChat(const Tokenizer& tokenizer, ChatFormat format,
                                                std::span<const ChatMessage> messages,
                                                const ChatOptions& options) {
  if (format == ChatFormat::kNone) {
    return absl::FailedPreconditionError(
        "this model has no chat format (its checkpoint names none that ringserve renders; "
        "the worker's --chat-format sets one); send text or token ids");
  }
  if (messages.empty()) return absl::InvalidArgumentError("chat.messages: empty");
  if (!options.continue_final) return RenderChat(tokenizer, format, messages, options);
  const size_t last = messages.size() - 1;
  const ChatMessage& reply = messages[last];
  if (reply.role != "assistant" || !reply.tool_calls.empty() || last == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "chat.messages[", last,
        "]: continue_final_message needs the last message to be the "
        "assistant's reply so far (text, no tool calls), after the conversation it answers"));
  }
  RS_ASSIGN_OR_RETURN(std::vector<int32_t> out,
                      RenderChat(tokenizer, format, messages.first(last), options));
  AppendReplyStart(tokenizer, format, reply.content, &out);
  return out;
}

Thinking ThinkingOf(const Tokenizer& tokenizer, ChatFormat format) {
  const std::string& chat_template = tokenizer.vocab().chat_template;
  if (format == ChatFormat::kDeepSeek) {
    if (chat_template.find("<think>") != std::string::npos) return Thinking::kAlways;
    return chat_template.find(kThoughtClose) != std::string::npos ? Thinking::kOptional
                                                                  : Thinking::kNone;
  }
  if (format != ChatFormat::kChatMl || chat_template.find("<think>") == std::string::npos) {
    return Thinking::kNone;
  }
  return chat_template.find("enable_thinking") != std::string::npos ? Thinking::kOptional
                                                                    : Thinking::kAlways;
}

std::optional<ThoughtMarkers> MistralThoughtMarkersOf(const Tokenizer& tokenizer,
                                                      ChatFormat format) {
  if (format != ChatFormat::kMistral) return std::nullopt;
  const std::optional<int32_t> open = ControlId(tokenizer, kMistralThoughtOpen);
  const std::optional<int32_t> close = ControlId(tokenizer, kMistralThoughtClose);
  if (!open.has_value() || !close.has_value()) return std::nullopt;
  return ThoughtMarkers{.open = *open, .close = *close};
}

std::string_view ThinkingName(Thinking thinking) {
  switch (thinking) {
    case Thinking::kOptional:
      return "optional";
    case Thinking::kAlways:
      return "always";
    default:
      return "none";
  }
}

void AppendChatText(const Tokenizer& tokenizer, std::string_view text, bool continues,
                    std::vector<int32_t>* out) {
  const std::vector<int32_t> ids = tokenizer.Encode(
      text,
      {.add_bos = false, .add_eos = false, .parse_special = false, .continues_text = continues});
  out->insert(out->end(), ids.begin(), ids.end());
}

std::optional<int32_t> MarkerId(const Tokenizer& tokenizer, std::string_view marker) {
  const std::vector<int32_t> ids =
      tokenizer.Encode(marker, {.add_bos = false, .add_eos = false, .parse_special = true});
  if (ids.size() != 1) return std::nullopt;
  return ids[0];
}

std::optional<int32_t> ControlId(const Tokenizer& tokenizer, std::string_view marker) {
  const std::optional<int32_t> id = MarkerId(tokenizer, marker);
  if (!id.has_value() || !tokenizer.IsSpecial(*id)) return std::nullopt;
  return id;
}

}  // namespace ringserve::tokenizer
