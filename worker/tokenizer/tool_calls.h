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
// - Mistral (tokenizer v3, as mistral-common writes it): [AVAILABLE_TOOLS] [tools as JSON]
//   [/AVAILABLE_TOOLS] before the last user message; a reply that calls tools is the
//   [TOOL_CALLS] control token, then a JSON array of {"name", "arguments"} objects; a result
//   is [TOOL_RESULTS] {"content": ..., "call_id": ...}[/TOOL_RESULTS]. Call ids are nine
//   letters and digits. Tokenizer v11 (Mistral Small 3.2, Devstral, Magistral; the
//   vocabulary names [ARGS]) writes each call as [TOOL_CALLS] name [CALL_ID] id [ARGS]
//   arguments instead, after any text of the reply.
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
#include "worker/tokenizer/call_streamer.h"
#include "worker/tokenizer/chat_format.h"
#include "worker/tokenizer/tokenizer.h"

namespace ringserve::tokenizer {

inline constexpr size_t kMaxTools = 128;
inline constexpr size_t kMaxToolNameBytes = 64;

// ChatML, Llama 3.1, Llama 3.2 and Mistral (whose vocabulary must have the tool markers:
// MistralToolMarkers).
bool HasToolCalls(ChatFormat format);

// Whether chat requests to this model may offer tools: the format has a tool protocol, the
// vocabulary renders the format, and (Mistral) has the tool markers.
bool OffersToolCalls(const Tokenizer& tokenizer, ChatFormat format);

// Mistral's tool markers, control tokens of tokenizer v3; nullopt for a vocabulary without
// them (tokenizer v1).
struct MistralToolMarkers {
  int32_t available_tools;
  int32_t available_tools_end;
  int32_t tool_calls;
  int32_t tool_results;
  int32_t tool_results_end;
  // Tokenizer v7 and later: a result is [TOOL_RESULTS] id [TOOL_CONTENT] content
  // [/TOOL_RESULTS] rather than v3's JSON object.
  std::optional<int32_t> tool_content{};
  // Tokenizer v11 and later: a call is [TOOL_CALLS] name [CALL_ID] id [ARGS] arguments
  // rather than an element of v3's array (the id where the vocabulary has [CALL_ID]).
  std::optional<int32_t> args{};
  std::optional<int32_t> call_id{};
  // Tokenizer v13 (Magistral Small 1.2: v11's markers, a template that writes no [CALL_ID]):
  // calls and results carry no ids (a result is [TOOL_RESULTS] content [/TOOL_RESULTS]) and
  // the tools go before the conversation's first user message. call_id is then unset.
  bool v13 = false;
};
std::optional<MistralToolMarkers> MistralToolMarkersOf(const Tokenizer& tokenizer);

// A tool call id as `format` needs it: Mistral's nine letters and digits, else "call_" and 24
// letters and digits.
std::string NewCallId(ChatFormat format);
// INVALID_ARGUMENT naming `field` for an id the format cannot write (Mistral: anything but
// nine letters and digits).
absl::Status CheckCallId(ChatFormat format, std::string_view id, std::string_view field);

// INVALID_ARGUMENT naming chat.tools[i] for a name that is empty, too long or not of
// [A-Za-z0-9_-], a name given twice, or parameters that are not a JSON object; also for
// more than kMaxTools tools.
absl::Status CheckTools(std::span<const ChatTool> tools);

// The text that offers `tools` to the model in `format`: ChatML's section after the system
// message (the caller joins the two with a blank line), Llama 3.x's preamble to the first
// user message (ending in a blank line), Mistral's JSON array (between its markers).
std::string ToolsText(ChatFormat format, std::span<const ChatTool> tools);

// An assistant turn's calls as `format` writes them: ChatML's tags, each on lines of its own
// after the turn's content (`after_content`: there is some), Llama 3.x's one JSON object, or
// Mistral's JSON array (after its [TOOL_CALLS] marker), ids included. INVALID_ARGUMENT naming
// `field` for arguments that are not a JSON object, more than one call in Llama 3.x, or an
// id Mistral cannot write (CheckCallId).
absl::StatusOr<std::string> ToolCallsText(ChatFormat format, std::span<const ToolCall> calls,
                                          bool after_content, std::string_view field);

// A call's arguments as the templates write them (TemplateJson of the object).
// INVALID_ARGUMENT naming `field` for arguments that are not a JSON object.
absl::StatusOr<std::string> ToolArgumentsText(const ToolCall& call, std::string_view field);

// The spellings of Mistral's v11 call markers, which a reply's text carries where the job
// spells those control tokens (NamedCallMarkerIds) for ToolCallParser.
inline constexpr std::string_view kToolCallsMarker = "[TOOL_CALLS]";
inline constexpr std::string_view kCallIdMarker = "[CALL_ID]";
inline constexpr std::string_view kArgsMarker = "[ARGS]";
// The control tokens a v11 reply's text spells, so that its calls can be parsed from it:
// [TOOL_CALLS], [ARGS] and [CALL_ID] where the markers are v11's (else empty).
std::vector<int32_t> NamedCallMarkerIds(const MistralToolMarkers& markers);

// A tool's result as Mistral writes it between [TOOL_RESULTS] and [/TOOL_RESULTS]:
// {"content": ..., "call_id": ...}, the content as the JSON value it spells if it is JSON,
// else as a string.
std::string MistralToolResult(std::string_view content, std::string_view call_id);

// What a reply that must call tools is, for the structured-output constraint: a GBNF
// grammar of the format's calls (ChatML: one or more tagged calls, a line apart; Llama 3.x:
// one call object; Mistral: the array of calls after the [TOOL_CALLS] marker, which is no
// text of the grammar's) of `tools` (only the one named `only` when it is not empty), each call's
// arguments being rule ToolArgumentsRule(i) for tools[i], which the caller defines as a JSON
// rule of that tool's parameters (grammar::Grammar::FromGbnf's json_rules).
// `one_call`: a single call, the grammar of a call that a reply free to call tools or not has
// begun (from ToolCallOpening on). `after_thought` (ChatML): the calls follow a thought's
// "</think>" and a little whitespace, which the grammar's text starts with.
std::string ToolCallsGbnf(ChatFormat format, std::span<const ChatTool> tools, std::string_view only,
                          bool one_call = false, bool after_thought = false);
std::string ToolArgumentsRule(size_t index);
// A GBNF grammar of one call's arguments alone: rule ToolArgumentsRule(i) of any of `tools`
// (only the one named `only` when it is not empty). Mistral v11 writes a call's arguments
// after its [ARGS] control token, which binds this grammar (no grammar spells the marker).
std::string ToolArgumentsGbnf(std::span<const ChatTool> tools, std::string_view only);
// The key a call's arguments go under in `format`'s calls ("parameters" in Llama 3.x's,
// "arguments" in the others').
std::string_view ToolArgumentsKey(ChatFormat format);

// The text a call starts with in `format` (ChatML's "<tool_call>", Llama 3.x's "{"; empty for
// Mistral, whose calls open with a control token), and whether it counts only as the reply's
// start (Llama 3.x and Mistral: a reply that is calls).
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
// that starts with "{" to its end; Mistral holds a reply that opened with the [TOOL_CALLS]
// token (which has no text: the caller says so, FirstToken) to its end, and takes its calls
// only if the whole array parses. A v11 Mistral reply (`named_calls`) streams its text up
// to the spelled "[TOOL_CALLS]" and holds the calls from there to its end, taking them only
// if every one parses.
class ToolCallParser {
 public:
  struct Output {
    std::string text;
    std::vector<ToolCall> calls;
    std::vector<ToolCallDelta> deltas{};  // with `stream`: the calls as they arrive
  };

  // `calls_open`: the prompt already opened the calls (Mistral's [TOOL_CALLS] written into
  // a reply that must call tools), so the reply is the calls' text. `marker_id`: Mistral's
  // [TOOL_CALLS] (MistralToolMarkers::tool_calls). `stream`: the calls are held to their
  // grammar and stream as deltas (CallStreamer); a whole call then has the id its deltas had
  // and its arguments as written. `named_calls`: Mistral v11's calls, their markers spelled
  // in the text; with `calls_open`, `opened` is the calls' text the prompt already wrote
  // after its [TOOL_CALLS] (a named tool's "name[ARGS]").
  ToolCallParser(ChatFormat format, std::vector<std::string> tool_names, bool calls_open = false,
                 int32_t marker_id = -1, bool stream = false, bool named_calls = false,
                 std::string_view opened = {});

  // Each message's first token, before its text is fed: a Mistral reply whose first token is
  // the marker is calls. Other formats, and later tokens, change nothing.
  void FirstToken(int32_t id);
  Output Feed(std::string_view text);
  Output Finish();
  // Whether any call has been returned.
  bool made_calls() const { return made_calls_; }

 private:
  enum class State : uint8_t { kStart, kText, kCall };

  void Step(Output& out);
  // The call `body` (the JSON between the tags, or the whole reply) stands for, if it is one.
  bool TakeCall(std::string_view body, Output& out);
  // The calls of Mistral's array `body`, all or none.
  bool TakeCallArray(std::string_view body, Output& out);
  // Mistral v11: the text's calls from the spelled [TOOL_CALLS] on.
  void StepNamedCalls(Output& out);
  // The calls of `body` ("name[ARGS]arguments" after each [TOOL_CALLS]), all or none.
  bool TakeNamedCalls(std::string_view body, Output& out);
  // With `stream`: `calls` (a stretch's, all parsed) get the ids and argument texts their
  // deltas had, where the streamer followed each of them to its end.
  void AsStreamed(std::vector<ToolCall>& calls) const;

  ChatFormat format_;
  std::vector<std::string> tool_names_;
  int32_t marker_id_;
  bool named_calls_;
  size_t opened_bytes_ = 0;  // named calls: the leading bytes of pending_ the prompt wrote
  State state_ = State::kStart;
  std::string pending_;  // text received and not yet returned
  bool made_calls_ = false;
  bool after_call_ = false;  // ChatML: since the last call, only whitespace
  std::optional<CallStreamer> streamer_;
};

}  // namespace ringserve::tokenizer

#endif  // RINGSERVE_WORKER_TOKENIZER_TOOL_CALLS_H_
