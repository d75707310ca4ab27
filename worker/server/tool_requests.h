// Tool calling between the public API and the chat renderer: the tools a chat request offers,
// the constraint its tool_choice sets, and the parsing of its replies into calls.
#ifndef RINGSERVE_WORKER_SERVER_TOOL_REQUESTS_H_
#define RINGSERVE_WORKER_SERVER_TOOL_REQUESTS_H_

#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "ringserve/v1/inference.pb.h"
#include "worker/engine/job.h"
#include "worker/grammar/grammar_cache.h"
#include "worker/grammar/matcher.h"
#include "worker/grammar/token_constraint.h"
#include "worker/tokenizer/chat_format.h"
#include "worker/tokenizer/tool_calls.h"

namespace ringserve::server {

// The most bytes of tool parameter schemas one request may carry.
inline constexpr size_t kMaxToolSchemaBytes = size_t{64} << 10;

// The tools `chat` offers the model: none with tool_choice MODE_NONE. INVALID_ARGUMENT naming
// the field for parameters over kMaxToolSchemaBytes in all or not valid UTF-8 (the renderer
// checks names and shapes).
absl::StatusOr<std::vector<tokenizer::ChatTool>> OfferedTools(const ringserve::v1::Chat& chat);

// A message's calls as the renderer takes them.
std::vector<tokenizer::ToolCall> MessageToolCalls(const ringserve::v1::ChatMessage& message);

// The constraint tool_choice sets, if any: under MODE_REQUIRED the whole reply is one or
// more calls of the offered tools, or of the one it names, their arguments satisfying the
// tool's parameters (no trigger); under MODE_AUTO a call the reply begins is held to that
// shape from its opening on (`trigger`: ToolCallOpening), a tool whose schema the compiler
// refuses taking any JSON object as arguments (calls whose grammar still does not compile
// are only parsed); nothing under MODE_NONE. With chat.parallel_tool_calls false a reply
// makes at most one call: MODE_REQUIRED's grammar is one call, MODE_AUTO's trigger binds
// once and its call ends the reply. Mistral v11's calls, whose markers are control tokens
// between text, hold only each call's arguments, from its [ARGS] token on, to an offered
// tool's parameters (a named tool's: written into the prompt with its name).
// INVALID_ARGUMENT naming the field for a name that is no
// offered tool (or a name without MODE_REQUIRED), no tools to require, or, under
// MODE_REQUIRED, a schema that does not compile.
struct ToolFormat {
  std::shared_ptr<const grammar::Grammar> grammar{};
  std::optional<grammar::Trigger> trigger{};
  // Tokens the generation prompt ends with: Mistral's [TOOL_CALLS] under MODE_REQUIRED, a
  // control token no grammar can ask for, so the prompt opens the calls and the grammar is
  // the text after it (v11 with a named tool: [TOOL_CALLS] name [ARGS], the grammar that
  // tool's arguments).
  std::vector<int32_t> prompt_suffix{};
  // Control tokens the reply's text spells for its parser (JobRequest::spelled_control_ids):
  // Mistral v11's call markers, where a reply may call tools.
  std::vector<int32_t> spelled_markers{};
};
// `thought_first`: the reply starts with a thought (ThinkingOf, ReplyMayThink), and MODE_AUTO
// watches for a call only after it ("</think>"). The grammars come from `cache` when it
// holds them (may be null: compiled each time).
absl::StatusOr<ToolFormat> ToolChoiceFormat(const ringserve::v1::Chat& chat,
                                            std::span<const tokenizer::ChatTool> tools,
                                            const tokenizer::Tokenizer& tokenizer,
                                            tokenizer::ChatFormat format,
                                            bool thought_first = false,
                                            grammar::GrammarCache* cache = nullptr);

// The parser of a chat request's replies when it offers tools; nullopt otherwise. Calls
// stream as deltas with chat.stream_tool_calls where `calls_constrained` (the job holds them
// to the tool-call grammar: ToolChoiceFormat gave one and no response_format replaced it).
std::optional<tokenizer::ToolCallParser> ReplyParser(const ringserve::v1::GenerateRequest& request,
                                                     const tokenizer::Tokenizer* tokenizer,
                                                     tokenizer::ChatFormat format,
                                                     bool calls_constrained = false);

// Passes a message's first token and text through `parser` (finishing it when `last`),
// moving any calls (and their deltas) into the message, and makes a reply that called tools
// end with FINISH_REASON_TOOL_CALLS.
void ParseToolCalls(tokenizer::ToolCallParser& parser, bool last,
                    ringserve::v1::GenerateResponse* response);

}  // namespace ringserve::server

#endif  // RINGSERVE_WORKER_SERVER_TOOL_REQUESTS_H_
