// Tool calling in the chat formats that have a protocol for it: how the tools a request
// offers, the calls an assistant turn made and the tools' results are written into a
// conversation, what a reply that must call a tool looks like (for the structured-output
// constraint), and how calls are taken back out of a reply as it streams.
//
// - ChatML: the tags Qwen2.5 and Hermes fine-tunes are tuned on. The tools, one JSON object
//   a line inside <tools></tools>, follow the system message; a call is
//   <tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>; results come back in a
//   user turn, each inside <tool_response></tool_response>.
// - Llama 3.1 and 3.2: the system header says "Environment: ipython"; the tools open the
//   first user message; a call is a reply that is one JSON object {"name": ...,
//   "parameters": {...}}; a result is an ipython turn.
// The instructions around the tools are ringserve's wording; the tags, roles and JSON
// shapes are the models' protocol.
#ifndef RINGSERVE_WORKER_TOKENIZER_TOOL_CALLS_H_
#define RINGSERVE_WORKER_TOKENIZER_TOOL_CALLS_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "worker/tokenizer/chat_format.h"
#include "worker/tokenizer/tokenizer.h"

namespace ringserve::tokenizer {

inline constexpr size_t kMaxTools = 128;
inline constexpr size_t kMaxToolNameBytes = 64;

// ChatML, Llama 3.1 and Llama 3.2.
bool HasToolCalls(ChatFormat format);

// INVALID_ARGUMENT naming chat.tools[i] for a name that is empty, too long or not of
// [A-Za-z0-9_-], a name given twice, or parameters that are not a JSON object; also for
// more than kMaxTools tools.
absl::Status CheckTools(std::span<const ChatTool> tools);

// The text that offers `tools` to the model in `format`: ChatML's section after the system
// message (the caller joins the two with a blank line), Llama 3.x's preamble to the first
// user message (ending in a blank line).
std::string ToolsText(ChatFormat format, std::span<const ChatTool> tools);

// An assistant turn's calls as `format` writes them: ChatML's tags, each on lines of its own
// after the turn's content (`after_content`: there is some), or Llama 3.x's one JSON object.
// INVALID_ARGUMENT naming `field` for arguments that are not a JSON object, or more than one
// call in Llama 3.x.
absl::StatusOr<std::string> ToolCallsText(ChatFormat format, std::span<const ToolCall> calls,
                                          bool after_content, std::string_view field);

// What a reply that must call tools is, for the structured-output constraint: a GBNF
// grammar of the format's calls (ChatML: one or more tagged calls, a line apart; Llama 3.x:
// one call object) of `tools` (only the one named `only` when it is not empty), each call's
// arguments being rule ToolArgumentsRule(i) for tools[i], which the caller defines as a JSON
// rule of that tool's parameters (grammar::Grammar::FromGbnf's json_rules).
// `one_call`: a single call, the grammar of a call that a reply free to call tools or not has
// begun (from ToolCallOpening on).
std::string ToolCallsGbnf(ChatFormat format, std::span<const ChatTool> tools, std::string_view only,
                          bool one_call = false);
std::string ToolArgumentsRule(size_t index);

// The text a call starts with in `format` (ChatML's "<tool_call>", Llama 3.x's "{"), and
// whether it counts only as the reply's first text (Llama 3.x: a reply that is a call).
std::string_view ToolCallOpening(ChatFormat format);
bool ToolCallOpensReply(ChatFormat format);

// The token a reply that may call tools also stops at: Llama 3.x's <|eom_id|>, which ends a
// turn that waits for a tool's result, where the vocabulary has it and does not already end
// generation there. nullopt otherwise.
std::optional<int32_t> ToolCallStopId(const Tokenizer& tokenizer, ChatFormat format);

// Takes a reply's calls out of its text as it streams: Feed returns the text that is surely
// not part of a call, and the calls completed so far; Finish returns the rest. A call that
// does not parse (malformed JSON, a name not among the tools, arguments that are not an
// object) stays text as it was written. Whitespace between calls, and around them, is
// dropped. Held text waits only while it may still turn out to be a call: ChatML holds a
// partial "<tool_call>" tag and each call until its closing tag; Llama 3.x holds a reply
// that starts with "{" to its end.
class ToolCallParser {
 public:
  struct Output {
    std::string text;
    std::vector<ToolCall> calls;
  };

  ToolCallParser(ChatFormat format, std::vector<std::string> tool_names);

  Output Feed(std::string_view text);
  Output Finish();
  // Whether any call has been returned.
  bool made_calls() const { return made_calls_; }

 private:
  enum class State : uint8_t { kStart, kText, kCall };

  void Step(Output& out);
  // The call `body` (the JSON between the tags, or the whole reply) stands for, if it is one.
  bool TakeCall(std::string_view body, Output& out);

  ChatFormat format_;
  std::vector<std::string> tool_names_;
  State state_ = State::kStart;
  std::string pending_;  // text received and not yet returned
  bool made_calls_ = false;
  bool after_call_ = false;  // ChatML: since the last call, only whitespace
};

}  // namespace ringserve::tokenizer

#endif  // RINGSERVE_WORKER_TOKENIZER_TOOL_CALLS_H_
