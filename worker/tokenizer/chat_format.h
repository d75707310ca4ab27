// Chat requests: a conversation of role-tagged messages rendered in the format the model
// was tuned on, then encoded. ringserve renders the formats most open checkpoints use
// (ChatML: Qwen2, many fine-tunes; Llama 3's headers; the [INST] turns of Llama 2 chat and
// Mistral Instruct) without a template engine: the checkpoint's Jinja chat_template only
// picks which.
#ifndef RINGSERVE_WORKER_TOKENIZER_CHAT_FORMAT_H_
#define RINGSERVE_WORKER_TOKENIZER_CHAT_FORMAT_H_

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/tokenizer/tokenizer.h"

namespace ringserve::tokenizer {

enum class ChatFormat : uint8_t {
  kNone,    // the model takes no chat requests
  kChatMl,  // <|im_start|>role\n...<|im_end|>\n
  kLlama3,  // <|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|>
  // Llama 3.1 and 3.2: Llama 3's, and a conversation always opens with a system header
  // naming the knowledge cutoff and a date (3.1: the template's fixed "26 Jul 2024"; 3.2:
  // today's, as its template writes when the renderer can tell the time).
  kLlama31,
  kLlama32,
  // Llama 2 chat: every user turn <s>[INST] ... [/INST], the first with the system message
  // in <<SYS>> ... <</SYS>>; a reply ends with </s>.
  kLlama2,
  // Mistral Instruct, as mistral-common writes it: <s>[INST] user [/INST] reply</s>, each a
  // piece of text of its own; [INST] and [/INST] are control tokens where the vocabulary has
  // them (tokenizer v3: Mistral 7B v0.3, Mixtral 8x22B), with no space inside them then. A
  // system message joins the first user message (v1) or the last (v3), two newlines apart,
  // or, where the vocabulary has [SYSTEM_PROMPT] and [/SYSTEM_PROMPT] (v7: Mistral Small 3),
  // goes between those first.
  kMistral,
  // DeepSeek R1's distills and V3 (deepseek_chat.h): <｜begin▁of▁sentence｜>system<｜User｜>...
  // <｜Assistant｜>...<｜end▁of▁sentence｜>.
  kDeepSeek,
  // Zephyr's (zephyr_chat.h; TinyLlama-1.1B-Chat): <|role|>\n content </s>\n each, the role
  // markers plain text, then <|assistant|>\n.
  kZephyr,
};

// "none", "chatml", "llama3", "llama3.1", "llama3.2", "llama2", "mistral", "deepseek",
// "zephyr"
std::string_view ChatFormatName(ChatFormat format);
std::optional<ChatFormat> ChatFormatNamed(std::string_view name);

// The format a Jinja chat_template writes, told by its markers; kNone for any other (or
// an empty template).
ChatFormat DetectChatFormat(std::string_view chat_template);

// A function the model may call (tool_calls.h).
struct ChatTool {
  std::string name;
  std::string description{};
  std::string parameters{};  // JSON Schema of the arguments object; empty: any object
};

struct ToolCall {
  std::string id;
  std::string name;
  std::string arguments;  // a JSON object's text
};

struct ChatMessage {
  std::string role;  // system, user, assistant or tool (HasToolCalls formats)
  std::string content;
  std::vector<ToolCall> tool_calls{};  // assistant turns that called tools
  std::string tool_call_id{};          // tool results: the call answered (Mistral writes it)
};

// How EncodeChat renders a conversation.
struct ChatOptions {
  // The beginning of a conversation (Llama 3's <|begin_of_text|>); false continues a session
  // whose last reply ended on the format's end-of-turn token (ChatML then resumes with the
  // newline its template writes after <|im_end|>).
  bool start = true;
  // The system message a conversation opens with when it brings none (only with `start`;
  // DefaultSystemPrompt).
  std::string_view default_system{};
  // Offered where a conversation starts (with `start`) in the formats with tool calling.
  std::span<const ChatTool> tools{};
  // false closes the reply's thought before it starts, for a model that thinks first.
  bool think = true;
  // With `think`: the generation prompt opens the thought even for a model whose template
  // leaves that to the model (kOptional), as it does for kAlways: a constraint that binds
  // after "</think>" needs the thought written.
  bool open_thought = false;
  // The last message is an assistant message, the reply so far: it is written after the
  // generation prompt, unclosed, so the model continues it (a prefilled reply start).
  bool continue_final = false;
};

// `messages` in `format`, encoded, ending with the assistant's header (the generation
// prompt). The format's markers become their control tokens; message contents are plain
// text, so a message spelling "<|im_end|>" cannot close its turn. Llama 3 and Llama 2 trim
// each content's surrounding ASCII whitespace, as their templates do. The [INST] formats
// need user and assistant messages to alternate, starting and ending with a user message,
// after an optional system message. The formats with tool calling (tool_calls.h) also render
// tool results and the calls of assistant turns.
// INVALID_ARGUMENT naming the message for an unknown role or no messages, or for tools,
// tool results or calls in a format without tool calling, or, with continue_final, a last
// message that is not an assistant's text; FAILED_PRECONDITION when the format is kNone or
// the vocabulary lacks its markers. A model that thinks first (ThinkingOf) has the thought
// of each earlier assistant message left out, as its template does (the text through
// "</think>"); `think` false closes the reply's thought before it starts (an empty
// "<think>\n\n</think>\n\n" after the header), and a kAlways model's generation prompt
// otherwise opens it ("<think>\n"). A continued message follows all of that verbatim (its
// thought kept), as the reply's text would have.
absl::StatusOr<std::vector<int32_t>> EncodeChat(const Tokenizer& tokenizer, ChatFormat format,
                                                std::span<const ChatMessage> messages,
                                                const ChatOptions& options);

// How a model's template treats a thought before the answer (<think>...</think>, ChatML and
// DeepSeek): Qwen3's lets a request switch it off (enable_thinking), QwQ's and DeepSeek R1's
// always open one in the generation prompt; an R1 template that only strips thoughts from
// earlier replies leaves the model to open its own, and a request may close it (kOptional).
// kNone for other templates, formats and vocabularies without one.
enum class Thinking : uint8_t { kNone, kOptional, kAlways };
Thinking ThinkingOf(const Tokenizer& tokenizer, ChatFormat format);
std::string_view ThinkingName(Thinking thinking);  // "none", "optional", "always"

// Magistral's thought tags (Mistral tokenizer v13): control tokens, so a reply's text spells
// them (JobRequest::spelled_control_ids) for the thought to be split out of it. Its thinking
// is asked for by the system prompt, not the template, so ThinkingOf stays kNone.
inline constexpr std::string_view kMistralThoughtOpen = "[THINK]";
inline constexpr std::string_view kMistralThoughtClose = "[/THINK]";
struct ThoughtMarkers {
  int32_t open;
  int32_t close;
};
// Both tags as control tokens of a Mistral vocabulary; nullopt otherwise.
std::optional<ThoughtMarkers> MistralThoughtMarkersOf(const Tokenizer& tokenizer,
                                                      ChatFormat format);

// The system prompt a ChatML template writes when a conversation has none (Qwen2's "You are
// a helpful assistant.", Qwen2.5's "You are Qwen, created by Alibaba Cloud. ..."): the
// literal text between "<|im_start|>system\n" and "<|im_end|>" in the template's source,
// when that text is a plain string (no quotes or braces, so not an expression); its
// "\n" escapes become newlines. Empty when the template has none.
std::string DefaultSystemPrompt(std::string_view chat_template);

// The format the vocabulary's own chat template writes, if the vocabulary has its markers;
// kNone otherwise.
ChatFormat AutoChatFormat(const Tokenizer& tokenizer);

// Appends a turn's text as the templates' tokenisation sees it: a piece of its own
// (SentencePiece's dummy prefix applies, as at the start of a template's text between special
// tokens) or, with `continues`, continuing the text before it. Never control tokens: a
// message spelling "</s>" stays text.
void AppendChatText(const Tokenizer& tokenizer, std::string_view text, bool continues,
                    std::vector<int32_t>* out);

// The id of `marker` if the vocabulary has it as one token, control or user-defined (DeepSeek
// R1's distills add their role markers as the latter).
std::optional<int32_t> MarkerId(const Tokenizer& tokenizer, std::string_view marker);
// The id of control token `marker` ("<|im_end|>", "[TOOL_CALLS]"), if the vocabulary has it
// as one token.
std::optional<int32_t> ControlId(const Tokenizer& tokenizer, std::string_view marker);

// Whether the vocabulary has every control token `format` needs (false for kNone).
bool CanRender(const Tokenizer& tokenizer, ChatFormat format);

// The token that ends an assistant turn in `format` (<|im_end|>, <|eot_id|>): a chat
// request stops on it even where the vocabulary's EOS is another token. nullopt for kNone
// or when the vocabulary lacks it.
std::optional<int32_t> EndOfTurnId(const Tokenizer& tokenizer, ChatFormat format);

// The token a chat reply must stop at beyond the vocabulary's ends of generation: the
// format's end of turn when those lack it (instruction-tuned files usually make it their
// EOS; not all do). nullopt when they have it, or for kNone.
std::optional<int32_t> ChatStopId(const Tokenizer& tokenizer, ChatFormat format);

// The system message a new conversation in `format` opens with when it brings none: for
// ChatML, the default its template writes (DefaultSystemPrompt of the vocabulary's template);
// for Mistral, its template's `default_system_message` (MistralDefaultSystemPrompt); empty
// for the other formats.
std::string DefaultSystemPromptOf(const Tokenizer& tokenizer, ChatFormat format);

// A Mistral template's `{%- set default_system_message = '...' %}` when its value is one
// plain string literal (Magistral's, which asks for a [THINK] thought; not one joined with
// today's date): the literal with its escapes undone. Empty otherwise. Its markers are the
// template's, so the renderer writes them as control tokens.
std::string MistralDefaultSystemPrompt(std::string_view chat_template);

}  // namespace ringserve::tokenizer

#endif  // RINGSERVE_WORKER_TOKENIZER_CHAT_FORMAT_H_
